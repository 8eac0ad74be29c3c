/**
 * The worker: claims tasks (long-poll), runs handlers with bounded concurrency,
 * keeps leases alive while they run, and reports outcomes (cli.md §2.2, B3–B5).
 */
import type { Logger } from '../logger.js'
import { silentLogger } from '../logger.js'
import { canonicalTaskType } from '../store/aliases.js'
import type { ClaimedTask, JsonObject, JsonValue } from '../protocol/types.js'
import { isJsonObject } from '../protocol/json.js'
import {
  BackendError, backoffMs, completeWithRetry, isLeaseLost, sleep, toBackendError,
  type BackendCompleteOptions, type QueueBackend
} from './backend.js'
import { claimTaskTypes, dispatchTable, isFinalError, type HandlerMap, type TaskContext, type TaskHandler } from './handlers.js'
import { errorMessage, intOption, numOption, toJsonValue, yieldToIo } from './worker-util.js'

export interface WorkerOptions {
  backend: QueueBackend
  /** Sent in claims, heartbeats and completes. */
  workerId: string
  handlers: HandlerMap
  /** Allowlist intersected with the handler types; null/undefined = every handler type. */
  taskTypes?: readonly string[] | null
  /** Tasks run in parallel (≥ 1, default 1). */
  concurrency?: number
  /** Tasks asked for per claim (1..128, default 1); never more than free slots. */
  batch?: number
  /** Requested lease; renewed every leaseS/3 (default 300), or on the lease the service granted when it differs. */
  leaseS?: number
  session?: string
  /** Idle pause against services without long-poll claims (default 0.5). */
  pollIntervalS?: number
  /** Long-poll duration of each claim (default 30). */
  waitS?: number
  /** Run at most one batch, then stop by itself (see `done`). */
  once?: boolean
  logger?: Logger
  /** Default grace for stop() (default 5000 ms). */
  graceMs?: number
  /** Progress reports are coalesced and sent at most this often per task (default 1000). */
  progressFlushMs?: number
  /** How long a complete is retried on transport failures (default 600 000 ms). */
  completeRetryMaxMs?: number
}

export interface WorkerStats {
  claimed: number
  completed: number
  failed: number
  released: number
  /** Tasks whose lease was lost while running (the service refuses their results). */
  lost: number
  running: number
  claimErrors: number
  /** Completes that could not be delivered (gave up after retries). */
  completeErrors: number
  lastError: string | null
}

export interface WorkerRunResult {
  /** false when the last claim could not reach the queue (`worker --once` exits 3). */
  reachable: boolean
  claimed: number
  error: string | null
}

/** The reason a handler's signal fires when stop() runs out of grace. */
export class WorkerShutdownError extends Error {
  constructor () {
    super('worker is shutting down')
    this.name = 'WorkerShutdownError'
  }
}

/** The reason a handler's signal fires when renewing its lease was refused. */
export class LeaseLostError extends Error {
  readonly code: string
  constructor (taskId: string, code: string) {
    super(`lease on task ${taskId} lost (${code})`)
    this.name = 'LeaseLostError'
    this.code = code
  }
}

interface Outcome {
  status: 'completed' | 'failed'
  result?: JsonValue
  error?: string
  /** A failure the service may retry with backoff (★); false for a FinalError. */
  retry?: boolean
}

interface RunningTask {
  task: ClaimedTask
  abort: AbortController
  /** Ends complete retries when stop() gives up on this task. */
  completeAbort: AbortController
  phase: 'handling' | 'completing'
  leaseLost: boolean
  /** Released by stop(); whatever the handler returns later is dropped. */
  abandoned: boolean
  progress: JsonObject | null
  progressTimer: NodeJS.Timeout | undefined
}

const MIN_RENEW_MS = 100
/** A claim answering empty sooner than this with wait_s > 0 did not block at all. */
const SPIN_GUARD_MS = 20

export class Worker {
  readonly workerId: string
  readonly concurrency: number
  readonly batch: number
  readonly leaseS: number
  readonly once: boolean
  private readonly backend: QueueBackend
  private readonly table: Map<string, TaskHandler>
  private readonly claimTypes: string[]
  private readonly session: string
  private readonly pollIntervalS: number
  private readonly waitS: number
  private readonly graceMs: number
  private readonly progressFlushMs: number
  private readonly completeRetryMaxMs: number
  private readonly log: Logger
  private readonly running = new Map<string, RunningTask>()
  private readonly counters: Omit<WorkerStats, 'running'> = {
    claimed: 0, completed: 0, failed: 0, released: 0, lost: 0, claimErrors: 0, completeErrors: 0, lastError: null
  }

