/**
 * Everything the client keeps for one service peer: the connection, a pool of MCP
 * sessions (streams) reused across calls (B14), and the protocol that peer accepted.
 * Blocking ops (wait, long-poll claims, tools) get a session of their own so they never
 * hold up the pipelined short calls behind them.
 */
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { LEGACY_PROTOCOL, MCP_PROTOCOL, ORIGINAL_CLIENT_MAX_FRAME } from '../protocol/ids.js'
import { FrameTooLargeError, StreamReader, encodeLine, writeBytes } from '../protocol/framing.js'
import { JsonParseError, encodeJson, isPlainObject, parseWireJson } from '../protocol/json.js'
import { openOptimisticStream, tuneConnection, tuneStream } from '../node/patches/index.js'
import { IdentifyDeferral } from '../node/identify-scheduler.js'
import { peerIdOf } from '../node/addresses.js'
import { connectionKindOf } from '../nat/connection-kind.js'
import type { ConnectionKind } from '../nat/connection-kind.js'
import { DeadlineError, DialError, ProtocolError, ProtocolNotSupportedError } from './errors.js'
import { McpSession } from './mcp-session.js'
import type { McpSessionOptions } from './mcp-session.js'
import { timeoutSignal } from '../util/timeout-signal.js'

export type WireProtocol = 'mcp' | 'legacy'

export interface PeerLinkOptions extends McpSessionOptions {
  /** Protocols in preference order (PROTOCOL). */
  protocols: WireProtocol[]
  /** Shared sessions opened before calls start to pipeline on busy ones. */
  maxSharedSessions?: number
}

export interface CallOptions {
  timeoutMs: number
  /** Use a session of its own (blocking ops). */
  exclusive?: boolean
  signal?: AbortSignal
}

const STREAM_OPTIONS = { runOnLimitedConnection: true, maxOutboundStreams: 1024 }
/** Retire client sessions before the service's 60 s idle close can race a new call. */
const SESSION_IDLE_MS = 45_000

export class PeerLink {
  readonly addrs: Multiaddr[]
  private readonly node: Libp2p
  private readonly opts: PeerLinkOptions
  private connection: Connection | null = null
  private connecting: Promise<Connection> | null = null
  private protocol: WireProtocol | null = null
  private readonly shared: McpSession[] = []
  private readonly idleExclusive: McpSession[] = []
  private opening = 0
  private closed = false
  /** The connection is relayed: each call first looks for a direct one (preferDirect). */
  private onRelay = false
  /** Sessions on a relayed connection a direct one replaced: they finish, then close. */
  private readonly retired = new WeakSet<McpSession>()
  /** Our first calls need nothing from identify: they go first (identify-scheduler.ts). */
  private readonly identify: IdentifyDeferral

  constructor (node: Libp2p, addrs: Multiaddr[], opts: PeerLinkOptions) {
    this.node = node
    this.addrs = addrs
    this.opts = opts
    this.identify = new IdentifyDeferral(node, peerIdOf(addrs[0]?.toString() ?? ''))
  }

  get remotePeerId (): string | null {
    return this.connection?.remotePeer.toString() ?? null
  }

  /** Whether the connection is currently relayed or direct; null before it is made. */
  get connectionKind (): ConnectionKind | null {
    return this.connection !== null ? connectionKindOf(this.connection) : null
  }

  get connectedAddr (): string | null {
    return this.connection?.remoteAddr.toString() ?? null
  }

  async call (envelope: Record<string, unknown>, options: CallOptions): Promise<Record<string, unknown>> {
    const deadline = Date.now() + options.timeoutMs
    const left = (): number => {
      const ms = deadline - Date.now()
      if (ms <= 0) throw new DeadlineError('deadline passed before the request was sent', false)
      return ms
    }
    const order = this.protocol !== null ? [this.protocol] : this.opts.protocols
    if (this.onRelay) this.preferDirect()
    let lastError: Error | undefined
    this.identify.callStarted()
    try {
      for (const protocol of order) {
        try {
          const reply = protocol === 'mcp'
            ? await this.callMcp(envelope, options.exclusive === true || options.signal !== undefined, left, options.signal)
            : await this.callLegacy(envelope, left)
          this.protocol = protocol
          return reply
        } catch (err) {
          if (!(err instanceof ProtocolNotSupportedError)) throw err
          lastError = err
        }
      }
    } finally {
      this.identify.callEnded()
    }
    throw lastError ?? new ProtocolNotSupportedError('no protocol configured')
  }

