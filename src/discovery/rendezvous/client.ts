/**
 * Rendezvous client requests (REGISTER, UNREGISTER, DISCOVER) over any host that can
 * open a protocol stream: a Libp2p node, or a service's components via
 * `dialerFromComponents`. One stream per request, like go-libp2p and rust-libp2p.
 * Every record a point returns is verified here; callers only ever see signed addresses.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { FrameTooLargeError, StreamReader, TruncatedFrameError } from '../../protocol/framing.js'
import { MessageType, RENDEZVOUS_PROTOCOL, RendezvousProtocolError, ResponseStatus, statusName } from './proto.js'
import type { RendezvousMessage, ResponseStatusName } from './proto.js'
import { InvalidPeerRecordError, verifySignedPeerRecord } from './record.js'
import { raceSignal, readMessage, writeMessage } from './wire.js'

/** The part of a Libp2p node (or of components, adapted) the client needs. */
export interface RendezvousDialer {
  dialProtocol: (target: PeerId | Multiaddr, protocol: string, options?: { signal?: AbortSignal, runOnLimitedConnection?: boolean }) => Promise<Stream>
}

export type RendezvousErrorCode =
  | Exclude<ResponseStatusName, 'OK'>
  | `E_UNKNOWN_${number}`
  /** Dial failed or the connection broke mid-request. */
  | 'point_unreachable'
  /** The peer does not speak /rendezvous/1.0.0. */
  | 'protocol_not_supported'
  /** The point answered with bytes that are not a valid reply. */
  | 'protocol_error'
  | 'timeout'
  /** The caller's signal aborted for a reason other than a timeout. */
  | 'aborted'

export class RendezvousError extends Error {
  /** The point's status number for `E_…` codes, else null. */
  readonly status: number | null
  constructor (readonly code: RendezvousErrorCode, message: string, status: number | null = null) {
    super(message)
    this.name = 'RendezvousError'
    this.status = status
  }
}

export interface DiscoveredRegistration {
  peerId: string
  /** From the verified record, without `/p2p/<peerId>`. */
  multiaddrs: string[]
  /** Remaining ttl the point reported. */
  ttlS: number
  ns: string
}

export interface DiscoverPage {
  registrations: DiscoveredRegistration[]
  /** Pass back to page on; null if the point sent none. */
  cookie: Uint8Array | null
  /** Registrations the point sent, before verification (tells whether the page was full). */
  received: number
  /** Records dropped because they did not verify or did not match the namespace. */
  invalid: number
}

export interface DiscoverOptions {
  limit?: number
  cookie?: Uint8Array | null
  signal?: AbortSignal
}