  private started = false
  private stopping = false
  private claimAbort = new AbortController()
  private loopPromise: Promise<void> = Promise.resolve()
  private stopPromise: Promise<void> | null = null
  private renewTimer: NodeJS.Timeout | undefined
  /** The lease renewals ask for: the requested one until a claim reply grants another (★ lease_s). */
  private grantedLeaseS: number
  private renewing = false
  private slotWaiters: Array<() => void> = []
  private lastClaimError: BackendError | null = null
  private resolveDone: ((r: WorkerRunResult) => void) | null = null
  private donePromise: Promise<WorkerRunResult> | null = null

  constructor (opts: WorkerOptions) {
    this.workerId = String(opts.workerId ?? '').trim()
    if (this.workerId === '') throw new RangeError('workerId must be a non-empty string')
    this.concurrency = intOption('concurrency', opts.concurrency, 1, 1, 100_000)
    this.batch = intOption('batch', opts.batch, 1, 1, 128)
    this.leaseS = numOption('leaseS', opts.leaseS, 300, 0.3, 3600)
    this.grantedLeaseS = this.leaseS
    this.waitS = numOption('waitS', opts.waitS, 30, 0, 3600)
    this.pollIntervalS = numOption('pollIntervalS', opts.pollIntervalS, 0.5, 0, 3600)
    this.graceMs = numOption('graceMs', opts.graceMs, 5000, 0, Infinity)
    this.progressFlushMs = numOption('progressFlushMs', opts.progressFlushMs, 1000, 0, 3_600_000)
    this.completeRetryMaxMs = numOption('completeRetryMaxMs', opts.completeRetryMaxMs, 600_000, 0, Infinity)
    this.once = opts.once === true
    this.session = opts.session ?? ''
    this.backend = opts.backend
    this.log = opts.logger ?? silentLogger()
    this.table = dispatchTable(opts.handlers)
    this.claimTypes = claimTaskTypes(this.table.keys(), opts.taskTypes)
    const unhandled = (opts.taskTypes ?? []).filter((t) => !this.table.has(canonicalTaskType(t)))
    if (unhandled.length > 0) this.log.warn({ task_types: unhandled }, 'no handler for these task types; they are not claimed')
    if (this.claimTypes.length === 0) {
      // An empty filter would mean "any type" to the service.
      throw new RangeError(opts.taskTypes == null
        ? 'the worker has no handlers'
        : `no handler for any of the task types ${JSON.stringify(opts.taskTypes)}`)
    }
  }

  /** The alias-expanded claim filter. */
  get taskTypes (): string[] {
    return [...this.claimTypes]
  }

  get stats (): WorkerStats {
    return { ...this.counters, running: this.running.size }
  }

  isStarted (): boolean {
    return this.started
  }

  /**
   * Resolves when the worker has stopped: after stop(), or by itself in `once`
   * mode once its batch is done.
   */
  get done (): Promise<WorkerRunResult> {
    if (this.donePromise === null) return Promise.resolve(this.result())
    return this.donePromise
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.stopping = false
    this.stopPromise = null
    this.lastClaimError = null
    this.claimAbort = new AbortController()
    this.donePromise = new Promise((resolve) => { this.resolveDone = resolve })
    // One timer for all tasks (as BullMQ does): cost stays flat as concurrency grows.
    this.grantedLeaseS = this.leaseS
    this.armRenewTimer()
    this.loopPromise = this.loop().catch((err: unknown) => {
      this.log.error({ err }, 'worker claim loop crashed')
      this.counters.lastError = err instanceof Error ? err.message : String(err)
    })
    if (this.once) void this.loopPromise.then(async () => { await this.stop({ graceMs: Infinity }) })
  }

  /** One timer for every running task, at a third of the lease in force. */
  private armRenewTimer (): void {
    clearInterval(this.renewTimer)
    this.renewTimer = setInterval(() => { void this.renewAll() }, Math.max(MIN_RENEW_MS, this.grantedLeaseS * 1000 / 3))
  }

  /**
   * A claim reply says which lease the service granted (★ `lease_s`); a service that
   * raised (or cut) the one asked for is renewed on its own terms, so the task never
   * outlives a lease the worker believed was longer.
   */
  private noteGrantedLease (task: ClaimedTask): void {
    const granted = task.lease_s
    if (typeof granted !== 'number' || !Number.isFinite(granted) || granted <= 0 || granted === this.grantedLeaseS) return
    if (granted !== this.leaseS) this.log.info({ requested_s: this.leaseS, granted_s: granted }, 'the service granted another lease than requested; renewing on it')
    this.grantedLeaseS = granted
    if (this.renewTimer !== undefined) this.armRenewTimer()
  }

