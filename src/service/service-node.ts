/**
 * `serve` assembled: the store and identity, then one listening libp2p node whose
 * services are every long-lived part. Readiness is honest (B18): the announce file and
 * the start lines exist only once the node listens; background work never delays them.
 */
import { dirname, join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import type { Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { TASK_QUEUE_URL_VAR, redactQueueUrl, type Settings } from '../config/index.js'
import { openDatabase } from '../store/db.js'
import { Checkpointer } from '../store/checkpointer.js'
import { QueueStore, type QueueStoreOptions } from '../store/queue.js'
import { PgQueueStore } from '../store/pg/queue.js'
import { PgCoordinatorTable } from '../store/pg/coordinators.js'
import { coordinatorDirectory } from './coordinator-directory.js'
import type { CoordinationInfo, CoordinatorDirectory } from './coordinator-directory.js'
import type { TaskStore } from '../store/task-store.js'
import { SqliteCacheStore } from '../store/cache.js'
import type { CacheStore } from '../store/cache-store.js'
import { PgCacheStore } from '../store/pg/cache.js'
import { loadOrCreateIdentity } from '../node/identity.js'
import { createListeningNode, ListenError } from '../node/listen.js'
import type { ServiceFactory, TaskQueueNode } from '../node/create-node.js'
import { isWildcardHost, preferredAnnounceIp, sortPreferred, tcpMultiaddr, withPeerId } from '../node/addresses.js'
import { isLoopbackHost, loadOrCreateServiceToken, serviceTokenFile } from '../node/service-token.js'
import { announceWriter } from '../discovery/announce-writer.js'
import { acquireStateLock } from '../node/state-lock.js'
import type { StateLock } from '../node/state-lock.js'
import { Registry } from 'prom-client'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import type { HttpRoute } from './http-service.js'
import { selfDoctor } from './dashboard.js'
import { httpListener } from './http-listener.js'
import type { HttpListener } from './http-listener.js'
import { pathStep } from '../node/startup-errors.js'
import { discoveryParts } from '../discovery/parts.js'
import { DiscoveryAttempts } from '../discovery/attempts.js'
import { bootstrapKeeper } from '../discovery/bootstrap-keeper.js'
import type { BootstrapKeeper } from '../discovery/bootstrap-keeper.js'
import { dhtProvider } from '../discovery/dht.js'
import type { DhtProvider } from '../discovery/dht.js'
import { natParts } from '../nat/parts.js'
import { NAT_UNAVAILABLE, natReport } from '../nat/report.js'
import type { NatReport } from '../nat/report.js'
import { LEGACY_PROTOCOL, MCP_PROTOCOL } from '../protocol/ids.js'
import { ToolRegistry } from '../tools/registry.js'
import { registerBuiltinTools } from '../tools/builtins.js'
import type { Logger } from '../logger.js'
import { silentLogger } from '../logger.js'
import { AccessControl } from './access.js'
import { taskQueueService } from './service.js'
import type { TaskQueueService } from './service.js'
import type { LocalWorkerInfo, ServiceOptions } from './context.js'

export { ListenError }

export interface ServiceNodeInit {
  settings: Settings
  logger?: Logger
  /** Extra tools to register next to the built-ins. */
  tools?: ToolRegistry
  localWorker?: () => LocalWorkerInfo
  /** Routes the HTTP listener serves besides /metrics, /healthz, /readyz (the dashboard). */
  httpRoutes?: (service: TaskQueueService) => HttpRoute[]
}

export interface ServiceNode {
  readonly peerId: string
  /** Preferred dialable address, with /p2p/ (the announce file's `multiaddr`). */
  readonly multiaddr: string
  readonly multiaddrs: string[]
  readonly announceFile: string | null
  /** The HTTP listener's `http://host:port` (HTTP_PORT), or null when there is none. */
  readonly httpUrl: string | null
  /** The generated token's file (README "Security"), or null when TOKEN is set or not needed. */
  readonly tokenFile: string | null
  /** Whether this start created it. */
  readonly tokenCreated: boolean
  readonly node: TaskQueueNode
  readonly service: TaskQueueService
  readonly store: TaskStore
  /** Background discovery work, for status and the doctor. */
  readonly discovery: ServiceDiscoveryState
  stop: () => Promise<void>
}

export interface ServiceDiscoveryState {
  bootstrap: BootstrapKeeper
  dhtProvider: DhtProvider | null
}

/**
 * The token this service enforces: TOKEN when set; none when TOKEN is set empty (open
 * mode) or the service listens on loopback only; otherwise the generated one.
 */
export function serviceAccess (s: Settings): { token: string | null, tokenFile: string | null, created: boolean } {
  if (s.token !== null || s.tokenOpen || isLoopbackHost(s.listenHost)) return { token: s.token, tokenFile: null, created: false }
  const tokenFile = serviceTokenFile(s.identityFile)
  const { token, created } = loadOrCreateServiceToken(tokenFile)
  return { token, tokenFile, created }
}

export function serviceOptionsFrom (s: Settings): ServiceOptions {
  return {
    token: s.token,
    enableTools: s.enableTools,
    enableCache: s.enableCache,
    enableLegacy: s.enableLegacyProtocol,
    session: s.session,
    namespace: s.rendezvousNs,
    leaseS: s.leaseS,
    waitMaxS: s.waitMaxS,
    maxAttempts: s.maxAttempts,
    cacheMaxValueBytes: s.cacheMaxValueBytes,
    privateNetwork: s.swarmKey !== null,
    mcp: {
      maxFrameBytes: s.mcpMaxFrameBytes,
      maxFrames: s.mcpMaxFrames,
      rateCapacity: s.mcpRateCapacity,
      rateRefillPerSec: s.mcpRateRefillPerSec,
      idleTimeoutMs: 60_000
    }
  }
}


/** The queue store's policies from the settings: the service and a local worker sharing its file apply the same. */
export function queueStoreOptionsFrom (s: Settings): Omit<QueueStoreOptions, 'db'> {
  return {
    leaseS: s.leaseS,
    peerTimeoutS: s.peerTimeoutS,
    stealAfterS: s.schedulerStealAfterS,
    deterministic: s.deterministic,
    retry: { backoff: { type: s.retryBackoff, delay_s: s.retryDelayS }, maxDelayS: s.retryMaxDelayS },
    retention: { completedS: s.retentionCompletedS, failedS: s.retentionFailedS, maxFinished: s.retentionMaxFinished },
    eventsMax: s.eventsMax,
    submitterLimits: { maxTasks: s.peerMaxTasks, maxBytes: s.peerMaxTaskBytes }
  }
}

/** Names of the service node's own parts in `node.services`. */
export const SERVICE_NODE_SERVICES = {
  taskQueue: 'taskQueue',
  checkpointer: 'checkpointer',
  bootstrap: 'bootstrapKeeper',
  dhtProvider: 'dhtProvider',
  announceWriter: 'announceWriter',
  accessControl: 'accessControl',
  httpListener: 'httpListener',
  coordinators: 'coordinatorDirectory'
} as const

/**
 * Opens the store, then starts one libp2p node whose services are every long-lived part
 * (the TaskQueue service, access control, WAL checkpointer, bootstrap keeper, DHT
 * provider, announce file writer, HTTP listener, next to discovery and NAT). `stop` is
 * the node's stop, then the store's close.
 */
export async function startServiceNode (init: ServiceNodeInit): Promise<ServiceNode> {
  const s = init.settings
  const log = init.logger ?? silentLogger()
  // One service per queue file and per identity (issue 22): taken before anything is
  // opened, so a refused second start changes nothing of the first's. Held outside the
  // node (it exists before the node and outlives it), released after the store closes.
  const held: StateLock[] = []
  const databases: DatabaseSync[] = []
  let pgStore: PgQueueStore | null = null
  let cache: CacheStore | null = null
  const closeStore = async (): Promise<void> => {
    const opened = cache
    cache = null
    if (opened !== null) await Promise.resolve(opened.close()).catch((err: unknown) => { log.warn({ err }, 'closing the cache failed') })
    const pg = pgStore
    pgStore = null
    if (pg !== null) await pg.close().catch((err: unknown) => { log.warn({ err }, 'closing the PostgreSQL queue failed') })
    for (const db of databases.splice(0).reverse()) {
      try { db.close() } catch (err) { log.warn({ err }, 'closing a database failed') }
    }
    for (const lock of held.splice(0).reverse()) {
      try { lock.release() } catch (err) { log.warn({ err }, 'releasing a state lock failed') }
    }
  }
  let node: TaskQueueNode | undefined
  try {
    const onPostgres = s.queueUrl !== null
    // On PostgreSQL several coordinators share the queue by design: only the identity is this process's.
    const locks = s.queuePath === ':memory:' ? [] : [...onPostgres ? [] : [[s.queuePath, 'queue file (TASK_QUEUE_PATH)']], [s.identityFile, 'identity file (IDENTITY_FILE)']]
    for (const [path, what] of locks) held.push(acquireStateLock(path, what))
    let store: TaskStore
    let queueDb: DatabaseSync | null = null
    if (s.queueUrl !== null) {
      const url = s.queueUrl
      pgStore = await pathStep(`PostgreSQL queue (${TASK_QUEUE_URL_VAR})`, redactQueueUrl(url), async () => await PgQueueStore.open({ url, ...queueStoreOptionsFrom(s), poolSize: s.queuePoolSize }))
      store = pgStore
    } else {
      // WAL checkpoints run on a worker thread, so no submit pays for a checkpoint's
      // copy and fsync; the large autocheckpoint is only the safety net.
      const db = await pathStep('queue file (TASK_QUEUE_PATH)', s.queuePath, () => openDatabase(s.queuePath, { walAutocheckpointPages: 16384 }))
      databases.push(db)
      store = new QueueStore({ db, ...queueStoreOptionsFrom(s) })
      queueDb = db
    }
    // The cache lives in the queue's storage: on PostgreSQL the database every coordinator
    // shares. CACHE_DIR puts it in a separate SQLite file instead (on PostgreSQL: this
    // coordinator's own).
    if (s.enableCache) {
      const bounds = { maxEntries: s.cacheMaxEntries, maxBytes: s.cacheMaxBytes, maxValueBytes: s.cacheMaxValueBytes, maxBytesPerOwner: s.peerMaxCacheBytes }
      if (s.cacheDir !== null) {
        const cacheFile = join(s.cacheDir, 'cache.sqlite3')
        const db = await pathStep('cache file (CACHE_DIR)', cacheFile, () => openDatabase(cacheFile))
        databases.push(db)
        cache = new SqliteCacheStore({ db, ...bounds })
      } else if (pgStore !== null) {
        cache = new PgCacheStore({ pool: pgStore.pool, ...bounds })
      } else if (queueDb !== null) {
        cache = new SqliteCacheStore({ db: queueDb, ...bounds })
      }
    }
    const privateKey = await pathStep('identity file (IDENTITY_FILE)', s.identityFile, async () => await loadOrCreateIdentity(s.identityFile))
    const peerId = peerIdFromPrivateKey(privateKey).toString()
    // One Prometheus registry for our metrics and libp2p's, only with an HTTP listener.
    const registry = s.httpPort !== null ? new Registry() : null
    const metricsPart = registry !== null ? [{ metrics: prometheusMetrics({ registry, preserveExistingMetrics: true }) as ServiceFactory }] : []
    const access = serviceAccess(s)
    // The service's own discovery work, counted for /metrics.
    const discoveryAttempts = new DiscoveryAttempts()
    const control = new AccessControl({
      token: access.token,
      roleTokens: s.roleTokens,
      allowPeers: s.allowPeers,
      peerMaxConnections: s.peerMaxConnections,
      peerOpsPerS: s.peerOpsPerS,
      peerMaxStreams: s.peerMaxStreams,
      logger: log
    })

    const tools = init.tools ?? new ToolRegistry()
    const startedAt = Date.now()
    // Read at request time only, once the node below exists.
    const port = (): number => {
      const tcp = (node?.getMultiaddrs() ?? []).map((a) => a.toString().match(/\/tcp\/(\d+)/)).find((m) => m !== null)
      return tcp != null ? Number(tcp[1]) : s.listenPort
    }
    registerBuiltinTools(tools, { startedAt, host: s.listenHost, port, peerId: () => peerId })
    const preferredIp = preferredAnnounceIp(s.listenHost, s.publicIp)
    const addresses = (listening: Multiaddr[]): { multiaddr: string, multiaddrs: string[] } => {
      const all = sortPreferred(listening.map((a) => withPeerId(a, peerId)), preferredIp)
      const tcp = listening.map((a) => a.toString().match(/\/tcp\/(\d+)/)).find((m) => m !== null)
      const preferred = withPeerId(tcpMultiaddr(preferredIp, tcp != null ? Number(tcp[1]) : s.listenPort), peerId)
      const multiaddr = all.includes(preferred) || s.publicIp !== null || !isWildcardHost(s.listenHost) ? preferred : (all[0] ?? preferred)
      return { multiaddr, multiaddrs: all.includes(multiaddr) ? all : [multiaddr, ...all] }
    }
    const protocols = s.enableLegacyProtocol ? [MCP_PROTOCOL, LEGACY_PROTOCOL] : [MCP_PROTOCOL]

    // Read at request time only, once the node below exists.
    const nat = (): NatReport => node !== undefined ? natReport(node, s) : NAT_UNAVAILABLE
    // ★ On PostgreSQL: this coordinator's row in the shared table, the others' for status.
    const backend: CoordinationInfo['backend'] = s.queueUrl !== null ? { kind: 'postgres', url: redactQueueUrl(s.queueUrl) } : { kind: 'sqlite' }
    let directory: CoordinatorDirectory | null = null
    const services: Record<string, ServiceFactory> = {
      [SERVICE_NODE_SERVICES.taskQueue]: taskQueueService({
        store,
        cache,
        tools,
        options: { ...serviceOptionsFrom(s), token: access.token },
        access: control,
        cacheSweepIntervalS: s.cacheSweepIntervalS,
        nat,
        localWorker: init.localWorker,
        coordination: () => directory?.info() ?? { backend, coordinators: [] },
        logger: log
      }) as ServiceFactory,
      // The node's connection gater (below) and the TaskQueue service consult it; as a
      // service it gets the node's connections and watches an allow-list file while it runs.
      [SERVICE_NODE_SERVICES.accessControl]: control.service() as ServiceFactory,
      // Discovery work runs in the background: none of it may delay readiness (cli.md §2.1 step 5).
      [SERVICE_NODE_SERVICES.bootstrap]: bootstrapKeeper({ peers: s.bootstrapPeers, logger: log, attempts: discoveryAttempts }) as ServiceFactory
    }
    if (!onPostgres) services[SERVICE_NODE_SERVICES.checkpointer] = () => new Checkpointer(s.queuePath)
    if (pgStore !== null) {
      services[SERVICE_NODE_SERVICES.coordinators] = coordinatorDirectory({ table: new PgCoordinatorTable(pgStore.pool), backend, logger: log }) as ServiceFactory
    }
    if (s.dht) {
      services[SERVICE_NODE_SERVICES.dhtProvider] = dhtProvider({
        namespace: s.rendezvousNs,
        provideIntervalS: s.dhtProvideIntervalS,
        preferredMultiaddr: () => addresses(node?.getMultiaddrs() ?? []).multiaddr,
        logger: log,
        attempts: discoveryAttempts
      }) as ServiceFactory
    }
    // The HTTP listener (issue 22): metrics, health and the dashboard, listening from its
    // start, so the announce file's first write (afterStart) names it.
    let http: HttpListener | null = null
    if (registry !== null && s.httpPort !== null) {
      const listen = httpListener({
        host: s.httpHost,
        port: s.httpPort,
        hostExplicit: s.httpHostExplicit,
        access: control,
        registry,
        nat,
        discoveryAttempts,
        dashboard: { doctor: selfDoctor(s, () => ({ peerId, listen: addresses(node?.getMultiaddrs() ?? []).multiaddrs, port: port() })) },
        routes: init.httpRoutes,
        logger: log
      })
      services[SERVICE_NODE_SERVICES.httpListener] = ((components: Parameters<typeof listen>[0]) => (http = listen(components))) as ServiceFactory
    }
    const announcePath = s.announceFile
    if (announcePath !== null) {
      services[SERVICE_NODE_SERVICES.announceWriter] = announceWriter({
        path: announcePath,
        peerId,
        logger: log,
        info: (listening) => ({
          peer_id: peerId,
          ...addresses(listening),
          namespace: s.rendezvousNs,
          protocols,
          ...(access.tokenFile !== null ? { token_file: access.tokenFile } : {}),
          ...(http?.url != null ? { http_url: http.url } : {}),
          pid: process.pid,
          started_at: startedAt / 1000,
          updated_at: Date.now() / 1000
        })
      }) as ServiceFactory
    }

    node = await createListeningNode(s, privateKey, [...discoveryParts(s, 'serve', log, discoveryAttempts), natParts(s, 'serve', { logger: log }), ...metricsPart, { services }], log, control.gater())
    if (access.token === null && !isLoopbackHost(s.listenHost)) {
      log.warn('TOKEN set empty and listening beyond loopback: any peer that reaches this port can use the queue')
    }
    const running = node
    const parts = node.services as Record<string, unknown>
    const service = parts[SERVICE_NODE_SERVICES.taskQueue] as TaskQueueService
    directory = (parts[SERVICE_NODE_SERVICES.coordinators] ?? null) as CoordinatorDirectory | null

    const current = addresses(node.getMultiaddrs())
    for (const lock of held) lock.update({ peer_id: peerId, multiaddr: current.multiaddr })
    log.info({ peerId, multiaddr: current.multiaddr, queue: s.queueUrl === null ? s.queuePath : redactQueueUrl(s.queueUrl), backend: store.backend, dir: dirname(s.queuePath) }, 'TaskQueue service listening')

    return {
      peerId,
      multiaddr: current.multiaddr,
      multiaddrs: current.multiaddrs,
      announceFile: announcePath,
      httpUrl: (parts[SERVICE_NODE_SERVICES.httpListener] as HttpListener | undefined)?.url ?? null,
      tokenFile: access.tokenFile,
      tokenCreated: access.created,
      node,
      service,
      store,
      discovery: {
        bootstrap: parts[SERVICE_NODE_SERVICES.bootstrap] as BootstrapKeeper,
        dhtProvider: (parts[SERVICE_NODE_SERVICES.dhtProvider] ?? null) as DhtProvider | null
      },
      stop: async () => {
        try {
          await running.stop()
        } finally {
          await closeStore()
        }
      }
    }
  } catch (err) {
    try {
      // libp2p stops a node whose start failed itself; this is for a failure after it started.
      await node?.stop()
    } catch (stopErr) {
      log.warn({ err: stopErr }, 'stopping after a failed start failed')
    } finally {
      await closeStore()
    }
    throw err
  }
}
