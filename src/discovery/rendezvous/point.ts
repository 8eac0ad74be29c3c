/**
 * A rendezvous point (discovery.md §5) as a js-libp2p service. Registrations live in
 * memory only: a restarted point starts empty and registrars re-register after they
 * see the reconnect. Nothing a peer sends may crash the node; malformed streams are
 * reset and counted.
 */
import type { ComponentLogger, Connection, Logger, PeerId, PrivateKey, Startable, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { FrameTooLargeError, StreamReader, TruncatedFrameError } from '../../protocol/framing.js'
import { MAX_MESSAGE_BYTES, MessageType, RENDEZVOUS_PROTOCOL, RendezvousProtocolError, ResponseStatus, utf8Length } from './proto.js'
import type { DiscoverMessage, RegisterMessage, RendezvousMessage, ResponseStatusName } from './proto.js'
import { InvalidPeerRecordError, recordAddresses, sealPeerRecord, verifySignedPeerRecord } from './record.js'
import { RegistrationStore } from './store.js'
import type { RegistrationCounts } from './store.js'
import { readMessage, writeMessage } from './wire.js'

export const DEFAULT_TTL_S = 7200
export const MIN_TTL_S = 120
export const MAX_TTL_S = 72 * 3600
export const MAX_NAMESPACE_BYTES = 255
export const DEFAULT_DISCOVER_LIMIT = 100
export const MAX_DISCOVER_LIMIT = 1000

export interface RendezvousPointInit {
  /** TTL granted when a REGISTER carries none (clamped into min..max). */
  defaultTtlS?: number
  minTtlS?: number
  maxTtlS?: number
  maxRegistrationsPerNamespace?: number
  maxNamespacesPerPeer?: number
  /** Across all namespaces; bounds memory against peers minting identities. */
  maxRegistrations?: number
  /** A signed record larger than this is refused, so 1000 of them fit in a response. */
  maxRecordBytes?: number
  sweepIntervalMs?: number
  /** A stream that sends nothing for this long is reset. */
  streamIdleTimeoutMs?: number
  maxMessagesPerStream?: number
  /** When this point itself serves TaskQueue, the namespaces it serves (it appears in their DISCOVER results). */
  self?: () => { namespaces: string[] } | null
  /** Millisecond clock, injectable so tests can expire registrations without waiting. */
  now?: () => number
}

/** What the point needs from libp2p's components (a subset, so tests and other hosts can supply it). */
export interface RendezvousPointComponents {
  peerId: PeerId
  privateKey: PrivateKey
  registrar: {
    handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
    unhandle: (protocol: string) => Promise<void>
  }
  addressManager: { getAddresses: () => Multiaddr[] }
  logger?: ComponentLogger
}

export interface RendezvousPointStats extends RegistrationCounts {
  requests: {
    register_ok: number
    register_rejected: number
    unregister: number
    discover: number
    malformed: number
    internal_errors: number
  }
}

export interface RendezvousPoint extends Startable {
  stats: () => RendezvousPointStats
}

const noopLog = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as unknown as Logger

/** Room left in a DISCOVER_RESPONSE for everything but the registrations. */
const RESPONSE_BUDGET_BYTES = MAX_MESSAGE_BYTES - 16 * 1024

export function isValidNamespace (ns: string): boolean {
  const n = utf8Length(ns)
  return n >= 1 && n <= MAX_NAMESPACE_BYTES
}

class RendezvousPointService implements RendezvousPoint, Startable {
  readonly [Symbol.toStringTag] = '@taskqueue-p2p/rendezvous-point'
  private readonly store: RegistrationStore
  private readonly now: () => number
  private readonly log: Logger
  private readonly minTtlS: number
  private readonly maxTtlS: number
  private readonly defaultTtlS: number
  private readonly maxRecordBytes: number
  private readonly counters = { register_ok: 0, register_rejected: 0, unregister: 0, discover: 0, malformed: 0, internal_errors: 0 }
  private sweepTimer: NodeJS.Timeout | null = null
  private selfRecord: { key: string, bytes: Uint8Array } | null = null

  constructor (private readonly components: RendezvousPointComponents, private readonly init: RendezvousPointInit) {
    this.now = init.now ?? Date.now
    this.minTtlS = init.minTtlS ?? MIN_TTL_S
    this.maxTtlS = init.maxTtlS ?? MAX_TTL_S
    this.defaultTtlS = Math.min(this.maxTtlS, Math.max(this.minTtlS, init.defaultTtlS ?? DEFAULT_TTL_S))
    this.maxRecordBytes = init.maxRecordBytes ?? 4096
    this.log = components.logger?.forComponent('taskqueue:rendezvous:point') ?? noopLog
    this.store = new RegistrationStore({
      perNamespace: init.maxRegistrationsPerNamespace ?? 1000,
      namespacesPerPeer: init.maxNamespacesPerPeer ?? 100,
      total: init.maxRegistrations ?? 100_000
    }, this.now)
  }

  async start (): Promise<void> {
    await this.components.registrar.handle(RENDEZVOUS_PROTOCOL, (stream, connection) => { this.onStream(stream, connection) }, {
      runOnLimitedConnection: true,
      maxInboundStreams: 32,
      maxOutboundStreams: 32
    })
    this.sweepTimer = setInterval(() => this.store.sweep(), this.init.sweepIntervalMs ?? 60_000)
    this.sweepTimer.unref()
  }

  async stop (): Promise<void> {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer)
    this.sweepTimer = null
    await this.components.registrar.unhandle(RENDEZVOUS_PROTOCOL).catch(() => {})
  }

  stats (): RendezvousPointStats {
    return { ...this.store.counts(), requests: { ...this.counters } }
  }

  private onStream (stream: Stream, connection: Connection): void {
    this.serve(stream, connection.remotePeer)
      .catch((err: unknown) => {
        this.log.trace('rendezvous stream from %p failed: %s', connection.remotePeer, err instanceof Error ? err.message : String(err))
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
      .finally(() => {
        if (stream.status === 'open') stream.close().catch(() => stream.abort(new Error('close failed')))
      })
  }

  /** Request/response pairs until the peer closes, idles, or breaks the protocol. */
  private async serve (stream: Stream, remote: PeerId): Promise<void> {
    const reader = new StreamReader(stream)
    const idleMs = this.init.streamIdleTimeoutMs ?? 10_000
    const maxMessages = this.init.maxMessagesPerStream ?? 100
    for (let i = 0; i < maxMessages; i++) {
      const idle = setTimeout(() => stream.abort(new Error('idle timeout')), idleMs)
      let msg: RendezvousMessage | null
      try {
        msg = await readMessage(reader, MAX_MESSAGE_BYTES)
      } catch (err) {
        if (err instanceof FrameTooLargeError || err instanceof TruncatedFrameError || err instanceof RendezvousProtocolError) {
          this.counters.malformed++
          stream.abort(err)
          return
        }
        throw err
      } finally {
        clearTimeout(idle)
      }
      if (msg === null) return
      const reply = await this.respond(msg, remote)
      if (reply === 'violation') {
        this.counters.malformed++
        stream.abort(new RendezvousProtocolError(`unexpected message type ${msg.type}`))
        return
      }
      if (reply !== null) await writeMessage(stream, reply)
    }
  }

  /** The reply to one message; null when the protocol has none (UNREGISTER). */
  private async respond (msg: RendezvousMessage, remote: PeerId): Promise<RendezvousMessage | null | 'violation'> {
    switch (msg.type) {
      case MessageType.REGISTER: {
        const result = await this.guard(async () => await this.register(msg.register ?? {}, remote), (status, statusText) => ({ status, statusText }))
        if (result.status === ResponseStatus.OK) this.counters.register_ok++
        else this.counters.register_rejected++
        return { type: MessageType.REGISTER_RESPONSE, registerResponse: result }
      }
      case MessageType.UNREGISTER: {
        this.counters.unregister++
        const ns = msg.unregister?.ns ?? ''
        if (isValidNamespace(ns)) this.store.remove(ns, remote.toString())
        return null
      }
      case MessageType.DISCOVER: {
        this.counters.discover++
        const result = await this.guard(async () => await this.discover(msg.discover ?? {}), (status, statusText) => ({ registrations: [], status, statusText }))
        return { type: MessageType.DISCOVER_RESPONSE, discoverResponse: result }
      }
      default:
        return 'violation'
    }
  }

  /** A bug in handling one request answers E_INTERNAL_ERROR instead of killing the stream. */
  private async guard<T> (fn: () => Promise<T>, onError: (status: number, text: string) => T): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      this.counters.internal_errors++
      this.log.error('rendezvous request failed: %s', err instanceof Error ? err.message : String(err))
      return onError(ResponseStatus.E_INTERNAL_ERROR, 'internal error')
    }
  }

  private async register (m: RegisterMessage, remote: PeerId): Promise<{ status: number, statusText?: string, ttl?: number }> {
    const reject = (name: ResponseStatusName, statusText: string): { status: number, statusText: string } => ({ status: ResponseStatus[name], statusText })
    const ns = m.ns ?? ''
    if (!isValidNamespace(ns)) return reject('E_INVALID_NAMESPACE', `namespace must be 1..${MAX_NAMESPACE_BYTES} bytes`)
    // Absent and 0 both mean "the default": clients differ in how they leave it out.
    const ttl = m.ttl === undefined || m.ttl === 0 ? this.defaultTtlS : m.ttl
    if (ttl < this.minTtlS || ttl > this.maxTtlS) return reject('E_INVALID_TTL', `ttl must be ${this.minTtlS}..${this.maxTtlS} s`)
    const spr = m.signedPeerRecord
    if (spr === undefined || spr.byteLength === 0) return reject('E_INVALID_SIGNED_PEER_RECORD', 'signed peer record missing')
    if (spr.byteLength > this.maxRecordBytes) return reject('E_INVALID_SIGNED_PEER_RECORD', `signed peer record exceeds ${this.maxRecordBytes} bytes`)
    let signer: PeerId
    try {
      signer = (await verifySignedPeerRecord(spr)).peerId
    } catch (err) {
      if (err instanceof InvalidPeerRecordError) return reject('E_INVALID_SIGNED_PEER_RECORD', err.message)
      throw err
    }
    if (!signer.equals(remote)) return reject('E_NOT_AUTHORIZED', 'a peer may only register its own record')
    const outcome = this.store.put({ ns, peerId: remote.toString(), signedPeerRecord: spr, expiresAtMs: this.now() + ttl * 1000 })
    if (!outcome.ok) {
      const why = outcome.reason === 'namespace_full' ? 'namespace is full' : outcome.reason === 'peer_full' ? 'too many registrations for this peer' : 'point is full'
      return reject('E_UNAVAILABLE', why)
    }
    return { status: ResponseStatus.OK, ttl }
  }

  private async discover (m: DiscoverMessage): Promise<{ registrations: RegisterMessage[], cookie?: Uint8Array, status: number, statusText?: string }> {
    // An empty namespace asks for every namespace (rendezvous spec).
    const ns = m.ns === undefined || m.ns === '' ? null : m.ns
    if (ns !== null && !isValidNamespace(ns)) {
      return { registrations: [], status: ResponseStatus.E_INVALID_NAMESPACE, statusText: `namespace must be 1..${MAX_NAMESPACE_BYTES} bytes` }
    }
    const limit = Math.min(MAX_DISCOVER_LIMIT, m.limit === undefined || m.limit <= 0 ? DEFAULT_DISCOVER_LIMIT : m.limit)
    let afterSeq = 0
    const hasCookie = m.cookie !== undefined && m.cookie.byteLength > 0
    if (hasCookie) {
      const seq = this.store.decodeCookie(m.cookie as Uint8Array, ns)
      if (seq === null) return { registrations: [], status: ResponseStatus.E_INVALID_COOKIE, statusText: 'unknown cookie' }
      afterSeq = seq
    }
    // Our own record sits before every stored one, so only a first page carries it.
    const own = hasCookie ? [] : (await this.selfRegistrations(ns)).slice(0, limit)
    const ownBytes = own.reduce((n, r) => n + (r.signedPeerRecord?.byteLength ?? 0) + 64, 0)
    const page = this.store.page(ns, afterSeq, limit - own.length, RESPONSE_BUDGET_BYTES - ownBytes)
    const self = this.components.peerId.toString()
    const now = this.now()
    const stored = page.registrations
      .filter((r) => r.peerId !== self)
      .map((r): RegisterMessage => ({ ns: r.ns, signedPeerRecord: r.signedPeerRecord, ttl: Math.max(1, Math.ceil((r.expiresAtMs - now) / 1000)) }))
    return { registrations: [...own, ...stored], cookie: this.store.encodeCookie(ns, page.nextSeq), status: ResponseStatus.OK }
  }

  private async selfRegistrations (ns: string | null): Promise<RegisterMessage[]> {
    const served = this.init.self?.() ?? null
    if (served === null) return []
    const namespaces = served.namespaces.filter((n) => isValidNamespace(n) && (ns === null || n === ns))
    if (namespaces.length === 0) return []
    const record = await this.ownRecord()
    if (record === null) return []
    return namespaces.map((n) => ({ ns: n, signedPeerRecord: record, ttl: this.defaultTtlS }))
  }

  /** Our record, re-signed only when our announced addresses change. */
  private async ownRecord (): Promise<Uint8Array | null> {
    const addrs = recordAddresses(this.components.addressManager.getAddresses())
    if (addrs.length === 0) return null
    const key = addrs.map((a) => a.toString()).join(' ')
    if (this.selfRecord?.key !== key) this.selfRecord = { key, bytes: await sealPeerRecord(this.components.privateKey, addrs) }
    return this.selfRecord.bytes
  }
}

/** libp2p service factory: `services: { rendezvous: rendezvousPoint({ … }) }`. */
export function rendezvousPoint (init: RendezvousPointInit = {}): (components: RendezvousPointComponents) => RendezvousPoint {
  return (components) => new RendezvousPointService(components, init)
}