  /**
   * Stops claiming at once (a waiting long-poll is abandoned), lets running handlers
   * finish within `graceMs`, then aborts the rest and releases them so another
   * worker can claim them immediately (attempt given back, B5).
   */
  async stop (opts: { graceMs?: number } = {}): Promise<void> {
    if (!this.started) return
    this.stopPromise ??= this.shutdown(opts.graceMs ?? this.graceMs)
    await this.stopPromise
  }

  // ---- claiming -----------------------------------------------------------------

  private async loop (): Promise<void> {
    let failures = 0
    while (!this.stopping) {
      const free = this.concurrency - this.running.size
      if (free <= 0) {
        await this.slotFreed()
        continue
      }
      const waitS = this.once ? 0 : this.waitS
      const started = Date.now()
      let tasks: ClaimedTask[]
      try {
        tasks = await this.backend.claim({
          workerId: this.workerId,
          taskTypes: this.claimTypes,
          session: this.session,
          leaseS: this.leaseS,
          maxTasks: Math.min(this.batch, free),
          waitS,
          pollIntervalS: this.pollIntervalS,
          signal: this.claimAbort.signal
        })
        this.lastClaimError = null
        failures = 0
      } catch (err) {
        const e = toBackendError(err)
        this.lastClaimError = e
        this.counters.claimErrors++
        this.counters.lastError = e.message
        if (this.stopping) return
        this.log.warn({ code: e.code, err: e.message }, 'claim failed')
        if (this.once) return
        await sleep(backoffMs(failures++), this.claimAbort.signal)
        continue
      }
      this.counters.claimed += tasks.length
      if (this.stopping) {
        // Claimed while stop() began: hand them straight back.
        await Promise.allSettled(tasks.map(async (t) => { await this.releaseTask(t.task_id) }))
        return
      }
      for (const t of tasks) this.launch(t)
      if (this.once) return
      // Let handlers that finish at once send their completes before the next claim
      // goes out: on an idle queue the complete is what the submitter waits for, and
      // the claim, right behind it, still parks before the next task is submitted.
      if (tasks.length > 0) await yieldToIo()
      if (tasks.length === 0 && waitS > 0 && Date.now() - started < SPIN_GUARD_MS) {
        // A backend that ignores waitS must not turn this loop into a busy spin.
        await sleep(Math.max(SPIN_GUARD_MS, this.pollIntervalS * 1000), this.claimAbort.signal)
      }
    }
  }

  private async slotFreed (): Promise<void> {
    await new Promise<void>((resolve) => { this.slotWaiters.push(resolve) })
  }

  private wakeSlots (): void {
    const waiters = this.slotWaiters
    this.slotWaiters = []
    for (const w of waiters) w()
  }

  // ---- running ------------------------------------------------------------------

  private launch (task: ClaimedTask): void {
    if (this.running.has(task.task_id)) return
    this.noteGrantedLease(task)
    const entry: RunningTask = {
      task,
      abort: new AbortController(),
      completeAbort: new AbortController(),
      phase: 'handling',
      leaseLost: false,
      abandoned: false,
      progress: null,
      progressTimer: undefined
    }
    this.running.set(task.task_id, entry)
    void this.runTask(entry).catch((err: unknown) => {
      this.log.error({ err, task_id: task.task_id }, 'task bookkeeping failed')
    }).finally(() => {
      clearTimeout(entry.progressTimer)
      if (this.running.get(task.task_id) === entry) this.running.delete(task.task_id)
      this.wakeSlots()
    })
  }

  private async runTask (entry: RunningTask): Promise<void> {
    const { task } = entry
    const outcome = await this.invoke(entry)
    if (entry.abandoned) return
    if (entry.leaseLost) {
      this.log.warn({ task_id: task.task_id }, 'lease lost while running; result dropped')
      return
    }
    entry.phase = 'completing'
    if (entry.progress !== null) {
      clearTimeout(entry.progressTimer)
      await this.renew(entry)
    }
    const req: BackendCompleteOptions = { taskId: task.task_id, workerId: this.workerId, ...outcome }
    try {
      await completeWithRetry(this.backend, req, {
        signal: entry.completeAbort.signal,
        maxMs: this.completeRetryMaxMs,
        onRetry: (e, attempt) => { this.log.warn({ task_id: task.task_id, code: e.code, attempt }, 'complete failed; retrying') }
      })
      if (outcome.status === 'completed') this.counters.completed++
      else this.counters.failed++
    } catch (err) {
      const e = toBackendError(err)
      this.counters.lastError = e.message
      if (isLeaseLost(e)) {
        this.counters.lost++
        this.log.warn({ task_id: task.task_id, code: e.code }, 'complete refused: lease lost')
      } else {
        this.counters.completeErrors++
        this.log.error({ task_id: task.task_id, code: e.code, err: e.message }, 'could not deliver complete')
      }
    }
  }

