/**
 * Keeps Circuit Relay v2 reservations alive (discovery.md §9.1): up to `max` relays from
 * RELAY_PEERS, or else HOP-capable peers we are connected to (bootstrap peers, DHT).
 *
 * js-libp2p makes a reservation for a relay given in the listen addresses once, and
 * never again after the relay restarts or the connection drops (js-libp2p #3601); it
 * also throws from start() when that relay is down. So no relay goes into the listen
 * addresses: this keeper dials the relay itself, asks the circuit transport to listen on
 * `<relay>/p2p-circuit` only once connected, notices a lost reservation (disconnect,
 * expiry, refused refresh — the relay addresses vanish from the transport) within
 * `checkMs`, and tries again with jittered backoff, 1 s doubling to 60 s, without end.
 */
import type { ComponentLogger, IdentifyResult, Libp2pEvents, Logger, PeerId, PeerStore, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager, TransportManager } from '@libp2p/interface-internal'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { classifyIp, ipPortOf, isCircuitAddr, isPrivateIp, isRelayedConnection } from './addrs.js'
import { Backoff } from '../util/backoff.js'
import { reservationStoreOf } from '../node/patches/index.js'
import type { ReservationStoreView } from '../node/patches/index.js'

export const HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

export interface RelayKeeperComponents {
  peerId: PeerId
  connectionManager: ConnectionManager
  transportManager: TransportManager
  peerStore: PeerStore
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

export interface RelayKeeperInit {
  /** RELAY_PEERS; when empty, HOP-capable connected peers are used. */
  relays: readonly string[]
  /** Reservations to hold at once (spec: up to 2). */
  max?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  checkMs?: number
  dialTimeoutMs?: number
}

type RelayState = 'connecting' | 'reserved' | 'waiting' | 'standby'

interface Relay {
  peerId: string
  addrs: Multiaddr[]
  source: 'configured' | 'discovered'
  state: RelayState
  backoff: Backoff
  attempts: number
  lastError: string
  reservedAt: number | null
  timer?: NodeJS.Timeout
}

export interface ReservationInfo {
  relay_peer_id: string
  addr: string
  expires_at: number | null
}

export interface RelayKeeperSnapshot {
  reservations: ReservationInfo[]
  relays: Array<{ peer_id: string, source: string, state: RelayState, attempts: number, last_error: string, addrs: string[] }>
  /** Times a held reservation was found lost and re-made. */
  lost: number
}

export class RelayReservationKeeper {
  private readonly c: RelayKeeperComponents
  private readonly log: Logger
  private readonly init: Required<RelayKeeperInit>
  private readonly relays = new Map<string, Relay>()
  private checkTimer: NodeJS.Timeout | undefined
  private started = false
  private lost = 0

  constructor (components: RelayKeeperComponents, init: RelayKeeperInit) {
    this.c = components
    this.log = components.logger.forComponent('taskqueue:nat:relay-keeper')
    this.init = { max: 2, minBackoffMs: 1000, maxBackoffMs: 60_000, checkMs: 2000, dialTimeoutMs: 5000, ...init }
  }

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/relay-keeper'

  start (): void {
    this.started = true
    for (const text of this.init.relays) {
      const ma = multiaddr(text)
      const id = ma.getComponents().findLast((c) => c.code === 421)?.value
      // A relay without /p2p/ is dialled to learn its id; it is keyed by address until then.
      const key = id ?? text
      const known = this.relays.get(key)
      if (known !== undefined) known.addrs.push(ma)
      else this.relays.set(key, { peerId: id ?? '', addrs: [ma], source: 'configured', state: 'waiting', backoff: this.newBackoff(), attempts: 0, lastError: '', reservedAt: null })
    }
    this.c.events.addEventListener('peer:identify', this.onIdentify)
    this.c.events.addEventListener('peer:disconnect', this.onDisconnect)
    // Background on purpose: a relay that is down must not fail or delay start-up.
    setTimeout(() => { for (const r of this.relays.values()) this.attempt(r) }, 0).unref()
    this.checkTimer = setInterval(() => { this.check() }, this.init.checkMs)
    this.checkTimer.unref()
  }

