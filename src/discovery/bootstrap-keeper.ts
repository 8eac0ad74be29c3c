/**
 * The daemon side of BOOTSTRAP_PEERS (discovery.md §4, config.md §3.2): stay connected
 * to every configured peer — they seed the DHT and are the default rendezvous points
 * and relays — without ever delaying start-up, and reconnect when one drops.
 * A libp2p service (`bootstrapKeeper(init)` in a node's services).
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2pEvents, PeerId, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Logger } from '../logger.js'
import { peerIdOf } from '../node/addresses.js'
import { Backoff } from '../util/backoff.js'
import type { DiscoveryAttempts } from './attempts.js'

export interface BootstrapKeeperComponents {
  connectionManager: Pick<ConnectionManager, 'openConnection'>
  events: TypedEventTarget<Libp2pEvents>
}

export interface BootstrapKeeperInit {
  peers: readonly string[]
  logger: Logger
  dialTimeoutMs?: number
  /** First retry delay; doubles up to maxBackoffMs (jittered). */
  minBackoffMs?: number
  maxBackoffMs?: number
  /** Counts each dial as a `bootstrap` `dial` (the service's /metrics). */
  attempts?: DiscoveryAttempts
}

export interface BootstrapPeerState {
  addr: string
  peer_id: string
  connected: boolean
  attempts: number
  last_error: string
}

export class BootstrapKeeper {
  private readonly init: BootstrapKeeperInit
  private readonly states: BootstrapPeerState[]
  private readonly timers = new Set<NodeJS.Timeout>()
  private abort = new AbortController()
  private readonly backoff: Backoff[]

  constructor (private readonly components: BootstrapKeeperComponents, init: BootstrapKeeperInit) {
    this.init = init
    this.states = init.peers.map((addr) => ({ addr, peer_id: peerIdOf(addr), connected: false, attempts: 0, last_error: '' }))
    this.backoff = init.peers.map(() => new Backoff({ initialMs: init.minBackoffMs ?? 1000, maxMs: init.maxBackoffMs ?? 60_000, jitter: 'half' }))
  }

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/bootstrap-keeper'

  start (): void {
    if (this.states.length === 0) return
    this.abort = new AbortController()
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    // Background on purpose: readiness and the announce file never wait for these dials.
    this.states.forEach((_s, i) => { void this.connect(i) })
  }

  stop (): void {
    this.abort.abort()
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
  }

  status (): BootstrapPeerState[] {
    return this.states.map((s) => ({ ...s }))
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    this.states.forEach((s, i) => {
      if (s.peer_id === id && s.connected) {
        s.connected = false
        this.retryLater(i)
      }
    })
  }

  private async connect (i: number): Promise<void> {
    const s = this.states[i]
    if (this.abort.signal.aborted) return
    s.attempts++
    try {
      const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.init.dialTimeoutMs ?? 5000)])
      // The priority libp2p gives a user's dial (node.dial).
      const conn = await this.components.connectionManager.openConnection(multiaddr(s.addr), { signal, priority: 75 })
      s.peer_id = conn.remotePeer.toString()
      s.connected = true
      s.last_error = ''
      this.init.attempts?.record('bootstrap', 'dial', 'ok')
      this.backoff[i].reset()
      this.init.logger.debug({ peer: s.addr }, 'connected to bootstrap peer')
    } catch (err) {
      if (this.abort.signal.aborted) return
      s.last_error = (err as Error).message
      this.init.attempts?.record('bootstrap', 'dial', 'dial_failed')
      this.init.logger.debug({ peer: s.addr, err: s.last_error }, 'bootstrap peer unreachable; will retry')
      this.retryLater(i)
    }
  }

  private retryLater (i: number): void {
    if (this.abort.signal.aborted) return
    const delay = this.backoff[i].next()
    const t = setTimeout(() => {
      this.timers.delete(t)
      void this.connect(i)
    }, delay)
    t.unref()
    this.timers.add(t)
  }
}

export function bootstrapKeeper (init: BootstrapKeeperInit): (components: BootstrapKeeperComponents) => BootstrapKeeper {
  return (components) => new BootstrapKeeper(components, init)
}
