/**
 * The service node's HTTP listener (HTTP_PORT) as a libp2p service: the HttpService with
 * its metrics (metrics.ts), the dashboard's routes (dashboard.ts) and any further routes,
 * all reading the node's TaskQueue service. libp2p starts and stops it with the node:
 * `start` registers the metrics and listens (so the announce file's first write, in
 * afterStart, already names `http_url`), `/readyz` says ready from afterStart until
 * beforeStop while the node has listening addresses, and `stop` closes every connection
 * and the socket and takes the metrics off the registry.
 */
import { serviceDependencies } from '@libp2p/interface'
import type { Startable } from '@libp2p/interface'
import type { ConnectionManager, TransportManager } from '@libp2p/interface-internal'
import type { Registry } from 'prom-client'
import type { Logger } from '../logger.js'
import type { NatReport } from '../nat/report.js'
import { connectionKindOf } from '../nat/connection-kind.js'
import type { DiscoveryAttempts } from '../discovery/attempts.js'
import type { AccessControl } from './access.js'
import { dashboardRoutes } from './dashboard.js'
import type { DashboardOptions } from './dashboard.js'
import { HttpService } from './http-service.js'
import type { HttpRoute } from './http-service.js'
import { createServiceMetrics } from './metrics.js'
import type { ServiceMetrics } from './metrics.js'
import { TASK_QUEUE_CAPABILITY } from './service.js'
import type { TaskQueueService } from './service.js'

/** What the listener needs of its node; `taskQueue` is the TaskQueue service's name in the node (service-node.ts). */
export interface HttpListenerComponents {
  taskQueue: TaskQueueService
  connectionManager: Pick<ConnectionManager, 'getConnections'>
  transportManager: Pick<TransportManager, 'getAddrs'>
}

export interface HttpListenerInit {
  host: string
  port: number
  /** HTTP_HOST was set explicitly (see HttpServiceInit). */
  hostExplicit: boolean
  /** The service's access control: any role's token may read (the ops themselves check roles). */
  access: AccessControl
  /** The registry libp2p's own metrics (@libp2p/prometheus-metrics) also use. */
  registry: Registry
  nat: () => NatReport
  /** The service's own discovery work (bootstrap dials, rendezvous registrations, DHT provides), for /metrics. */
  discoveryAttempts?: DiscoveryAttempts
  /** The dashboard's own options (its doctor). */
  dashboard?: DashboardOptions
  /** Routes served besides /metrics, /healthz, /readyz and the dashboard. */
  routes?: (service: TaskQueueService) => HttpRoute[]
  logger: Logger
}

export class HttpListener implements Startable {
  private http: HttpService | null = null
  private metrics: ServiceMetrics | null = null
  private ready = false

  constructor (private readonly components: HttpListenerComponents, private readonly init: HttpListenerInit) {}

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/http-listener'
  readonly [serviceDependencies] = [TASK_QUEUE_CAPABILITY]

  /** `http://host:port` while listening, else null. */
  get url (): string | null {
    return this.http?.url ?? null
  }

  async start (): Promise<void> {
    const { init, components } = this
    const service = components.taskQueue
    const metrics = createServiceMetrics({ registry: init.registry, service, connections: components.connectionManager, nat: init.nat, discoveryAttempts: init.discoveryAttempts })
    const http: HttpService = new HttpService({
      host: init.host,
      port: init.port,
      hostExplicit: init.hostExplicit,
      tokenOk: (candidate) => init.access.tokenRole(candidate) !== null,
      tokenRequired: init.access.tokenRequired,
      registry: init.registry,
      ready: () => this.ready && components.transportManager.getAddrs().length > 0,
      routes: [
        ...dashboardRoutes(service, (r) => http.authorized(r), {
          ...init.dashboard,
          // A remote worker's connection on the dashboard: direct or relayed.
          connections: () => components.connectionManager.getConnections().filter((c) => c.status === 'open').map((c) => ({ peer_id: c.remotePeer.toString(), connection: connectionKindOf(c) }))
        }),
        ...(init.routes?.(service) ?? [])
      ],
      logger: init.logger
    })
    try {
      await http.start()
    } catch (err) {
      metrics.stop()
      throw err
    }
    this.metrics = metrics
    this.http = http
  }

  afterStart (): void {
    this.ready = true
  }

  beforeStop (): void {
    this.ready = false
  }

  async stop (): Promise<void> {
    this.ready = false
    const http = this.http
    const metrics = this.metrics
    this.http = null
    this.metrics = null
    try {
      await http?.stop()
    } finally {
      metrics?.stop()
    }
  }
}

export function httpListener (init: HttpListenerInit): (components: HttpListenerComponents) => HttpListener {
  return (components) => new HttpListener(components, init)
}