  /**
   * Closes this link's sessions. The connection itself is libp2p's: a dial to a peer
   * that is already connected returns the same connection, so the DHT, rendezvous or
   * another link may be using it (a relay probed as a bootstrap endpoint is also our
   * DHT seed). The connection manager prunes it when nobody does; `hangUp` is for when
   * the connection itself is known to be bad.
   */
  close (): void {
    this.closed = true
    this.identify.end()
    for (const s of [...this.shared.splice(0), ...this.idleExclusive.splice(0)]) s.close()
    this.connection = null
  }

  /** Closes the sessions and the connection (it failed, or the peer is not wanted). */
  hangUp (): void {
    const conn = this.connection
    this.close()
    if (conn !== null) conn.close().catch(() => conn.abort(new Error('close failed')))
  }

  private async connect (timeoutMs: number): Promise<Connection> {
    if (this.closed) throw new DialError('peer link closed')
    if (this.connection !== null && this.connection.status === 'open') return this.connection
    if (this.connecting !== null) return await this.connecting
    this.identify.hold()
    this.connecting = (async () => {
      try {
        const conn = await this.node.dial(this.addrs, { signal: timeoutSignal(timeoutMs) })
        tuneConnection(conn)
        this.connection = conn
        this.onRelay = connectionKindOf(conn) === 'relayed'
        return conn
      } catch (err) {
        if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') {
          throw new DeadlineError(`dial timed out after ${timeoutMs} ms`, false)
        }
        throw new DialError(`dial failed: ${(err as Error).message}`, { cause: err })
      } finally {
        this.connecting = null
      }
    })()
    return await this.connecting
  }

  /**
   * Once a hole punch opened a direct connection to our peer, new calls take it: the
   * sessions on the relayed connection take no new calls, finish the ones they carry
   * and close, so the relayed connection goes idle and is retired (nat/holepunch.ts).
   */
  private preferDirect (): void {
    const relayed = this.connection
    if (relayed === null) return
    const direct = this.node.getConnections(relayed.remotePeer).find((c) => c.status === 'open' && connectionKindOf(c) === 'direct')
    if (direct === undefined) return
    tuneConnection(direct)
    this.connection = direct
    this.onRelay = false
    for (const s of [...this.shared.splice(0), ...this.idleExclusive.splice(0)]) {
      this.retired.add(s)
      if (s.pending === 0) s.close()
    }
  }

  /** Closes a retired session once its last call is answered. */
  private releaseRetired (session: McpSession): void {
    if (this.retired.has(session) && session.pending === 0) session.close()
  }

  private async openStream (protocol: string, timeoutMs: number): Promise<Stream> {
    const conn = await this.connect(timeoutMs)
    try {
      const stream = await conn.newStream(protocol, { ...STREAM_OPTIONS, signal: timeoutSignal(timeoutMs) })
      tuneStream(stream)
      return stream
    } catch (err) {
      const name = (err as Error).name
      if (name === 'UnsupportedProtocolError') throw new ProtocolNotSupportedError(`peer does not speak ${protocol}`)
      if (name === 'AbortError' || name === 'TimeoutError') throw new DeadlineError(`opening a ${protocol} stream timed out`, false)
      throw new DialError(`opening a stream failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * A new MCP session with `envelope` as its first call. The stream is negotiated
   * optimistically and the call pipelined behind `initialize`, so the request leaves
   * with the stream's opening bytes and its reply costs one round trip instead of three
   * (negotiation, initialize, call). Resolves once the peer has accepted the protocol
   * and initialize succeeded; `reply` is the first call's outcome.
   */
  private async openSession (envelope: Record<string, unknown>, left: () => number): Promise<{ session: McpSession, reply: Promise<Record<string, unknown>> }> {
    const conn = await this.connect(left())
    let optimistic
    try {
      optimistic = await openOptimisticStream(conn, MCP_PROTOCOL)
    } catch (err) {
      throw new DialError(`opening a stream failed: ${(err as Error).message}`, { cause: err })
    }
    if (optimistic === null) {
      const session = await this.newSession(left)
      return { session, reply: session.call(envelope, left()) }
    }
    tuneStream(optimistic.stream)
    const { session, ready } = McpSession.start(optimistic.stream, this.opts, left())
    const reply = session.call(envelope, left())
    // Each is observed below or by the caller; a rejection meanwhile is not unhandled.
    reply.catch(() => {})
    const [negotiated, initialized] = await Promise.allSettled([optimistic.negotiated, ready])
    if (negotiated.status === 'fulfilled' && initialized.status === 'fulfilled') return { session, reply }
    session.close()
    throw openingError(negotiated, initialized)
  }

  /** A session on a fully negotiated stream (connections whose muxer we do not recognise). */
  private async newSession (left: () => number): Promise<McpSession> {
    const stream = await this.openStream(MCP_PROTOCOL, left())
    try {
      return await McpSession.open(stream, this.opts, left())
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  private pruneSessions (): void {
    const now = performance.now()
    for (const list of [this.shared, this.idleExclusive]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const s = list[i]
        const idle = s.pending === 0 && now - s.lastUsed > SESSION_IDLE_MS
        if (!s.hasCapacity || idle) {
          list.splice(i, 1)
          if (s.pending === 0) s.close()
        }
      }
    }
  }

  private async callMcp (envelope: Record<string, unknown>, exclusive: boolean, left: () => number, signal?: AbortSignal): Promise<Record<string, unknown>> {
    this.pruneSessions()
    if (exclusive) {
      if (signal?.aborted === true) throw new DialError('call aborted')
      const idle = this.idleExclusive.pop()
      const { session, reply } = idle !== undefined ? { session: idle, reply: idle.call(envelope, left()) } : await this.openSession(envelope, left)
      // Closing the stream is the only way to tell the service to stop a blocking op.
      const abort = (): void => session.close()
      signal?.addEventListener('abort', abort, { once: true })
      // It may have fired while the session was opening.
      if (signal?.aborted ?? false) abort()
      try {
        return await reply
      } finally {
        signal?.removeEventListener('abort', abort)
        if (session.hasCapacity && !this.closed && !this.retired.has(session)) this.idleExclusive.push(session)
        else session.close()
      }
    }
    let session = this.pickShared()
    const max = this.opts.maxSharedSessions ?? 4
    if (session === undefined || (session.pending > 0 && this.shared.length + this.opening < max)) {
      this.opening++
      let opened
      try {
        opened = await this.openSession(envelope, left)
      } finally {
        this.opening--
      }
      this.shared.push(opened.session)
      return await opened.reply
    }
    try {
      return await session.call(envelope, left())
    } finally {
      this.releaseRetired(session)
    }
  }

  private pickShared (): McpSession | undefined {
    let best: McpSession | undefined
    for (const s of this.shared) {
      if (!s.hasCapacity) continue
      if (best === undefined || s.pending < best.pending) best = s
    }
    return best
  }

  private async callLegacy (envelope: Record<string, unknown>, left: () => number): Promise<Record<string, unknown>> {
    const stream = await this.openStream(LEGACY_PROTOCOL, left())
    const timer = setTimeout(() => stream.abort(new Error('timeout')), left())
    try {
      await writeBytes(stream, encodeLine(encodeJson(envelope)))
      const line = await new StreamReader(stream).readLine(ORIGINAL_CLIENT_MAX_FRAME)
      if (line === null) throw new ProtocolError('legacy peer closed the stream without a reply')
      const reply = parseWireJson(line)
      if (!isPlainObject(reply)) throw new ProtocolError('legacy reply is not a JSON object')
      return reply
    } catch (err) {
      if (err instanceof FrameTooLargeError) throw new ProtocolError('legacy reply larger than 1 MiB')
      if (err instanceof JsonParseError) throw new ProtocolError('invalid_json_response')
      if (err instanceof ProtocolError) throw err
      if (stream.status === 'aborted') throw new DeadlineError('legacy reply timed out')
      throw new DialError('legacy stream failed', { cause: err, sent: true })
    } finally {
      clearTimeout(timer)
      if (stream.status === 'open') stream.close().catch(() => {})
    }
  }
}

/** Why an optimistically opened session failed, as the error its first call reports. */
function openingError (negotiated: PromiseSettledResult<void>, initialized: PromiseSettledResult<void>): Error {
  const refusal = negotiated.status === 'rejected' ? negotiated.reason as Error : null
  if (refusal?.name === 'UnsupportedProtocolError') return new ProtocolNotSupportedError(`peer does not speak ${MCP_PROTOCOL}`)
  // A failed initialize (timeout, error reply, lost stream) says more than the
  // negotiation that its abort cut short.
  if (initialized.status === 'rejected') return initialized.reason as Error
  // The request left with the proposal: it may have been handled.
  return new DialError(`opening a stream failed: ${refusal?.message ?? 'unknown'}`, { cause: refusal, sent: true })
}
