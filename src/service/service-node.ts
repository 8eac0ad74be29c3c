/**
 * `serve` assembled: store and identity, a listening libp2p node, the TaskQueue service,
 * then the announce file. Readiness is honest (B18): the announce file and the start
 * lines exist only once the node listens; background work never delays them.
 */
import { dirname, join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import type { Settings } from '../config/index.js'
import { openDatabase } from '../store/db.js'
import { Checkpointer } from '../store/checkpointer.js'
import { QueueStore, type QueueStoreOptions } from '../store/queue.js'
import { CacheStore } from '../store/cache.js'
import { loadOrCreateIdentity } from '../node/identity.js'
import { createListeningNode, ListenError } from '../node/listen.js'
import { acquireStateLock } from '../node/state-lock.js'
import { Registry } from 'prom-client'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import type { ServiceFactory } from '../node/create-node.js'
import { HttpService } from './http-service.js'
import type { HttpRoute } from './http-service.js'
import { createServiceMetrics } from './metrics.js'
import { dashboardRoutes } from './dashboard.js'
import { pathStep } from '../node/startup-errors.js'
import type { TaskQueueNode } from '../node/create-node.js'
import { isWildcardHost, preferredAnnounceIp, sortPreferred, tcpMultiaddr, withPeerId } from '../node/addresses.js'
import { removeAnnounceFileIfOurs, writeAnnounceFile } from '../discovery/announce-file.js'
import { isLoopbackHost, loadOrCreateServiceToken, serviceTokenFile } from '../node/service-token.js'
import { AccessControl } from './access.js'
import { discoveryParts } from '../discovery/parts.js'
import { BootstrapKeeper } from '../discovery/bootstrap-keeper.js'
import { DhtProvider } from '../discovery/dht.js'
import { natParts } from '../nat/parts.js'
import { natReport } from '../nat/report.js'
import { LEGACY_PROTOCOL, MCP_PROTOCOL } from '../protocol/ids.js'
import { ToolRegistry } from '../tools/registry.js'
import { registerBuiltinTools } from '../tools/builtins.js'
import type { Logger } from '../logger.js'
import { silentLogger } from '../logger.js'
import { TaskQueueService } from './service.js'
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
  readonly store: QueueStore
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
    eventsMax: s.eventsMax
  }
}

