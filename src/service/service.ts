/**
 * The TaskQueue service as a Startable: registers the protocol handlers on a libp2p
 * node and runs the store's background sweepers. Construction takes its components;
 * the daemon (service-node.ts) decides where they come from.
 */
import type { Connection, Libp2p } from '@libp2p/interface'
import { LEGACY_PROTOCOL, MCP_PROTOCOL } from '../protocol/ids.js'
import type { QueueStore } from '../store/queue.js'
import type { CacheStore } from '../store/cache.js'
import { TERMINAL_STATUSES } from '../protocol/types.js'
import type { TaskChange } from '../store/types.js'
import { ToolRegistry } from '../tools/registry.js'
import type { Logger } from '../logger.js'
import { silentLogger } from '../logger.js'
import type { LocalWorkerInfo, Reply, ServiceContext, ServiceOptions } from './context.js'
import { NAT_UNAVAILABLE } from '../nat/report.js'
import type { NatReport } from '../nat/report.js'
import { createDispatcher } from './dispatch.js'
import type { Dispatch } from './dispatch.js'
import { createMcpHandler } from './mcp-server.js'
import { createLegacyHandler } from './legacy-server.js'
import { ServiceStats } from './stats.js'
import { AccessControl } from './access.js'
import { TaskEvents } from './task-events.js'
import { WriteBatcher } from './write-batcher.js'
import { releaseStartupMemoryWhenQuiet } from './startup-memory.js'
import { reapOrphanedToolTask } from './ops/tool-ops.js'
import { applyTransportPatches } from '../node/patches/index.js'

/** Lease expiry must be applied at least this often (wire-protocol.md §7.2). */
const QUEUE_SWEEP_MS = 2000
/** Retention runs this often, in batches of PRUNE_BATCH tasks, at most PRUNE_BATCHES_PER_SWEEP per run. */
const RETENTION_SWEEP_MS = 1000
const PRUNE_BATCH = 500
const PRUNE_BATCHES_PER_SWEEP = 40
/** Streams per connection and protocol: a worker pools many (long-poll, heartbeats, concurrency). */
const MAX_STREAMS_PER_CONNECTION = 1024

export interface TaskQueueServiceInit {
  store: QueueStore
  cache: CacheStore | null
  tools?: ToolRegistry
  options: ServiceOptions
  cacheSweepIntervalS?: number
  nat?: () => NatReport
  localWorker?: () => LocalWorkerInfo
  logger?: Logger
  /**
   * Release start-up garbage once the service is quiet after start (startup-memory.ts;
   * default true). Embedders that manage their own heap can turn it off.
   */
  releaseStartupMemory?: boolean
  /** Allow list, role tokens (service-node builds it, for its connection gater too); default: `options.token` only. */
  access?: AccessControl
}

export type RequestObserver = (op: string, seconds: number, reply: Reply) => void

export class TaskQueueService {
  readonly context: ServiceContext
  readonly dispatch: Dispatch
  private readonly log: Logger
  private node: Libp2p | null = null
  private readonly timers: NodeJS.Timeout[] = []
  private readonly cacheSweepMs: number
  private inFlight = 0
  /** performance.now() of the last request start or end (idle detection). */
  private lastActivity = 0
  private readonly releaseStartupMemory: boolean
  private cancelStartupRelease: () => void = () => {}
  private drained: (() => void) | undefined
  private pruning = false
  private readonly requestObservers = new Set<RequestObserver>()
  private readonly onTerminal = (change: TaskChange): void => {
    if (TERMINAL_STATUSES.has(change.status)) reapOrphanedToolTask(this.context, change.task_id)
  }

  /**
   * A worker whose last connection closed is gone: the scheduler stops counting it as
   * a candidate at once, so the tasks it would own go to the next claimer instead of
   * waiting for SCHEDULER_STEAL_AFTER_S (or PEER_TIMEOUT_S).
   */
  private readonly onConnectionClose = (evt: CustomEvent<Connection>): void => {
    const peer = evt.detail.remotePeer
    if (this.node === null || this.node.getConnections(peer).length > 0) return
    this.context.store.registry.forgetTransportPeer(peer.toString())
  }

