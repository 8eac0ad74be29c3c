/**
 * libp2p construction shared by service, worker, relay and client: TCP + Noise + Yamux
 * + identify + ping, nothing else by default (no plaintext, no mplex, no public
 * bootstrap list). Discovery and NAT capabilities contribute `NodeParts` (extra
 * transports and services), so this file never needs to know about each of them.
 */
import { createLibp2p } from 'libp2p'
import type { ConnectionGater, Libp2p, PrivateKey, ServiceMap, Transport } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { isDialableAddress } from './addresses.js'
import { IDENTIFY_SCHEDULER, IdentifyScheduler } from './identify-scheduler.js'
import { componentLogger } from './component-logger.js'
import { applyTransportPatches } from './patches/index.js'
import type { Logger } from '../logger.js'

/**
 * A libp2p service or transport factory, as `createLibp2p` takes them. Each factory
 * declares the components it needs; `never` accepts them all, and libp2p supplies the
 * full set (the one cast below is where that promise is made).
 */
export type ServiceFactory = (components: never) => unknown
export type TransportFactory = (components: never) => Transport

/** What one capability (DHT, mDNS, rendezvous, relay, AutoNAT, …) adds to a node. */
export interface NodeParts {
  transports?: TransportFactory[]
  services?: Record<string, ServiceFactory>
  /** Further narrows the announced addresses (after wildcard/link-local removal). */
  announceFilter?: (addrs: Multiaddr[]) => Multiaddr[]
  /** Extra listen addresses (for example `/p2p-circuit` for relay reservations). */
  listen?: string[]
  /** libp2p's metrics implementation (the HTTP listener's Prometheus registry); the first one given is used. */
  metrics?: ServiceFactory
}

export interface NodeOptions {
  /** Persistent key for daemons; clients omit it and get an ephemeral identity. */
  privateKey?: PrivateKey
  /** Listen multiaddrs; [] for a pure client. */
  listen?: string[]
  /** Extra addresses to announce (PUBLIC_IP). */
  appendAnnounce?: string[]
  /** Per-dial timeout. */
  dialTimeoutMs?: number
  /** Capabilities to add, in order. */
  parts?: NodeParts[]
  /**
   * Where libp2p's components log (at debug level and below; none = silent) and where
   * the transport patches say which of them applied.
   */
  logger?: Logger
  /**
   * A `/key/swarm/psk/1.0.0/` document (SWARM_KEY): a private network through libp2p's
   * pnet, where nodes without the key cannot even complete a handshake. Null/absent = public.
   */
  swarmKey?: string | null
  /** Refuses connections before any protocol runs (the service's ALLOW_PEERS). */
  connectionGater?: ConnectionGater
}

export type TaskQueueNode = Libp2p<ServiceMap>

export async function createTaskQueueNode (opts: NodeOptions = {}): Promise<TaskQueueNode> {
  const parts = opts.parts ?? []
  // Identify still runs on every new connection, through the scheduler (which lets a
  // client's first call go first, see identify-scheduler.ts).
  const scheduler = new IdentifyScheduler()
  const services: Record<string, ServiceFactory> = {
    identify: scheduler.wrapIdentify(identify({ runOnConnectionOpen: false })),
    [IDENTIFY_SCHEDULER]: scheduler.service(),
    ping: ping()
  }
  const transports: TransportFactory[] = [tcp()]
  const listen = [...(opts.listen ?? [])]
  const filters: Array<(addrs: Multiaddr[]) => Multiaddr[]> = [(addrs) => addrs.filter(isDialableAddress)]
  for (const part of parts) {
    Object.assign(services, part.services ?? {})
    transports.push(...(part.transports ?? []))
    listen.push(...(part.listen ?? []))
    if (part.announceFilter !== undefined) filters.push(part.announceFilter)
  }
  type Libp2pInit = NonNullable<Parameters<typeof createLibp2p>[0]>
  const node = await createLibp2p({
    privateKey: opts.privateKey,
    logger: componentLogger(opts.logger),
    addresses: {
      listen,
      appendAnnounce: opts.appendAnnounce ?? [],
      announceFilter: (addrs) => filters.reduce((acc, f) => f(acc), addrs)
    },
    transports: transports as unknown as Libp2pInit['transports'],
    connectionEncrypters: [noise()],
    ...(opts.swarmKey != null ? { connectionProtector: preSharedKey({ psk: new TextEncoder().encode(opts.swarmKey.trimEnd()) }) } : {}),
    ...(opts.connectionGater !== undefined ? { connectionGater: opts.connectionGater } : {}),
    streamMuxers: [yamux()],
    connectionManager: {
      dialTimeout: opts.dialTimeoutMs ?? 8000,
      // libp2p refuses a 6th inbound connection per second from one IP and more than 10
      // pending handshakes: far too few for a queue that a fleet of workers behind one
      // NAT address, or a burst of CLI calls, reaches.
      inboundConnectionThreshold: 200,
      maxIncomingPendingConnections: 128
    },
    services: services as unknown as Libp2pInit['services'],
    metrics: parts.find((p) => p.metrics !== undefined)?.metrics as Libp2pInit['metrics']
  }) as TaskQueueNode
  applyTransportPatches(node, opts.logger)
  return node
}