export async function startServiceNode (init: ServiceNodeInit): Promise<ServiceNode> {
  const s = init.settings
  const log = init.logger ?? silentLogger()
  const cleanups: Array<() => unknown> = []
  const undo = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) {
      try { await fn() } catch (err) { log.warn({ err }, 'clean-up step failed') }
    }
  }

  try {
    // 1. store and identity
    // WAL checkpoints run on a worker thread, so no submit pays for a checkpoint's
    // copy and fsync; the large autocheckpoint is only the safety net.
    // One service per queue file and per identity (issue 22): taken before anything is
    // opened, so a refused second start changes nothing of the first's.
    const locks = s.queuePath === ':memory:' ? [] : [[s.queuePath, 'queue file (TASK_QUEUE_PATH)'], [s.identityFile, 'identity file (IDENTITY_FILE)']]
    const held = locks.map(([path, what]) => {
      const lock = acquireStateLock(path, what)
      cleanups.push(() => lock.release())
      return lock
    })
    const db = await pathStep('queue file (TASK_QUEUE_PATH)', s.queuePath, () => openDatabase(s.queuePath, { walAutocheckpointPages: 16384 }))
    cleanups.push(() => db.close())
    const checkpointer = new Checkpointer(s.queuePath)
    checkpointer.start()
    cleanups.push(async () => await checkpointer.stop())
    const store = new QueueStore({ db, ...queueStoreOptionsFrom(s) })
    let cacheDb: DatabaseSync = db
    if (s.enableCache && s.cacheDir !== null) {
      const cacheFile = join(s.cacheDir, 'cache.sqlite3')
      const separate = await pathStep('cache file (CACHE_DIR)', cacheFile, () => openDatabase(cacheFile))
      cleanups.push(() => separate.close())
      cacheDb = separate
    }
    const cache = s.enableCache
      ? new CacheStore({ db: cacheDb, maxEntries: s.cacheMaxEntries, maxBytes: s.cacheMaxBytes, maxValueBytes: s.cacheMaxValueBytes })
      : null
    const privateKey = await pathStep('identity file (IDENTITY_FILE)', s.identityFile, async () => await loadOrCreateIdentity(s.identityFile))

    // 2. listen
    // One Prometheus registry for our metrics and libp2p's, only with an HTTP listener.
    const registry = s.httpPort !== null ? new Registry() : null
    const metricsPart = registry !== null ? [{ metrics: prometheusMetrics({ registry, preserveExistingMetrics: true }) as ServiceFactory }] : []
    const access = serviceAccess(s)
    const control = new AccessControl({
      token: access.token,
      roleTokens: s.roleTokens,
      allowPeers: s.allowPeers,
      peerMaxConnections: s.peerMaxConnections,
      peerOpsPerS: s.peerOpsPerS,
      logger: log
    })
    const node = await createListeningNode(s, privateKey, [...discoveryParts(s, 'serve', log), natParts(s, 'serve', { logger: log }), ...metricsPart], log, control.gater())
    cleanups.push(() => node.stop())
    control.start(node)
    cleanups.push(() => control.stop())
    if (access.token === null && !isLoopbackHost(s.listenHost)) {
      log.warn('TOKEN set empty and listening beyond loopback: any peer that reaches this port can use the queue')
    }

    const tools = init.tools ?? new ToolRegistry()
    const startedAt = Date.now()
    const peerId = node.peerId.toString()
    const port = (): number => {
      const tcp = node.getMultiaddrs().map((a) => a.toString().match(/\/tcp\/(\d+)/)).find((m) => m !== null)
      return tcp != null ? Number(tcp[1]) : s.listenPort
    }
    registerBuiltinTools(tools, { startedAt, host: s.listenHost, port, peerId: () => peerId })
    const service = new TaskQueueService({
      store,
      cache,
      tools,
      options: { ...serviceOptionsFrom(s), token: access.token },
      access: control,
      cacheSweepIntervalS: s.cacheSweepIntervalS,
      nat: () => natReport(node, s),
      localWorker: init.localWorker,
      logger: log
    })
    await service.start(node)
    cleanups.push(() => service.stop())

    // The HTTP listener (issue 22): metrics, health and the dashboard.
    let http: HttpService | null = null
    if (registry !== null && s.httpPort !== null) {
      const metrics = createServiceMetrics({ registry, service, node, nat: () => natReport(node, s) })
      cleanups.push(() => metrics.stop())
      let ready = false
      http = new HttpService({
        host: s.httpHost,
        port: s.httpPort,
        hostExplicit: s.httpHostExplicit,
        tokenOk: (candidate) => control.tokenRole(candidate) !== null,
        tokenRequired: control.tokenRequired,
        registry,
        ready: () => ready && node.status === 'started',
        routes: [...dashboardRoutes(service, (r) => http?.authorized(r) === true), ...(init.httpRoutes?.(service) ?? [])],
        logger: log
      })
      await http.start()
      const started = http
      cleanups.push(async () => await started.stop())
      ready = true
    }

    // 3. announce file, rewritten whenever our addresses change
    const preferredIp = preferredAnnounceIp(s.listenHost, s.publicIp)
    const addresses = (): { multiaddr: string, multiaddrs: string[] } => {
      const all = sortPreferred(node.getMultiaddrs().map((a) => withPeerId(a, peerId)), preferredIp)
      const preferred = withPeerId(tcpMultiaddr(preferredIp, port()), peerId)
      const multiaddr = all.includes(preferred) || s.publicIp !== null || !isWildcardHost(s.listenHost) ? preferred : (all[0] ?? preferred)
      return { multiaddr, multiaddrs: all.includes(multiaddr) ? all : [multiaddr, ...all] }
    }
    const announcePath = s.announceFile
    const protocols = s.enableLegacyProtocol ? [MCP_PROTOCOL, LEGACY_PROTOCOL] : [MCP_PROTOCOL]
    const writeAnnounce = (): void => {
      if (announcePath === null) return
      const a = addresses()
      writeAnnounceFile(announcePath, {
        peer_id: peerId,
        multiaddr: a.multiaddr,
        multiaddrs: a.multiaddrs,
        namespace: s.rendezvousNs,
        protocols,
        ...(access.tokenFile !== null ? { token_file: access.tokenFile } : {}),
        ...(http !== null ? { http_url: http.url } : {}),
        pid: process.pid,
        started_at: startedAt / 1000,
        updated_at: Date.now() / 1000
      })
    }
    await pathStep('announce file (ANNOUNCE_FILE)', announcePath ?? '', writeAnnounce)
    for (const lock of held) lock.update({ peer_id: peerId, multiaddr: addresses().multiaddr })
    if (announcePath !== null) {
      const onUpdate = (): void => {
        try { writeAnnounce() } catch (err) { log.warn({ err }, 'rewriting the announce file failed') }
      }
      node.addEventListener('self:peer:update', onUpdate)
      cleanups.push(() => {
        node.removeEventListener('self:peer:update', onUpdate)
        removeAnnounceFileIfOurs(announcePath, peerId)
      })
    }
    // 4. discovery work in the background: none of it may delay readiness (cli.md §2.1 step 5)
    const bootstrap = new BootstrapKeeper({ node, peers: s.bootstrapPeers, logger: log })
    bootstrap.start()
    cleanups.push(() => bootstrap.stop())
    let dhtProvider: DhtProvider | null = null
    if (s.dht) {
      const provider = new DhtProvider({ node, namespace: s.rendezvousNs, provideIntervalS: s.dhtProvideIntervalS, preferredMultiaddr: () => addresses().multiaddr, logger: log })
      provider.start()
      cleanups.push(async () => await provider.stop())
      dhtProvider = provider
    }

    const current = addresses()
    log.info({ peerId, multiaddr: current.multiaddr, queue: s.queuePath, dir: dirname(s.queuePath) }, 'TaskQueue service listening')

    return {
      peerId,
      multiaddr: current.multiaddr,
      multiaddrs: current.multiaddrs,
      announceFile: announcePath,
      tokenFile: access.tokenFile,
      tokenCreated: access.created,
      httpUrl: http?.url ?? null,
      node,
      service,
      store,
      discovery: { bootstrap, dhtProvider },
      stop: undo
    }
  } catch (err) {
    await undo()
    throw err
  }
}