  constructor (init: TaskQueueServiceInit) {
    this.log = init.logger ?? silentLogger()
    this.releaseStartupMemory = init.releaseStartupMemory ?? true
    this.cacheSweepMs = (init.cacheSweepIntervalS ?? 60) * 1000
    const events = new TaskEvents(init.store)
    this.context = {
      options: init.options,
      store: init.store,
      cache: init.cache,
      tools: init.tools ?? new ToolRegistry(),
      events,
      writes: new WriteBatcher(init.store),
      stats: new ServiceStats(),
      access: init.access ?? new AccessControl({ token: init.options.token }),
      peerId: () => this.node?.peerId.toString() ?? '',
      multiaddrs: () => this.node?.getMultiaddrs().map((a) => a.toString()) ?? [],
      nat: init.nat ?? (() => NAT_UNAVAILABLE),
      localWorker: init.localWorker ?? (() => ({ enabled: false, supportedTaskTypes: [] })),
      orphanedToolTasks: new Set()
    }
    const dispatch = createDispatcher(this.context)
    this.dispatch = async (env, caller) => {
      this.inFlight++
      const started = this.lastActivity = performance.now()
      try {
        const reply = await dispatch(env, caller)
        if (this.requestObservers.size > 0) {
          const seconds = (performance.now() - started) / 1000
          for (const fn of this.requestObservers) fn(typeof env.op === 'string' ? env.op : '', seconds, reply)
        }
        return reply
      } finally {
        this.lastActivity = performance.now()
        if (--this.inFlight === 0) this.drained?.()
      }
    }
  }

  /** Tells `fn` every answered request: its op as sent, seconds to the reply, the reply (metrics). */
  observeRequests (fn: RequestObserver): () => void {
    this.requestObservers.add(fn)
    return () => { this.requestObservers.delete(fn) }
  }

  /** Registers the protocol handlers on `node` and starts the sweepers. */
  async start (node: Libp2p): Promise<void> {
    this.node = node
    // Nodes from createTaskQueueNode have them already; an embedder's node gets them here.
    applyTransportPatches(node, this.log)
    node.addEventListener('connection:close', this.onConnectionClose)
    const handlerOptions = {
      runOnLimitedConnection: true,
      maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
      maxOutboundStreams: MAX_STREAMS_PER_CONNECTION
    }
    await node.handle(MCP_PROTOCOL, createMcpHandler(this.context, this.dispatch, this.log), handlerOptions)
    if (this.context.options.enableLegacy) {
      await node.handle(LEGACY_PROTOCOL, createLegacyHandler(this.context, this.dispatch, this.log), handlerOptions)
    }
    this.context.store.on('change', this.onTerminal)
    this.every(QUEUE_SWEEP_MS, () => this.context.store.sweep())
    this.every(RETENTION_SWEEP_MS, async () => { await this.pruneFinished() })
    const cache = this.context.cache
    if (cache !== null) this.every(this.cacheSweepMs, () => cache.sweep())
    if (this.releaseStartupMemory) {
      this.lastActivity = performance.now()
      this.cancelStartupRelease = releaseStartupMemoryWhenQuiet(() => this.inFlight > 0, () => this.lastActivity)
    }
  }

  /**
   * Stops taking requests, wakes parked waits and long-poll claims (they answer with
   * what they have) and gives in-flight replies up to `graceMs` to be written.
   */
  async stop (graceMs = 5000): Promise<void> {
    for (const t of this.timers.splice(0)) clearInterval(t)
    this.cancelStartupRelease()
    this.context.store.off('change', this.onTerminal)
    this.context.events.close()
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs)
        this.drained = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    const node = this.node
    if (node !== null) {
      node.removeEventListener('connection:close', this.onConnectionClose)
      await node.unhandle(MCP_PROTOCOL).catch(() => {})
      if (this.context.options.enableLegacy) await node.unhandle(LEGACY_PROTOCOL).catch(() => {})
    }
  }

  /**
   * Retention (★): small batches, each its own short transaction, with the event loop
   * free between them, so requests never wait behind a long delete; then the event
   * log is trimmed to its bound.
   */
  private async pruneFinished (): Promise<void> {
    if (this.pruning) return
    this.pruning = true
    try {
      const store = this.context.store
      for (let i = 0; i < PRUNE_BATCHES_PER_SWEEP && this.timers.length > 0; i++) {
        if (!store.prune(PRUNE_BATCH).more) break
        await new Promise<void>((resolve) => { setImmediate(resolve) })
      }
      if (store.events.enabled) store.events.trim()
    } finally {
      this.pruning = false
    }
  }

  private every (ms: number, fn: () => unknown): void {
    const timer = setInterval(() => {
      try {
        const out = fn()
        if (out instanceof Promise) out.catch((err: unknown) => { this.log.warn({ err }, 'background sweep failed') })
      } catch (err) {
        this.log.warn({ err }, 'background sweep failed')
      }
    }, ms)
    timer.unref()
    this.timers.push(timer)
  }
}
