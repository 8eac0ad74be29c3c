/**
 * The mDNS capability (discovery.md §7) around @libp2p/mdns. A service answers
 * `_p2p._udp.local` queries (one TXT `dnsaddr=` per announced address) and queries at
 * start and every 10 s for its whole life. A client never answers, and queries only
 * while a discovery step holds a lease: at once when the step starts, then every
 * second, and not at all outside a step, so an idle library client stays silent on
 * the LAN.
 */
import { mdns } from '@libp2p/mdns'
import type { MulticastDNSComponents } from '@libp2p/mdns'
import { peerDiscoverySymbol, serviceCapabilities } from '@libp2p/interface'
import type { PeerDiscovery, PeerInfo, Startable } from '@libp2p/interface'
import type { NodeParts } from '../node/create-node.js'
import type { Logger } from '../logger.js'
import { mdnsSocketOf } from '../node/patches/index.js'

export const MDNS_SERVICE_TAG = '_p2p._udp.local'
export const MDNS_SERVICE_KEY = 'mdns'
/** setInterval treats larger delays as 1 ms. */
const NEVER_MS = 2_147_483_647

export interface MdnsPartsOptions {
  role: 'service' | 'client'
  /** Query interval: service 10 s, client 1 s (within a step). */
  intervalMs?: number
  /** Tests only: another UDP port or group than 5353 / 224.0.0.251. */
  port?: number
  ip?: string
  logger?: Logger
}

type InnerMdns = PeerDiscovery & Startable

/** While held, the mDNS socket is open and (for clients) querying. */
export interface MdnsLease {
  /** true once the socket is bound, false when it cannot be; never rejects. */
  readonly ready: Promise<boolean>
  /** Resolves with a reason when mDNS cannot work (bind or send failure); never rejects. */
  readonly failed: Promise<string>
  release: () => Promise<void>
}

interface Activation {
  ready: Promise<boolean>
  failed: Promise<string>
  stop: () => void
}

function reasonOf (err: Error | undefined): string {
  const e = err as NodeJS.ErrnoException | undefined
  if (e === undefined) return 'unknown error'
  return e.code !== undefined ? `${e.code} (${e.message})` : e.message
}

export class TaskQueueMdns extends EventTarget implements Startable {
  readonly role: 'service' | 'client'
  readonly [peerDiscoverySymbol] = this
  readonly [Symbol.toStringTag] = '@taskqueue-p2p/mdns'
  readonly [serviceCapabilities]: string[] = ['@libp2p/peer-discovery']
  private readonly inner: InnerMdns
  private readonly intervalMs: number
  private readonly logger: Logger | undefined
  private holders = 0
  private activation: Activation | null = null
  private starting: Promise<Activation> | null = null

  constructor (components: MulticastDNSComponents, opts: MdnsPartsOptions) {
    super()
    this.role = opts.role
    this.logger = opts.logger
    this.intervalMs = opts.intervalMs ?? (opts.role === 'service' ? 10_000 : 1000)
    this.inner = mdns({
      broadcast: opts.role === 'service',
      // Clients run their own loop so send failures are seen (the library drops them).
      interval: opts.role === 'service' ? this.intervalMs : NEVER_MS,
      serviceTag: MDNS_SERVICE_TAG,
      port: opts.port,
      ip: opts.ip
    })(components) as InnerMdns
    this.inner.addEventListener('peer', (evt: CustomEvent<PeerInfo>) => {
      this.dispatchEvent(new CustomEvent<PeerInfo>('peer', { detail: evt.detail }))
    })
  }

  /** Subscribes to discovered peers; returns the unsubscribe function. */
  onPeer (fn: (info: PeerInfo) => void): () => void {
    const listener = (evt: Event): void => fn((evt as CustomEvent<PeerInfo>).detail)
    this.addEventListener('peer', listener)
    return () => this.removeEventListener('peer', listener)
  }

  isStarted (): boolean {
    return this.activation !== null
  }

  async start (): Promise<void> {
    if (this.role !== 'service') return
    const a = await this.activate()
    void a.failed.then((reason) => this.logger?.warn({ reason }, 'mdns unavailable; this service cannot be found on the LAN'))
  }

  async stop (): Promise<void> {
    this.holders = 0
    await this.deactivate()
  }

  /** Opens the socket (clients: starts querying) until `release()`. */
  acquire (): MdnsLease {
    this.holders++
    const act = this.activate()
    let released = false
    return {
      ready: act.then(async (a) => await a.ready, () => false),
      failed: act.then(async (a) => await a.failed, (err: Error) => `cannot start: ${reasonOf(err)}`),
      release: async () => {
        if (released) return
        released = true
        this.holders--
        if (this.holders <= 0 && this.role === 'client') await this.deactivate()
      }
    }
  }

  private async activate (): Promise<Activation> {
    if (this.activation !== null) return this.activation
    this.starting ??= this.open().finally(() => { this.starting = null })
    return await this.starting
  }

  private async open (): Promise<Activation> {
    await this.inner.start()
    const sock = mdnsSocketOf(this.inner)
    if (sock === null) throw new Error('mdns socket missing after start')
    let onFail: (reason: string) => void = () => {}
    const failed = new Promise<string>((resolve) => { onFail = resolve })
    let onReady: () => void = () => {}
    const ready = new Promise<boolean>((resolve) => {
      onReady = () => resolve(true)
      void failed.then(() => resolve(false))
    })
    // Bind errors (EADDRINUSE, EACCES) arrive as 'error'; the socket opens asynchronously, so listening now is in time.
    const onError = (err?: Error): void => onFail(reasonOf(err))
    sock.on('error', onError)
    sock.on('ready', onReady)
    let timer: NodeJS.Timeout | null = null
    if (this.role === 'client') {
      const query = (): void => {
        sock.query({ questions: [{ name: MDNS_SERVICE_TAG, type: 'PTR' }] }, (err) => {
          if (err !== null && err !== undefined) onFail(`query send failed: ${reasonOf(err)}`)
        })
      }
      // The library already sent the first query at start; keep the step's 1 s cadence.
      timer = setInterval(query, this.intervalMs)
      timer.unref()
    }
    const act: Activation = {
      ready,
      failed,
      stop: () => {
        if (timer !== null) clearInterval(timer)
        sock.removeListener('error', onError)
        sock.removeListener('ready', onReady)
      }
    }
    this.activation = act
    return act
  }

  private async deactivate (): Promise<void> {
    const act = this.activation ?? (this.starting !== null ? await this.starting.catch(() => null) : null)
    this.activation = null
    if (act === null) return
    act.stop()
    // Closing a socket whose bind failed can throw; there is nothing left to release then.
    try {
      await this.inner.stop()
    } catch {}
  }
}

/** The node capability: `parts: [mdnsParts({ role })]`. */
export function mdnsParts (opts: MdnsPartsOptions): NodeParts {
  return {
    services: {
      [MDNS_SERVICE_KEY]: (components: MulticastDNSComponents) => new TaskQueueMdns(components, opts)
    }
  }
}

/** The node's mDNS capability, if it has one. */
export function findMdns (services: unknown): TaskQueueMdns | null {
  const svc = (services as Record<string, unknown> | null | undefined)?.[MDNS_SERVICE_KEY]
  return svc instanceof TaskQueueMdns ? svc : null
}
