/**
 * The service side of rendezvous (discovery.md §5 "Service"): keeps our registration
 * alive at every point. Nothing here is awaited by start(): a point that is down only
 * shows up as `lastError` and a retry with backoff. A registration is refreshed at
 * half its granted ttl, after the connection to the point is lost (a restarted point
 * has forgotten us), and when our own addresses change.
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { ComponentLogger, Connection, IdentifyResult, Logger as Libp2pLogger, PeerId, PrivateKey, Startable } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../../logger.js'
import { RENDEZVOUS_PROTOCOL } from './proto.js'
import { RendezvousError, dialerFromComponents, register, unregister } from './client.js'
import type { RendezvousDialer } from './client.js'
import { peerIdOfMultiaddr, recordAddresses, sealPeerRecord } from './record.js'
import { DEFAULT_TTL_S } from './point.js'
import { Backoff } from '../../util/backoff.js'
import type { Jitter } from '../../util/backoff.js'
import type { DiscoveryAttempts } from '../attempts.js'

export interface RendezvousRegistrarInit {
  namespace: string
  /** Requested ttl (the point may grant less). */
  ttlS?: number
  /** RENDEZVOUS_POINTS: explicit point multiaddrs (with `/p2p/<id>` so reconnects are recognised). */
  points: string[]
  /** Used only when `points` is empty: those whose identify lists /rendezvous/1.0.0 become points. */
  bootstrapPeers: string[]
  logger?: Pick<Logger, 'debug' | 'info' | 'warn'>
  /** Per-request bound (dial + reply). */
  requestTimeoutMs?: number
  /** Total bound on the UNREGISTERs sent at stop. */
  unregisterTimeoutMs?: number
  initialBackoffMs?: number
  maxBackoffMs?: number
  /** Counts each REGISTER as a `rendezvous` `register` (the service's /metrics). */
  attempts?: DiscoveryAttempts
}

/** Method syntax on purpose: libp2p's typed event target has narrower (generic) signatures. */
interface EventSource {
  addEventListener (type: 'peer:identify' | 'peer:connect' | 'peer:disconnect' | 'self:peer:update', listener: (evt: CustomEvent) => void): void
  removeEventListener (type: 'peer:identify' | 'peer:connect' | 'peer:disconnect' | 'self:peer:update', listener: (evt: CustomEvent) => void): void
}

export interface RendezvousRegistrarComponents {
  peerId: PeerId
  privateKey: PrivateKey
  addressManager: { getAddresses: () => Multiaddr[] }
  connectionManager: { openConnection: (target: PeerId | Multiaddr, options?: { signal?: AbortSignal }) => Promise<Connection> }
  events: EventSource
  /** Consulted after dialling a bootstrap peer, in case identify finished before we looked. */
  peerStore?: { get: (peerId: PeerId) => Promise<{ protocols: string[] }> }
  logger?: ComponentLogger
}

export interface RegistrationStatus {
  /** The point as configured (multiaddr). */
  point: string
  /** Known once we have connected to it. */
  peerId: string | null
  ns: string
  /** Granted ttl of the current registration, seconds. */
  ttl: number | null
  /** Epoch ms the current registration ends, null when not registered. */
  expiresAt: number | null
  /** Last failure (`point_unreachable`, `E_…`, …), null after a success. */
  lastError: string | null
}

export interface RendezvousRegistrar extends Startable {
  registrations: () => RegistrationStatus[]
}

interface PointState {
  label: string
  /** Null when the configured address does not parse (reported, never dialled). */
  target: Multiaddr | null
  peerId: string | null
  ttl: number | null
  expiresAt: number | null
  lastError: string | null
  backoff: Backoff
  timer: NodeJS.Timeout | null
  inFlight: boolean
  /** A registration was requested while one was in flight (addresses changed meanwhile). */
  again: boolean
  /** The connection dropped since the last registration; the point may have forgotten us. */
  lost: boolean
}

const ADDRESS_CHANGE_DEBOUNCE_MS = 500
/**
 * libp2p starts listening in the transport manager's afterStart, concurrently with
 * ours: for this long after start, an attempt waits for addresses instead of
 * registering an empty record.
 */
const STARTUP_ADDRESS_WAIT_MS = 5000

class RendezvousRegistrarService implements RendezvousRegistrar, Startable {
  readonly [Symbol.toStringTag] = '@taskqueue-p2p/rendezvous-registrar'
  private readonly points = new Map<string, PointState>()
  /** Bootstrap peers not yet known to be points, by peer id (when the address names one). */
  private readonly candidates = new Map<string, Multiaddr>()
  private readonly ttlS: number
  private readonly initialBackoffMs: number
  private readonly maxBackoffMs: number
  private readonly log: Libp2pLogger | null
  private stopping = new AbortController()
  private running = false
  private startedAt = 0
  private record: { key: string, bytes: Uint8Array } | null = null
  private addressTimer: NodeJS.Timeout | null = null
  private readonly backgroundTimers = new Set<NodeJS.Timeout>()

