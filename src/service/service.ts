/**
 * The TaskQueue service as a libp2p service (`taskQueueService(init)` in a node's
 * services): registers the protocol handlers and runs the store's background
 * sweepers. Its store, cache and tools come in `init`; the daemon (service-node.ts)
 * decides where they come from. Without libp2p components (tests, embedders that
 * route streams themselves) it is the dispatcher and sweepers alone. The node's
 * connections are tuned by node/patches (createTaskQueueNode applies them).
 */
import type { CoordinationInfo } from './coordinator-directory.js'
import { serviceCapabilities } from '@libp2p/interface'
import type { Connection, Libp2pEvents, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'
import type { AddressManager, ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { LEGACY_PROTOCOL, MCP_PROTOCOL } from '../protocol/ids.js'
import type { QueueStore } from '../store/queue.js'
import type { TaskStore } from '../store/task-store.js'
import type { CacheStore } from '../store/cache-store.js'
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
import { legacyBusyLine, limitStreamsPerPeer, mcpBusyFrame } from './peer-streams.js'
import { TaskEvents } from './task-events.js'
import { WriteBatcher } from './write-batcher.js'
import { PgWrites } from './pg-writes.js'
import { releaseStartupMemoryWhenQuiet } from './startup-memory.js'
import { reapOrphanedToolTask } from './ops/tool-ops.js'

/** Lease expiry must be applied at least this often (wire-protocol.md §7.2). */
const QUEUE_SWEEP_MS = 2000
/** Retention runs this often, in batches of PRUNE_BATCH tasks, at most PRUNE_BATCHES_PER_SWEEP per run. */
const RETENTION_SWEEP_MS = 1000
const PRUNE_BATCH = 500
const PRUNE_BATCHES_PER_SWEEP = 40
/** Streams per connection and protocol: a worker pools many (long-poll, heartbeats, concurrency). */
const MAX_STREAMS_PER_CONNECTION = 1024

export interface TaskQueueServiceInit {
  /** The embedded SQLite `QueueStore` or the PostgreSQL `PgQueueStore`. */
  store: TaskStore
  cache: CacheStore | null
  tools?: ToolRegistry
  options: ServiceOptions
  cacheSweepIntervalS?: number
  nat?: () => NatReport
  localWorker?: () => LocalWorkerInfo
  /** ★ status `backend` and `coordinators`; default: the embedded SQLite store, alone. */
  coordination?: () => CoordinationInfo
  logger?: Logger
  /**
   * Release start-up garbage once the service is quiet after start (startup-memory.ts;
   * default true). Embedders that manage their own heap can turn it off.
   */
  releaseStartupMemory?: boolean
  /** Allow list, role tokens (service-node builds it, for its connection gater too); default: `options.token` only. */
  access?: AccessControl
  /** How long a stopping service gives in-flight replies to be written (default 5000). */
  stopGraceMs?: number
}

/** The embedded store: one coordinator, no others. */
const SQLITE_ALONE: CoordinationInfo = { backend: { kind: 'sqlite' }, coordinators: [] }

export type RequestObserver = (op: string, seconds: number, reply: Reply) => void

/** What a node's TaskQueue service offers to the parts that declare it a dependency (the HTTP listener). */
export const TASK_QUEUE_CAPABILITY = '@taskqueue-p2p/task-queue'

/** What the service takes from libp2p. */
export interface TaskQueueServiceComponents {
  peerId: PeerId
  registrar: Pick<Registrar, 'handle' | 'unhandle'>
  events: TypedEventTarget<Libp2pEvents>
  addressManager: Pick<AddressManager, 'getAddresses'>
  connectionManager: Pick<ConnectionManager, 'getConnections'>
}

export class TaskQueueService implements Startable {
  readonly context: ServiceContext
  readonly dispatch: Dispatch
  private readonly log: Logger
  private readonly components: TaskQueueServiceComponents | null
  private readonly stopGraceMs: number
  private started = false
  /** Set once stopping has begun: requests are no longer taken in. */
  private draining: Promise<void> | null = null
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
    if (this.components === null || this.components.connectionManager.getConnections(peer).length > 0) return
    this.context.store.registry.forgetTransportPeer(peer.toString())
  }

  constructor (init: TaskQueueServiceInit, components: TaskQueueServiceComponents | null = null) {
    this.components = components
    this.stopGraceMs = init.stopGraceMs ?? 5000
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
      // SQLite: group commit with handoff to parked claimers; PostgreSQL: a transaction per write.
      writes: init.store.backend === 'sqlite' ? new WriteBatcher(init.store as QueueStore) : new PgWrites(init.store),
      stats: new ServiceStats(),
      access: init.access ?? new AccessControl({ token: init.options.token }),
      peerId: () => components?.peerId.toString() ?? '',
      multiaddrs: () => components?.addressManager.getAddresses().map((a) => a.toString()) ?? [],
      nat: init.nat ?? (() => NAT_UNAVAILABLE),
      localWorker: init.localWorker ?? (() => ({ enabled: false, supportedTaskTypes: [] })),
      coordination: init.coordination ?? (() => SQLITE_ALONE),
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

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/task-queue'
  readonly [serviceCapabilities] = [TASK_QUEUE_CAPABILITY]

  /** Registers the protocol handlers (with libp2p components) and starts the sweepers. */
  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const c = this.components
    if (c !== null) {
      c.events.addEventListener('connection:close', this.onConnectionClose)
      const handlerOptions = {
        runOnLimitedConnection: true,
        maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
        maxOutboundStreams: MAX_STREAMS_PER_CONNECTION
      }
      const access = this.context.access
      const mcp = limitStreamsPerPeer(access, createMcpHandler(this.context, this.dispatch, this.log), mcpBusyFrame)
      await c.registrar.handle(MCP_PROTOCOL, mcp, handlerOptions)
      if (this.context.options.enableLegacy) {
        const legacy = limitStreamsPerPeer(access, createLegacyHandler(this.context, this.dispatch, this.log), () => legacyBusyLine(this.context.peerId()))
        await c.registrar.handle(LEGACY_PROTOCOL, legacy, handlerOptions)
      }
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
   * libp2p calls this on every part before stopping any: replies in flight are written
   * while connections are still open.
   */
  async beforeStop (): Promise<void> {
    await this.drain(this.stopGraceMs)
  }

  /**
   * Stops taking requests, wakes parked waits and long-poll claims (they answer with
   * what they have) and gives in-flight replies up to `graceMs` to be written; then
   * removes the protocol handlers.
   */
  async stop (graceMs = this.stopGraceMs): Promise<void> {
    await this.drain(graceMs)
    const c = this.components
    if (this.started && c !== null) {
      c.events.removeEventListener('connection:close', this.onConnectionClose)
      await c.registrar.unhandle(MCP_PROTOCOL).catch(() => {})
      if (this.context.options.enableLegacy) await c.registrar.unhandle(LEGACY_PROTOCOL).catch(() => {})
    }
    this.started = false
  }

  /** Once drained, waits answer at once for good: a stopped service is not started again. */
  private async drain (graceMs: number): Promise<void> {
    this.draining ??= (async () => {
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
    })()
    await this.draining
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
        if (!(await store.prune(PRUNE_BATCH)).more) break
        await new Promise<void>((resolve) => { setImmediate(resolve) })
      }
      if (store.events.enabled) await store.events.trim()
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

export function taskQueueService (init: TaskQueueServiceInit): (components: TaskQueueServiceComponents) => TaskQueueService {
  return (components) => new TaskQueueService(init, components)
}
