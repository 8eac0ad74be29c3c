/**
 * DCUtR (discovery.md §9.2) on the standard `/libp2p/dcutr` protocol, with the one
 * change that makes TCP hole punching work from Node: port prediction.
 *
 * Each side picks a fresh local port P, tells the other `/ip4/<its public IP>/tcp/P` in
 * CONNECT (the spec allows "observed and predicted" addresses), and on SYNC both dial
 * each other from exactly port P: a TCP simultaneous open. A port-preserving NAT (plain
 * Linux MASQUERADE, most home routers) maps P to P, so the SYNs cross and both NATs let
 * them in. A symmetric NAT (random ports) cannot be predicted: the punch fails within
 * `windowMs` and the relayed connection carries on, which it must do anyway.
 *
 * Why not @libp2p/dcutr (measured in test/acceptance/nat-holepunch.test.ts and README):
 * 1. it sends `addressManager.getAddresses()`, which holds no public address for a
 *    NATed node until AutoNAT confirms one — and behind NAT nothing gets confirmed —
 *    so CONNECT carries no dialable address at all;
 * 2. it dials from a random ephemeral port (Node cannot bind the listen port for an
 *    outgoing socket: no SO_REUSEPORT on connect), so the NAT mapping the peer dials
 *    never exists;
 * 3. its `initiator: false` goes through the dial queue, which drops that option, so
 *    both ends would negotiate as initiators.
 * We dial the TCP transport ourselves instead, which passes `localPort` to net.connect
 * and `initiator` to the upgrader; the responder's muxer is a server too
 * (node/patches/simultaneous-open.ts), as go-libp2p requires.
 */
import { createServer } from 'node:net'
import type { Connection, IdentifyResult, Logger, PeerId, Stream, Upgrader } from '@libp2p/interface'
import type { NatComponents } from './components.js'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { dialSimultaneousOpen } from '../node/patches/index.js'
import { DCUTR_PROTOCOL, HolePunchType, PbStream, withSignal } from './pb.js'
import { ipPortOf, isCircuitAddr, isPrivateIp, isPublicTcpAddr, isRelayedConnection, tcpAddr } from './addrs.js'

/** The upgrader: a punch dials the transport itself (node/patches/simultaneous-open.ts). */
export type HolePunchComponents = NatComponents & { upgrader: Upgrader }

export interface HolePunchInit {
  /** Time for the whole exchange plus the punch. */
  windowMs?: number
  /** How long the upgraded peer's relayed connection may stay to finish calls. */
  relayedDrainMs?: number
}

export type PunchOutcome = 'direct' | 'failed' | 'no_public_address' | 'error'

export interface HolePunchSnapshot {
  attempts: number
  successes: number
  /** Why the last attempts ended, newest last (at most 10). */
  recent: Array<{ peer_id: string, outcome: PunchOutcome, role: 'initiator' | 'responder', at: number, elapsed_ms: number, detail: string }>
}

/** Streams on a relayed connection that do not count as "in use" by the application. */
const HOUSEKEEPING = ['/ipfs/id/', '/ipfs/ping/', '/libp2p/dcutr', '/libp2p/autonat/']

export class HolePunchService {
  private readonly c: HolePunchComponents
  private readonly log: Logger
  private readonly windowMs: number
  private readonly drainMs: number
  private readonly observed = new Map<string, number>()
  private readonly running = new Set<string>()
  private readonly snap: HolePunchSnapshot = { attempts: 0, successes: 0, recent: [] }
  private topologyId: string | undefined
  private readonly listeners = new Set<(peer: string, outcome: PunchOutcome) => void>()
  /** Connections our punches opened (see beforeStop). */
  private readonly punched = new Set<Connection>()

  constructor (components: HolePunchComponents, init: HolePunchInit = {}) {
    this.c = components
    this.log = components.logger.forComponent('taskqueue:nat:holepunch')
    this.windowMs = init.windowMs ?? 6000
    this.drainMs = init.relayedDrainMs ?? 30_000
  }

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/holepunch'

  async start (): Promise<void> {
    this.c.events.addEventListener('peer:identify', this.onIdentify)
    await this.c.registrar.handle(DCUTR_PROTOCOL, (stream, connection) => { void this.respond(stream, connection) },
      { runOnLimitedConnection: true, maxInboundStreams: 2, maxOutboundStreams: 2 })
    this.topologyId = await this.c.registrar.register(DCUTR_PROTOCOL, {
      notifyOnLimitedConnection: true,
      onConnect: (_peer, connection) => {
        // The side that received the relayed connection starts, as in the spec.
        if (isRelayedConnection(connection) && connection.direction === 'inbound') void this.initiate(connection)
      }
    })
  }