  constructor (private readonly components: RendezvousRegistrarComponents, private readonly init: RendezvousRegistrarInit) {
    this.ttlS = init.ttlS ?? DEFAULT_TTL_S
    this.initialBackoffMs = init.initialBackoffMs ?? 1000
    this.maxBackoffMs = init.maxBackoffMs ?? 60_000
    this.log = components.logger?.forComponent('taskqueue:rendezvous:registrar') ?? null
  }

  async start (): Promise<void> {
    this.running = true
    this.startedAt = Date.now()
    this.stopping = new AbortController()
    // A restarted node starts over: the points may have forgotten us meanwhile.
    this.points.clear()
    this.candidates.clear()
    this.components.events.addEventListener('peer:identify', this.onIdentify)
    this.components.events.addEventListener('peer:connect', this.onConnect)
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.addEventListener('self:peer:update', this.onSelfUpdate)
    if (this.init.points.length > 0) {
      for (const addr of this.init.points) this.addPoint(addr)
    } else {
      for (const addr of this.init.bootstrapPeers) this.watchBootstrapPeer(addr)
    }
  }

  /** UNREGISTER while connections still exist (libp2p stops every component concurrently). */
  async beforeStop (): Promise<void> {
    if (!this.running) return
    this.halt()
    const budget = AbortSignal.timeout(this.init.unregisterTimeoutMs ?? 1000)
    const registered = [...this.points.values()].filter((p) => p.target !== null && p.expiresAt !== null && p.expiresAt > Date.now())
    await Promise.allSettled(registered.map(async (p) => {
      await unregister(this.dialerFor(p), p.target as Multiaddr, this.init.namespace, { signal: budget })
      p.expiresAt = null
      p.ttl = null
    }))
  }

  async stop (): Promise<void> {
    if (this.running) this.halt()
  }

  registrations (): RegistrationStatus[] {
    return [...this.points.values()].map((p) => ({ point: p.label, peerId: p.peerId, ns: this.init.namespace, ttl: p.ttl, expiresAt: p.expiresAt, lastError: p.lastError }))
  }

  private halt (): void {
    this.running = false
    this.stopping.abort(new Error('stopping'))
    this.components.events.removeEventListener('peer:identify', this.onIdentify)
    this.components.events.removeEventListener('peer:connect', this.onConnect)
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.removeEventListener('self:peer:update', this.onSelfUpdate)
    for (const p of this.points.values()) if (p.timer !== null) clearTimeout(p.timer)
    for (const t of this.backgroundTimers) clearTimeout(t)
    this.backgroundTimers.clear()
    if (this.addressTimer !== null) clearTimeout(this.addressTimer)
  }

  private addPoint (addr: string, knownPeerId: string | null = null): void {
    if (this.points.has(addr)) return
    let target: Multiaddr
    try {
      target = multiaddr(addr)
    } catch {
      this.points.set(addr, this.newState(addr, null, null, 'invalid_multiaddr'))
      return
    }
    const state = this.newState(addr, target, knownPeerId ?? peerIdOfMultiaddr(target), null)
    this.points.set(addr, state)
    this.schedule(state, 0)
  }

  private newState (label: string, target: Multiaddr | null, peerId: string | null, lastError: string | null): PointState {
    return { label, target, peerId, ttl: null, expiresAt: null, lastError, backoff: this.newBackoff('half'), timer: null, inFlight: false, again: false, lost: false }
  }

  private schedule (state: PointState, delayMs: number): void {
    if (!this.running) return
    if (state.timer !== null) clearTimeout(state.timer)
    state.timer = setTimeout(() => {
      state.timer = null
      void this.attempt(state)
    }, delayMs)
    state.timer.unref()
  }

  /** Dials through components and learns the point's peer id when its address did not name it. */
  private dialerFor (state: PointState): RendezvousDialer {
    return dialerFromComponents(this.components, (connection) => {
      state.peerId = connection.remotePeer.toString()
    })
  }