/** Adapts libp2p components so a service can use the client without the Libp2p object. */
export function dialerFromComponents (components: {
  connectionManager: { openConnection: (target: PeerId | Multiaddr, options?: { signal?: AbortSignal }) => Promise<Connection> }
}, onConnection?: (connection: Connection) => void): RendezvousDialer {
  return {
    dialProtocol: async (target, protocol, options = {}) => {
      const connection = await components.connectionManager.openConnection(target, { signal: options.signal })
      onConnection?.(connection)
      return await connection.newStream(protocol, { signal: options.signal, runOnLimitedConnection: options.runOnLimitedConnection ?? true })
    }
  }
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** A function, not an inline check, because TypeScript narrows `signal.aborted` across awaits. */
function isAborted (signal: AbortSignal | undefined): signal is AbortSignal {
  return signal?.aborted === true
}

function abortedError (signal: AbortSignal): RendezvousError {
  const reason: unknown = signal.reason
  const isTimeout = reason instanceof Error && (reason.name === 'TimeoutError' || reason.message === 'timeout')
  return new RendezvousError(isTimeout ? 'timeout' : 'aborted', isTimeout ? 'request timed out' : 'request aborted')
}

/** Sends one message and, when the protocol has one, reads the reply. */
async function exchange (dialer: RendezvousDialer, point: PeerId | Multiaddr, message: RendezvousMessage, expectReply: boolean, signal?: AbortSignal): Promise<RendezvousMessage | null> {
  if (isAborted(signal)) throw abortedError(signal)
  let stream: Stream
  try {
    stream = await raceSignal(dialer.dialProtocol(point, RENDEZVOUS_PROTOCOL, { signal, runOnLimitedConnection: true }), signal)
  } catch (err) {
    if (isAborted(signal)) throw abortedError(signal)
    if (err instanceof Error && err.name === 'UnsupportedProtocolError') throw new RendezvousError('protocol_not_supported', `${point.toString()} does not speak ${RENDEZVOUS_PROTOCOL}`)
    throw new RendezvousError('point_unreachable', `cannot reach rendezvous point ${point.toString()}: ${describe(err)}`)
  }
  try {
    await raceSignal(writeMessage(stream, message), signal)
    if (!expectReply) {
      await raceSignal(stream.close({ signal }), signal)
      return null
    }
    const reply = await raceSignal(readMessage(new StreamReader(stream)), signal)
    if (reply === null) throw new RendezvousError('protocol_error', 'point closed the stream without replying')
    await stream.close({ signal }).catch(() => {})
    return reply
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    if (err instanceof RendezvousError) throw err
    if (isAborted(signal)) throw abortedError(signal)
    if (err instanceof RendezvousProtocolError || err instanceof FrameTooLargeError || err instanceof TruncatedFrameError) {
      throw new RendezvousError('protocol_error', `invalid reply from rendezvous point: ${describe(err)}`)
    }
    throw new RendezvousError('point_unreachable', `rendezvous request failed: ${describe(err)}`)
  }
}

function statusError (status: number, statusText: string | undefined): RendezvousError {
  const code = statusName(status) as RendezvousErrorCode
  return new RendezvousError(code, `rendezvous point refused: ${code}${statusText !== undefined && statusText !== '' ? ` (${statusText})` : ''}`, status)
}

/**
 * Registers our signed record (see `sealPeerRecord`) under `ns`; resolves to the ttl
 * the point granted, in seconds.
 */
export async function register (dialer: RendezvousDialer, point: PeerId | Multiaddr, ns: string, ttlS: number, options: { signedPeerRecord: Uint8Array, signal?: AbortSignal }): Promise<number> {
  const reply = await exchange(dialer, point, { type: MessageType.REGISTER, register: { ns, signedPeerRecord: options.signedPeerRecord, ttl: ttlS } }, true, options.signal)
  const response = reply?.registerResponse
  if (reply?.type !== MessageType.REGISTER_RESPONSE || response === undefined) throw new RendezvousError('protocol_error', 'point did not answer with a REGISTER_RESPONSE')
  if (response.status !== ResponseStatus.OK) throw statusError(response.status, response.statusText)
  return response.ttl !== undefined && response.ttl > 0 ? response.ttl : ttlS
}

/** Removes our registration under `ns`. The protocol has no reply, so success means "sent". */
export async function unregister (dialer: RendezvousDialer, point: PeerId | Multiaddr, ns: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  await exchange(dialer, point, { type: MessageType.UNREGISTER, unregister: { ns } }, false, options.signal)
}

/** One DISCOVER page; records that fail verification are dropped and counted. */
export async function discover (dialer: RendezvousDialer, point: PeerId | Multiaddr, ns: string, options: DiscoverOptions = {}): Promise<DiscoverPage> {
  const cookie = options.cookie ?? undefined
  const reply = await exchange(dialer, point, { type: MessageType.DISCOVER, discover: { ns, limit: options.limit ?? 100, cookie } }, true, options.signal)
  const response = reply?.discoverResponse
  if (reply?.type !== MessageType.DISCOVER_RESPONSE || response === undefined) throw new RendezvousError('protocol_error', 'point did not answer with a DISCOVER_RESPONSE')
  if (response.status !== ResponseStatus.OK) throw statusError(response.status, response.statusText)
  const registrations: DiscoveredRegistration[] = []
  const seen = new Set<string>()
  let invalid = 0
  for (const reg of response.registrations) {
    if (reg.signedPeerRecord === undefined || (ns !== '' && reg.ns !== undefined && reg.ns !== ns)) {
      invalid++
      continue
    }
    try {
      const record = await verifySignedPeerRecord(reg.signedPeerRecord)
      const peerId = record.peerId.toString()
      const regNs = reg.ns ?? ns
      // One entry per (namespace, peer): an all-namespace DISCOVER may list a peer once per namespace.
      const key = `${regNs}\n${peerId}`
      if (seen.has(key)) continue
      seen.add(key)
      registrations.push({ peerId, multiaddrs: record.multiaddrs.map((a) => a.toString()), ttlS: reg.ttl ?? 0, ns: regNs })
    } catch (err) {
      if (!(err instanceof InvalidPeerRecordError)) throw err
      invalid++
    }
  }
  return { registrations, cookie: response.cookie ?? null, received: response.registrations.length, invalid }
}

export interface DiscoverManyOptions extends DiscoverOptions {
  /** Stop once this many accepted registrations were collected. */
  want: number
  /** Which registrations count towards `want` (e.g. not ourselves); default all. */
  accept?: (registration: DiscoveredRegistration) => boolean
  /** Bound on round trips. */
  maxPages?: number
  /** Called with each page as it arrives, so callers can act before paging finishes. */
  onPage?: (page: DiscoverPage) => void
  /** Asked before each further page; false stops paging (the caller has what it needs). */
  more?: () => boolean
}

/**
 * Follows cookies until `want` accepted registrations, an exhausted namespace (a page
 * shorter than `limit`), `more()` saying stop, or `maxPages`. Returns the accepted registrations, the last
 * cookie and the number of invalid records seen.
 */
export async function discoverMany (dialer: RendezvousDialer, point: PeerId | Multiaddr, ns: string, options: DiscoverManyOptions): Promise<{ registrations: DiscoveredRegistration[], cookie: Uint8Array | null, invalid: number, pages: number }> {
  const limit = options.limit ?? 100
  const maxPages = options.maxPages ?? 10
  const accepted: DiscoveredRegistration[] = []
  const seen = new Set<string>()
  let cookie = options.cookie ?? null
  let invalid = 0
  let pages = 0
  while (pages < maxPages && accepted.length < options.want && (pages === 0 || options.more?.() !== false)) {
    const page = await discover(dialer, point, ns, { limit, cookie, signal: options.signal })
    pages++
    invalid += page.invalid
    options.onPage?.(page)
    for (const reg of page.registrations) {
      const key = `${reg.ns}\n${reg.peerId}`
      if (seen.has(key) || (options.accept !== undefined && !options.accept(reg))) continue
      seen.add(key)
      accepted.push(reg)
    }
    if (page.cookie !== null) cookie = page.cookie
    if (page.cookie === null || page.received < limit) break
  }
  return { registrations: accepted, cookie, invalid, pages }
}