  stop (): void {
    this.started = false
    clearInterval(this.checkTimer)
    for (const r of this.relays.values()) clearTimeout(r.timer)
    this.c.events.removeEventListener('peer:identify', this.onIdentify)
    this.c.events.removeEventListener('peer:disconnect', this.onDisconnect)
  }

  snapshot (): RelayKeeperSnapshot {
    const reservations: ReservationInfo[] = []
    const circuit = this.c.transportManager.getAddrs().filter((a) => isCircuitAddr(a))
    for (const r of this.relays.values()) {
      if (r.peerId === '') continue
      // One reservation per relay; it is reachable at several relay addresses (and the
      // transport may list one several times): report the most useful one.
      const addrs = circuit.filter((x) => x.toString().includes(`/p2p/${r.peerId}/p2p-circuit`)).sort((x, y) => rankRelayAddr(x) - rankRelayAddr(y))
      if (addrs.length > 0) reservations.push({ relay_peer_id: r.peerId, addr: `${addrs[0].toString()}/p2p/${this.c.peerId.toString()}`, expires_at: this.expiry(r.peerId) })
    }
    return {
      reservations,
      relays: [...this.relays.values()].map((r) => ({ peer_id: r.peerId, source: r.source, state: r.state, attempts: r.attempts, last_error: r.lastError, addrs: r.addrs.map(String) })),
      lost: this.lost
    }
  }

  /** Whether the circuit transport currently listens through this relay. */
  private holds (peerId: string): boolean {
    return peerId !== '' && this.c.transportManager.getAddrs().some((a) => a.toString().includes(`/p2p/${peerId}/p2p-circuit`))
  }

  private reservedCount (): number {
    return [...this.relays.values()].filter((r) => r.state === 'reserved').length
  }

  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    if (this.init.relays.length > 0) return
    const { peerId, protocols, connection } = evt.detail
    if (!protocols.includes(HOP_PROTOCOL) || isRelayedConnection(connection)) return
    const key = peerId.toString()
    const known = this.relays.get(key)
    const addr = connection.direction === 'outbound' ? connection.remoteAddr : null
    if (known !== undefined) {
      if (addr !== null && !known.addrs.some((a) => a.equals(addr))) known.addrs.unshift(addr)
      if (known.state === 'waiting' || known.state === 'standby') this.attempt(known)
      return
    }
    const r: Relay = { peerId: key, addrs: addr !== null ? [addr] : [], source: 'discovered', state: 'waiting', backoff: this.newBackoff(), attempts: 0, lastError: '', reservedAt: null }
    this.relays.set(key, r)
    this.attempt(r)
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const r = this.relays.get(evt.detail.toString())
    if (r?.state === 'reserved') this.markLost(r, 'relay disconnected')
  }

  /** Finds reservations that vanished without a disconnect (expiry, refused refresh). */
  private check (): void {
    for (const r of this.relays.values()) {
      if (r.state === 'reserved' && !this.holds(r.peerId)) this.markLost(r, 'reservation lost')
    }
    // A standby relay steps in when a held one is gone.
    if (this.reservedCount() < this.init.max) {
      for (const r of this.relays.values()) if (r.state === 'standby') this.attempt(r)
    }
  }

  private markLost (r: Relay, why: string): void {
    this.lost++
    this.log('relay: reservation on %s lost: %s', r.peerId, why)
    r.state = 'waiting'
    r.reservedAt = null
    r.lastError = why
    r.backoff.reset()
    this.retryLater(r)
  }