  /**
   * A graceful close of a simultaneous-open connection never settled in our tests, and
   * node.stop() waited on it for ever; a stopping node aborts them instead.
   */
  beforeStop (): void {
    for (const conn of this.punched) if (conn.status === 'open') conn.abort(new Error('node stopping'))
    this.punched.clear()
  }

  async stop (): Promise<void> {
    this.c.events.removeEventListener('peer:identify', this.onIdentify)
    if (this.topologyId !== undefined) this.c.registrar.unregister(this.topologyId)
    await this.c.registrar.unhandle(DCUTR_PROTOCOL)
  }

  snapshot (): HolePunchSnapshot {
    return { attempts: this.snap.attempts, successes: this.snap.successes, recent: [...this.snap.recent] }
  }

  /** Called with every punch outcome (the client waits on it to report direct vs relayed). */
  onOutcome (fn: (peer: string, outcome: PunchOutcome) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const { connection, observedAddr } = evt.detail
    if (isRelayedConnection(connection) || observedAddr === undefined) return
    const seen = ipPortOf(observedAddr)
    if (seen !== null && seen.family === 4 && !isPrivateIp(seen.ip)) this.observed.set(seen.ip, Date.now())
  }

  /** Our public IPv4 as others see it (or as we own it on a WAN interface). */
  private publicIp (): string | null {
    const own = this.c.transportManager.getAddrs().find((a) => isPublicTcpAddr(a) && ipPortOf(a)?.family === 4)
    const seen = [...this.observed.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
    return seen ?? (own !== undefined ? ipPortOf(own)?.ip ?? null : null)
  }

  private async initiate (relayed: Connection): Promise<void> {
    const peer = relayed.remotePeer.toString()
    if (this.running.has(peer) || this.hasDirect(relayed.remotePeer)) return
    this.running.add(peer)
    const started = Date.now()
    const signal = AbortSignal.timeout(this.windowMs)
    let stream: Stream | undefined
    try {
      const ip = this.publicIp()
      if (ip === null) return this.finish(peer, 'initiator', 'no_public_address', started, 'no observed public IP yet', false)
      this.snap.attempts++
      const port = await freePort()
      this.log('hole punch: initiating with %s over the relayed connection, from %s:%d', peer, ip, port)
      stream = await relayed.newStream(DCUTR_PROTOCOL, { runOnLimitedConnection: true, signal })
      const s = stream
      const pb = new PbStream(stream, 4096)
      const abort = (): void => s.abort(new Error('dcutr timed out'))
      const t0 = Date.now()
      await pb.writeHolePunch({ type: HolePunchType.CONNECT, addrs: [tcpAddr(ip, port).bytes] })
      const connect = (await withSignal(pb.readHolePunch(), signal, abort))
      if (connect.type !== HolePunchType.CONNECT) throw new Error('expected CONNECT')
      const rtt = Date.now() - t0
      const target = pickTarget(connect.addrs, relayed.remotePeer)
      await pb.writeHolePunch({ type: HolePunchType.SYNC, addrs: [] })
      // Not awaited: the half-RTT timer below must start now, not after the close handshake.
      void stream.close().catch(() => {})
      if (target === null) return this.finish(peer, 'initiator', 'failed', started, 'peer sent no public TCP address', true)
      // The responder dials on receiving SYNC, half a round trip from now: dial then too.
      await new Promise((resolve) => setTimeout(resolve, rtt / 2))
      const conn = await this.punch(target, port, false, signal)
      this.finish(peer, 'initiator', conn !== null ? 'direct' : 'failed', started, conn !== null ? conn.remoteAddr.toString() : `no answer from ${target.toString()}`, true)
    } catch (err) {
      stream?.abort(err as Error)
      this.finish(peer, 'initiator', 'error', started, (err as Error).message, true)
    } finally {
      this.running.delete(peer)
    }
  }

  private async respond (stream: Stream, relayed: Connection): Promise<void> {
    const peer = relayed.remotePeer.toString()
    const started = Date.now()
    const signal = AbortSignal.timeout(this.windowMs)
    const abort = (): void => stream.abort(new Error('dcutr timed out'))
    try {
      const pb = new PbStream(stream, 4096)
      const connect = (await withSignal(pb.readHolePunch(), signal, abort))
      if (connect.type !== HolePunchType.CONNECT) throw new Error('expected CONNECT')
      const ip = this.publicIp()
      const port = await freePort()
      this.snap.attempts++
      this.log('hole punch: %s asked to connect; answering from %s:%d', peer, ip ?? '(no public IP)', port)
      await pb.writeHolePunch({ type: HolePunchType.CONNECT, addrs: ip !== null ? [tcpAddr(ip, port).bytes] : [] })
      const sync = (await withSignal(pb.readHolePunch(), signal, abort))
      if (sync.type !== HolePunchType.SYNC) throw new Error('expected SYNC')
      void stream.close().catch(() => {})
      const target = pickTarget(connect.addrs, relayed.remotePeer)
      if (target === null || ip === null) {
        return this.finish(peer, 'responder', ip === null ? 'no_public_address' : 'failed', started, 'no address to punch', true)
      }
      const conn = await this.punch(target, port, true, signal)
      this.finish(peer, 'responder', conn !== null ? 'direct' : 'failed', started, conn !== null ? conn.remoteAddr.toString() : `no answer from ${target.toString()}`, true)
      // Outbound relayed side: retire the relayed connection once its calls are done.
      if (conn !== null) this.retire(relayed)
    } catch (err) {
      stream.abort(err as Error)
      this.finish(peer, 'responder', 'error', started, (err as Error).message, true)
    }
  }

  /**
   * Dials `target` from `localPort` until connected or the window closes. A refused
   * attempt (a NAT that answers RST before the peer's SYN opened it) is retried at once.
   */
  private async punch (target: Multiaddr, localPort: number, initiator: boolean, signal: AbortSignal): Promise<Connection | null> {
    while (!signal.aborted) {
      try {
        const transport = this.c.transportManager.dialTransportForMultiaddr(target)
        if (transport === undefined) return null
        const conn = await dialSimultaneousOpen(transport, this.c.upgrader, target, { signal, localPort, initiator })
        if (isRelayedConnection(conn)) return null
        this.punched.add(conn)
        conn.addEventListener('close', () => this.punched.delete(conn), { once: true })
        return conn
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? ''
        if (signal.aborted || !/ECONNREFUSED|ECONNRESET|EADDRINUSE|connection error/.test(`${code} ${(err as Error).message}`)) return null
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    return null
  }

  private hasDirect (peer: PeerId): boolean {
    return this.c.connectionManager.getConnections(peer).some((c) => !isRelayedConnection(c) && c.status === 'open')
  }

  /** Closes a relayed connection once no application stream uses it (or after drainMs). */
  private retire (relayed: Connection): void {
    const until = Date.now() + this.drainMs
    const tick = (): void => {
      if (relayed.status !== 'open') return
      const busy = relayed.streams.some((s) => !HOUSEKEEPING.some((p) => (s.protocol ?? '').startsWith(p)))
      if (!busy || Date.now() >= until) {
        relayed.close().catch(() => relayed.abort(new Error('close failed')))
        return
      }
      setTimeout(tick, 250).unref()
    }
    setTimeout(tick, 250).unref()
  }

  private finish (peer: string, role: 'initiator' | 'responder', outcome: PunchOutcome, started: number, detail: string, counted: boolean): void {
    if (counted && outcome === 'direct') this.snap.successes++
    this.log('hole punch with %s (%s): %s after %d ms: %s', peer, role, outcome, Date.now() - started, detail)
    this.snap.recent.push({ peer_id: peer, outcome, role, at: Date.now(), elapsed_ms: Date.now() - started, detail: detail.slice(0, 200) })
    if (this.snap.recent.length > 10) this.snap.recent.shift()
    for (const fn of this.listeners) fn(peer, outcome)
  }
}

/** The first public IPv4 TCP address the peer sent, with its peer id appended. */
function pickTarget (addrs: Uint8Array[], peer: PeerId): Multiaddr | null {
  for (const bytes of addrs) {
    try {
      const ma = multiaddr(bytes)
      const ipp = ipPortOf(ma)
      if (ipp === null || ipp.family !== 4 || ipp.port === null || !isPublicTcpAddr(ma)) continue
      return tcpAddr(ipp.ip, ipp.port).encapsulate(`/p2p/${peer.toString()}`)
    } catch {}
  }
  return null
}

/** A port the OS considers free right now (tiny race with other binders, accepted). */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '0.0.0.0', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export function holePunchService (init: HolePunchInit = {}): (components: HolePunchComponents) => HolePunchService {
  return (components) => new HolePunchService(components, init)
}