  private async attempt (state: PointState): Promise<void> {
    if (!this.running || state.target === null) return
    if (this.components.addressManager.getAddresses().length === 0 && Date.now() - this.startedAt < STARTUP_ADDRESS_WAIT_MS) {
      this.schedule(state, 100)
      return
    }
    if (state.inFlight) {
      state.again = true
      return
    }
    state.inFlight = true
    state.again = false
    state.lost = false
    try {
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.init.requestTimeoutMs ?? 10_000)])
      const signedPeerRecord = await this.ownRecord()
      const granted = await register(this.dialerFor(state), state.target, this.init.namespace, this.ttlS, { signedPeerRecord, signal })
      state.ttl = granted
      state.expiresAt = Date.now() + granted * 1000
      state.lastError = null
      this.init.attempts?.record('rendezvous', 'register', 'ok')
      state.backoff.reset()
      this.init.logger?.debug({ point: state.label, ttl: granted }, 'registered at rendezvous point')
      this.schedule(state, Math.max(1000, (granted * 1000) / 2))
    } catch (err) {
      if (!this.running) return
      const code = err instanceof RendezvousError ? err.code : 'internal_error'
      this.init.attempts?.record('rendezvous', 'register', code)
      if (state.lastError !== code) this.init.logger?.warn({ point: state.label, error: code, err }, 'rendezvous registration failed; retrying')
      state.lastError = code
      if (state.expiresAt !== null && state.expiresAt <= Date.now()) {
        state.expiresAt = null
        state.ttl = null
      }
      // Jitter keeps many services from hammering a point that just came back in lockstep.
      this.schedule(state, state.backoff.next())
    } finally {
      state.inFlight = false
      if (state.again && this.running) this.schedule(state, 0)
    }
  }

  private newBackoff (jitter: Jitter): Backoff {
    return new Backoff({ initialMs: this.initialBackoffMs, maxMs: this.maxBackoffMs, jitter })
  }

  /** Our signed record, re-signed only when our addresses change. */
  private async ownRecord (): Promise<Uint8Array> {
    const addrs = recordAddresses(this.components.addressManager.getAddresses())
    const key = addrs.map((a) => a.toString()).join(' ')
    if (this.record?.key !== key) this.record = { key, bytes: await sealPeerRecord(this.components.privateKey, addrs) }
    return this.record.bytes
  }

  private pointsOf (peerId: string): PointState[] {
    return [...this.points.values()].filter((p) => p.peerId === peerId)
  }

  private readonly onDisconnect = (evt: CustomEvent): void => {
    for (const p of this.pointsOf(String(evt.detail))) {
      p.lost = true
      if (!p.inFlight) this.schedule(p, p.backoff.ceilingMs)
    }
  }

  /** Someone else (the point, or another subsystem) reconnected us: no need to wait for the backoff. */
  private readonly onConnect = (evt: CustomEvent): void => {
    for (const p of this.pointsOf(String(evt.detail))) {
      if (p.lost && !p.inFlight) this.schedule(p, 0)
    }
  }

  private readonly onIdentify = (evt: CustomEvent): void => {
    const result = evt.detail as IdentifyResult
    const peerId = result.peerId.toString()
    const key = this.candidates.has(peerId) ? peerId : this.candidateKeyByAddress(result.connection.remoteAddr)
    const addr = key === undefined ? undefined : this.candidates.get(key)
    if (key === undefined || addr === undefined) return
    this.candidates.delete(key)
    if (result.protocols.includes(RENDEZVOUS_PROTOCOL)) {
      this.log?.('bootstrap peer %s is a rendezvous point', peerId)
      this.addPoint(addr.toString(), peerId)
    }
  }

  /** For bootstrap addresses without `/p2p/`: match the connection's address. */
  private candidateKeyByAddress (remote: Multiaddr): string | undefined {
    const remoteText = remote.toString()
    for (const [key, addr] of this.candidates) if (key.startsWith('addr:') && remoteText.startsWith(addr.toString())) return key
    return undefined
  }

  private readonly onSelfUpdate = (): void => {
    const key = recordAddresses(this.components.addressManager.getAddresses()).map((a) => a.toString()).join(' ')
    if (this.record === null || this.record.key === key) return
    if (this.addressTimer !== null) clearTimeout(this.addressTimer)
    this.addressTimer = setTimeout(() => {
      this.addressTimer = null
      for (const p of this.points.values()) if (p.lastError === null || p.expiresAt !== null) void this.attempt(p)
    }, ADDRESS_CHANGE_DEBOUNCE_MS)
    this.addressTimer.unref()
  }

  /**
   * Dials a bootstrap peer in the background (with backoff) so identify can tell us
   * whether it is a point; `onIdentify` does the rest.
   */
  private watchBootstrapPeer (addr: string): void {
    let target: Multiaddr
    try {
      target = multiaddr(addr)
    } catch {
      return
    }
    const key = peerIdOfMultiaddr(target) ?? `addr:${addr}`
    this.candidates.set(key, target)
    const backoff = this.newBackoff('none')
    const tryDial = async (): Promise<void> => {
      if (!this.running || !this.candidates.has(key)) return
      try {
        const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.init.requestTimeoutMs ?? 10_000)])
        const connection = await this.components.connectionManager.openConnection(target, { signal })
        const peerId = connection.remotePeer.toString()
        if (key.startsWith('addr:')) {
          this.candidates.delete(key)
          this.candidates.set(peerId, target)
        }
        // Identify may already have finished (for instance the DHT dialled it first).
        const known = await this.components.peerStore?.get(connection.remotePeer).catch(() => null)
        if (known?.protocols.includes(RENDEZVOUS_PROTOCOL) === true && this.candidates.delete(peerId)) this.addPoint(addr, peerId)
      } catch {
        if (!this.running) return
        const timer = setTimeout(() => {
          this.backgroundTimers.delete(timer)
          void tryDial()
        }, backoff.next())
        timer.unref()
        this.backgroundTimers.add(timer)
      }
    }
    void tryDial()
  }
}

/** libp2p service factory: `services: { rendezvousRegistrar: rendezvousRegistrar({ namespace, points, bootstrapPeers }) }`. */
export function rendezvousRegistrar (init: RendezvousRegistrarInit): (components: RendezvousRegistrarComponents) => RendezvousRegistrar {
  return (components) => new RendezvousRegistrarService(components, init)
}