  private attempt (r: Relay): void {
    if (!this.started || r.state === 'connecting' || r.state === 'reserved') return
    clearTimeout(r.timer)
    if (this.reservedCount() >= this.init.max) {
      r.state = 'standby'
      return
    }
    r.state = 'connecting'
    r.attempts++
    this.log('relay: reserving a slot on %s (attempt %d)', r.peerId !== '' ? r.peerId : r.addrs.map(String).join(', '), r.attempts)
    void this.reserve(r).then(() => {
      this.log('relay: reservation made on %s', r.peerId)
      r.state = 'reserved'
      r.reservedAt = Date.now()
      r.lastError = ''
      r.backoff.reset()
    }, (err: Error) => {
      r.state = 'waiting'
      r.lastError = err.message.split('\n')[0].slice(0, 200)
      this.log('relay: reservation on %s failed: %s', r.peerId !== '' ? r.peerId : r.addrs.map(String).join(', '), r.lastError)
      this.retryLater(r)
    })
  }

  private async reserve (r: Relay): Promise<void> {
    const signal = AbortSignal.timeout(this.init.dialTimeoutMs)
    const target = r.peerId !== '' && r.addrs.length === 0 ? peerIdFromString(r.peerId) : r.addrs
    const conn = await this.c.connectionManager.openConnection(target, { signal })
    if (isRelayedConnection(conn)) throw new Error('only a relayed connection to the relay')
    const id = conn.remotePeer.toString()
    if (id === this.c.peerId.toString()) throw new Error('cannot use self as relay')
    if (r.peerId === '') {
      // First contact with an address given without /p2p/: key it by its id from now on.
      for (const [k, v] of this.relays) if (v === r) this.relays.delete(k)
      r.peerId = id
      this.relays.set(id, r)
    }
    if (this.holds(id)) return
    const relayAddr = conn.remoteAddr.getComponents().some((c) => c.code === 421) ? conn.remoteAddr : conn.remoteAddr.encapsulate(`/p2p/${id}`)
    try {
      await this.c.transportManager.listen([relayAddr.encapsulate('/p2p-circuit')])
    } catch (err) {
      this.forgetRefusal(id)
      throw err
    }
    if (!this.holds(id)) {
      this.forgetRefusal(id)
      throw new Error('relay accepted the connection but no reservation was made')
    }
  }

  private retryLater (r: Relay): void {
    if (!this.started) return
    clearTimeout(r.timer)
    const delay = r.backoff.next()
    r.timer = setTimeout(() => { if (r.state === 'waiting') this.attempt(r) }, delay)
    r.timer.unref()
  }

  /** discovery.md §9: jittered backoff, 1 s doubling to 60 s, without end. */
  private newBackoff (): Backoff {
    return new Backoff({ initialMs: this.init.minBackoffMs, maxMs: this.init.maxBackoffMs, jitter: 'half' })
  }

  /** The circuit transport's reservation store, when its shape is the one we know. */
  private store (): ReservationStoreView | null {
    return reservationStoreOf(this.c.transportManager.getTransports())
  }

  private expiry (peerId: string): number | null {
    try {
      const expire = this.store()?.getReservation?.(peerIdFromString(peerId))?.expire
      return expire !== undefined ? Number(expire) : null
    } catch {
      return null
    }
  }

  /**
   * The store remembers relays it once failed to dial as "previously invalid" and only
   * forgets them in discovery mode, so a relay that flapped once would be refused
   * forever (the same family of bugs as #3601). Clear that mark before retrying.
   */
  private forgetRefusal (peerId: string): void {
    try {
      this.store()?.relayFilter?.remove?.(peerIdFromString(peerId).toMultihash().bytes)
    } catch {}
  }
}

/** Public relay addresses first, then LAN ones, loopback last. */
function rankRelayAddr (a: Multiaddr): number {
  const ip = ipPortOf(a)?.ip
  if (ip === undefined) return 1
  if (classifyIp(ip) === 'loopback') return 3
  return isPrivateIp(ip) ? 2 : 0
}

export function relayKeeperService (init: RelayKeeperInit): (components: RelayKeeperComponents) => RelayReservationKeeper {
  return (components) => new RelayReservationKeeper(components, init)
}