  /** Runs the handler; never throws (a failure is an outcome). */
  private async invoke (entry: RunningTask): Promise<Outcome> {
    const { task } = entry
    const handler = this.table.get(canonicalTaskType(task.task_type))
    if (handler === undefined) {
      return { status: 'failed', error: `no handler for task type "${task.task_type}" on worker ${this.workerId}`, retry: false }
    }
    const ctx: TaskContext = {
      signal: entry.abort.signal,
      workerId: this.workerId,
      progress: (p) => { this.queueProgress(entry, p) }
    }
    let value: unknown
    try {
      value = await handler(task, ctx)
    } catch (err) {
      return { status: 'failed', error: errorMessage(err), retry: !isFinalError(err) }
    }
    try {
      return { status: 'completed', result: toJsonValue(value) }
    } catch (err) {
      return { status: 'failed', error: `handler result is not JSON-serializable: ${errorMessage(err)}`, retry: false }
    }
  }

  private queueProgress (entry: RunningTask, p: JsonObject): void {
    if (entry.phase !== 'handling' || entry.abandoned || entry.leaseLost) return
    if (!isJsonObject(p)) return
    entry.progress = { ...(entry.progress ?? {}), ...p }
    entry.progressTimer ??= setTimeout(() => {
      entry.progressTimer = undefined
      void this.renew(entry)
    }, this.progressFlushMs)
  }

  // ---- leases -------------------------------------------------------------------

  private async renewAll (): Promise<void> {
    // A slow round must not pile up behind itself; the next tick covers the gap.
    if (this.renewing || this.running.size === 0) return
    this.renewing = true
    try {
      await Promise.allSettled([...this.running.values()].map(async (e) => { await this.renew(e) }))
    } finally {
      this.renewing = false
    }
  }

  private async renew (entry: RunningTask): Promise<void> {
    if (entry.abandoned || entry.leaseLost) return
    const progress = entry.progress
    entry.progress = null
    try {
      await this.backend.heartbeat({
        taskId: entry.task.task_id,
        workerId: this.workerId,
        leaseS: this.grantedLeaseS,
        progress: progress ?? undefined
      })
    } catch (err) {
      const e = toBackendError(err)
      if (isLeaseLost(e)) {
        // While completing, a refusal just means the complete landed first.
        if (entry.phase !== 'handling' || entry.abandoned || this.running.get(entry.task.task_id) !== entry) return
        entry.leaseLost = true
        this.counters.lost++
        this.log.warn({ task_id: entry.task.task_id, code: e.code }, 'lease lost; aborting handler')
        entry.abort.abort(new LeaseLostError(entry.task.task_id, e.code))
        return
      }
      if (progress !== null) entry.progress = { ...progress, ...(entry.progress ?? {}) }
      this.log.debug({ task_id: entry.task.task_id, code: e.code }, 'lease renewal failed; will retry')
    }
  }

  // ---- stopping -----------------------------------------------------------------

  private async releaseTask (taskId: string): Promise<void> {
    try {
      await this.backend.release({ taskId, workerId: this.workerId, reason: 'worker_shutdown' })
      this.counters.released++
    } catch (err) {
      const e = toBackendError(err)
      this.counters.lastError = e.message
      this.log.warn({ task_id: taskId, code: e.code }, 'release on shutdown failed; the lease will expire instead')
    }
  }

  private async abandon (entry: RunningTask): Promise<void> {
    const id = entry.task.task_id
    if (this.running.get(id) === entry) this.running.delete(id)
    clearTimeout(entry.progressTimer)
    if (entry.phase === 'completing') {
      entry.completeAbort.abort()
      return
    }
    entry.abandoned = true
    entry.abort.abort(new WorkerShutdownError())
    if (!entry.leaseLost) await this.releaseTask(id)
  }

  private async shutdown (graceMs: number): Promise<void> {
    this.stopping = true
    this.claimAbort.abort()
    this.wakeSlots()
    await this.loopPromise
    await this.untilIdle(graceMs)
    await Promise.allSettled([...this.running.values()].map(async (e) => { await this.abandon(e) }))
    clearInterval(this.renewTimer)
    this.renewTimer = undefined
    this.started = false
    const resolve = this.resolveDone
    this.resolveDone = null
    resolve?.(this.result())
  }

  /** Waits until nothing runs, or `graceMs` passes (Infinity = no limit). */
  private async untilIdle (graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs
    while (this.running.size > 0) {
      const left = deadline - Date.now()
      if (left <= 0) return
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.slotWaiters.push(resolve)
        if (Number.isFinite(left)) timer = setTimeout(resolve, left)
      })
      clearTimeout(timer)
    }
  }

  private result (): WorkerRunResult {
    const e = this.lastClaimError
    return { reachable: e === null || !e.unreachable, claimed: this.counters.claimed, error: e === null ? null : e.message }
  }
}
