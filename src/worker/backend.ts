/**
 * Where a worker gets its tasks: a remote service over libp2p (`RemoteBackend`) or the
 * SQLite file of a `serve` on the same host (`LocalBackend`). Both report failures as
 * `BackendError` so the worker decides retry/abort by code, never by message (B16).
 */
import { QueueStore } from '../store/queue.js'
import { openDatabase } from '../store/db.js'
import type { ClaimedTask, JsonObject, JsonValue } from '../protocol/types.js'
import { TaskQueueError } from '../protocol/errors.js'
import { ClientError, ProtocolError, RemoteError } from '../client/errors.js'
import type { RemoteQueue } from '../client/remote-queue.js'
import { CompleteBatcher, type ItemOutcome } from './complete-batcher.js'

export interface BackendClaimOptions {
  workerId: string
  /** Alias-expanded claim filter; null = any type. */
  taskTypes: readonly string[] | null
  /** '' = no session. */
  session: string
  leaseS: number
  maxTasks: number
  /** Long-poll: block up to this long for work (0 = answer at once). */
  waitS: number
  /** Idle pause after an immediate empty reply from a service without long-poll. */
  pollIntervalS?: number
  /** Ends a waiting claim early with no tasks (worker shutdown). */
  signal?: AbortSignal
}

export interface BackendCompleteOptions {
  taskId: string
  workerId: string
  status: 'completed' | 'failed' | 'cancelled'
  /** Any JSON; a non-object is wrapped as `{result: x}` by the service. */
  result?: JsonValue
  error?: string
}

export interface BackendReleaseOptions {
  taskId: string
  workerId: string
  reason?: string
  delayS?: number
}

export interface BackendHeartbeatOptions {
  taskId: string
  workerId: string
  leaseS: number
  progress?: JsonObject
}

export interface QueueBackend {
  /** 'remote', 'local', or a custom backend's name (for logs and status). */
  readonly kind: string
  claim (opts: BackendClaimOptions): Promise<ClaimedTask[]>
  complete (opts: BackendCompleteOptions): Promise<{ replayed: boolean }>
  release (opts: BackendReleaseOptions): Promise<void>
  heartbeat (opts: BackendHeartbeatOptions): Promise<{ lease_until: number }>
  close (): Promise<void>
}

/** Codes meaning this worker no longer holds the task (B4); its result would be refused. */
export const LEASE_LOST_CODES: ReadonlySet<string> = new Set(['not_owner', 'task_not_running', 'task_not_found'])

export class BackendError extends Error {
  /** A §5 reply code, or a client transport code (dial_failed, no_peer_found, …). */
  readonly code: string
  /** Worth retrying the same call later (transport failure, `busy`, `timeout`). */
  readonly transient: boolean
  /** The queue itself could not be reached (no reply at all). */
  readonly unreachable: boolean

  constructor (code: string, message: string, opts: { transient: boolean, unreachable: boolean, cause?: unknown }) {
    super(message, { cause: opts.cause })
    this.name = 'BackendError'
    this.code = code
    this.transient = opts.transient
    this.unreachable = opts.unreachable
  }
}

export function isLeaseLost (err: unknown): boolean {
  return err instanceof BackendError && LEASE_LOST_CODES.has(err.code)
}

/** Resolves after `ms`, or early (without throwing) when the signal fires. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted === true) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** A function, not an inline test: TS would keep a narrowing from before an await. */
function aborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** Exponential backoff with jitter (half to all of the capped ceiling): spreads reconnecting workers apart. */
export function backoffMs (attempt: number, capMs = 5000, baseMs = 100): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16))
  return ceiling / 2 + Math.random() * ceiling / 2
}

/**
 * Completes with retries on transient failures: complete is idempotent and a
 * `replayed:true` reply means an earlier attempt already landed, so retrying can
 * never apply a result twice. Gives up when the signal fires or `maxMs` passes.
 */
export async function completeWithRetry (
  backend: QueueBackend,
  opts: BackendCompleteOptions,
  retry: { signal?: AbortSignal, maxMs?: number, onRetry?: (err: BackendError, attempt: number) => void } = {}
): Promise<{ replayed: boolean }> {
  const deadline = Date.now() + (retry.maxMs ?? 600_000)
  for (let attempt = 0; ; attempt++) {
    try {
      return await backend.complete(opts)
    } catch (err) {
      const e = toBackendError(err)
      if (!e.transient || retry.signal?.aborted === true || Date.now() >= deadline) throw e
      retry.onRetry?.(e, attempt)
      await sleep(Math.min(backoffMs(attempt), Math.max(0, deadline - Date.now())), retry.signal)
      if (aborted(retry.signal)) throw e
    }
  }
}

/** Classifies client, store and unknown failures into one shape. */
export function toBackendError (err: unknown): BackendError {
  if (err instanceof BackendError) return err
  if (err instanceof RemoteError) {
    return new BackendError(err.code, err.message, { transient: err.retryable, unreachable: false, cause: err })
  }
  if (err instanceof ProtocolError) {
    // Something answered, but not a TaskQueue: as good as no service for this worker.
    return new BackendError(err.code, err.message, { transient: true, unreachable: true, cause: err })
  }
  if (err instanceof ClientError) {
    return new BackendError(err.code, err.message, { transient: true, unreachable: true, cause: err })
  }
  if (err instanceof TaskQueueError) {
    return new BackendError(err.code, err.message, { transient: err.retryable, unreachable: false, cause: err })
  }
  const message = err instanceof Error ? err.message : String(err)
  return new BackendError('internal_error', message, { transient: false, unreachable: false, cause: err })
}

// ---- remote -------------------------------------------------------------------------

/**
 * The part of RemoteQueue a worker uses (structural, so tests can stand in for it).
 * `status` and `request` are optional: with them the worker batches its completes
 * (`complete_many`) when the service supports it.
 */
export type RemoteQueueLike = Pick<RemoteQueue, 'claimMany' | 'complete' | 'release' | 'heartbeat' | 'close'> &
Partial<Pick<RemoteQueue, 'status' | 'request'>>

export interface RemoteBackendOptions {
  /** close() also closes the RemoteQueue (and its libp2p node). */
  ownsQueue?: boolean
  /** Default idle pause against services without long-poll. */
  pollIntervalS?: number
}

/**
 * An empty reply sooner than this fraction of wait_s means the service ignored
 * wait_s (an original service), so the worker must pace its own polling.
 */
const LONG_POLL_EARLY_FRACTION = 0.5

export class RemoteBackend implements QueueBackend {
  readonly kind = 'remote'
  /** null until an empty long-poll reply shows whether the service blocks on wait_s. */
  longPollSupported: boolean | null = null
  private readonly queue: RemoteQueueLike
  private readonly opts: RemoteBackendOptions
  private readonly orphans = new Set<Promise<void>>()
  private readonly batcher: CompleteBatcher | null

  constructor (queue: RemoteQueueLike, opts: RemoteBackendOptions = {}) {
    this.queue = queue
    this.opts = opts
    const { status, request } = queue
    this.batcher = status !== undefined && request !== undefined
      ? new CompleteBatcher({
        status: async () => await status.call(queue, false),
        request: async (op, fields) => await request.call(queue, op, fields)
      })
      : null
  }

  async claim (opts: BackendClaimOptions): Promise<ClaimedTask[]> {
    if (opts.signal?.aborted === true) return []
    this.batcher?.probe()
    const started = Date.now()
    const request = this.queue.claimMany({
      worker_id: opts.workerId,
      max_tasks: opts.maxTasks,
      supported_task_types: opts.taskTypes === null ? undefined : [...opts.taskTypes],
      session: opts.session === '' ? undefined : opts.session,
      lease_s: opts.leaseS,
      wait_s: opts.waitS > 0 ? opts.waitS : undefined
    }, { signal: opts.signal })
    let tasks: ClaimedTask[]
    try {
      tasks = await this.untilAborted(request, opts)
    } catch (err) {
      throw toBackendError(err)
    }
    if (tasks.length === 0 && opts.waitS > 0 && !aborted(opts.signal)) {
      const early = Date.now() - started < opts.waitS * 1000 * LONG_POLL_EARLY_FRACTION
      this.longPollSupported = !early
      if (early) await sleep((opts.pollIntervalS ?? this.opts.pollIntervalS ?? 0.5) * 1000, opts.signal)
    }
    return tasks
  }

  /**
   * The signal closes the claim's stream (the service then stops waiting and returns
   * anything it claimed for us); tasks that still arrive in a reply racing the abort
   * are released at once so they do not sit leased to a worker that is gone.
   */
  private async untilAborted (request: Promise<ClaimedTask[]>, opts: BackendClaimOptions): Promise<ClaimedTask[]> {
    const signal = opts.signal
    if (signal === undefined) return await request
    let onAbort: (() => void) | undefined
    const aborted = new Promise<null>((resolve) => {
      onAbort = () => resolve(null)
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      const out = await Promise.race([request, aborted])
      if (out !== null) return out
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    }
    const orphan = request.then(async (late) => {
      for (const t of late) {
        await this.release({ taskId: t.task_id, workerId: opts.workerId, reason: 'worker_shutdown' }).catch(() => {})
      }
    }, () => {}).finally(() => { this.orphans.delete(orphan) })
    this.orphans.add(orphan)
    return []
  }

  async complete (opts: BackendCompleteOptions): Promise<{ replayed: boolean }> {
    if (this.batcher?.enabled === true) {
      let outcome: ItemOutcome
      try {
        outcome = await this.batcher.submit({
          task_id: opts.taskId,
          worker_id: opts.workerId,
          status: opts.status,
          result: opts.result ?? undefined,
          error: opts.error === undefined || opts.error === '' ? undefined : opts.error
        })
      } catch (err) {
        throw toBackendError(err)
      }
      if (outcome.ok) return { replayed: outcome.replayed }
      throw new BackendError(outcome.code, outcome.message, { transient: outcome.retryable, unreachable: false })
    }
    try {
      const out = await this.queue.complete({
        task_id: opts.taskId,
        worker_id: opts.workerId,
        status: opts.status,
        result: opts.result ?? undefined,
        error: opts.error === undefined || opts.error === '' ? undefined : opts.error
      })
      return { replayed: out.replayed }
    } catch (err) {
      throw toBackendError(err)
    }
  }

  async release (opts: BackendReleaseOptions): Promise<void> {
    try {
      await this.queue.release({ task_id: opts.taskId, worker_id: opts.workerId, reason: opts.reason, delay_s: opts.delayS })
    } catch (err) {
      throw toBackendError(err)
    }
  }

  async heartbeat (opts: BackendHeartbeatOptions): Promise<{ lease_until: number }> {
    try {
      const out = await this.queue.heartbeat({ task_id: opts.taskId, worker_id: opts.workerId, lease_s: opts.leaseS, progress: opts.progress })
      return { lease_until: out.lease_until }
    } catch (err) {
      throw toBackendError(err)
    }
  }

  /**
   * Closing the queue drops the connection, which also ends a still-pending
   * long-poll on the service side before it claims anything.
   */
  async close (): Promise<void> {
    if (this.opts.ownsQueue === true) await this.queue.close()
    else await Promise.race([Promise.allSettled([...this.orphans]), sleep(1000)])
  }
}

// ---- local --------------------------------------------------------------------------

export interface LocalBackendOptions {
  /** Lease bounds applied like the service does (10..3600); tests may lower the minimum. */
  minLeaseS?: number
  maxLeaseS?: number
  /** How often an idle long-poll looks for writes by other processes. */
  checkIntervalMs?: number
  /** Upper bound between claim attempts while idle (time-based eligibility, e.g. scheduler steals). */
  maxIdleMs?: number
}

export interface OpenLocalBackendOptions extends LocalBackendOptions {
  /** Default lease for the store (LEASE_S). */
  leaseS?: number
  peerTimeoutS?: number
  stealAfterS?: number
  deterministic?: boolean
}

/**
 * Claims straight from the SQLite file. No change events cross processes, so while
 * a claim waits it reads `PRAGMA data_version` (moves when another connection
 * commits) every few tens of milliseconds and re-claims when it moves, when a
 * delayed task or an expiring lease comes due, or when this process's store emits a
 * change. Nothing runs while the worker is busy.
 */
export class LocalBackend implements QueueBackend {
  readonly kind = 'local'
  readonly store: QueueStore
  private readonly ownsStore: boolean
  private readonly minLeaseS: number
  private readonly maxLeaseS: number
  private readonly checkIntervalMs: number
  private readonly maxIdleMs: number
  private closed = false
  private readonly wakers = new Set<() => void>()

  constructor (store: QueueStore, opts: LocalBackendOptions & { ownsStore?: boolean } = {}) {
    this.store = store
    this.ownsStore = opts.ownsStore === true
    this.minLeaseS = opts.minLeaseS ?? 10
    this.maxLeaseS = opts.maxLeaseS ?? 3600
    this.checkIntervalMs = Math.max(1, opts.checkIntervalMs ?? 50)
    this.maxIdleMs = Math.max(this.checkIntervalMs, opts.maxIdleMs ?? 1000)
  }

  /** Opens the queue file of a `serve` (created if absent); close() closes it. */
  static open (path: string, opts: OpenLocalBackendOptions = {}): LocalBackend {
    const db = openDatabase(path)
    try {
      const store = new QueueStore({
        db,
        leaseS: opts.leaseS ?? 300,
        peerTimeoutS: opts.peerTimeoutS ?? 300,
        stealAfterS: opts.stealAfterS ?? 30,
        deterministic: opts.deterministic ?? false
      })
      return new LocalBackend(store, { ...opts, ownsStore: true })
    } catch (err) {
      db.close()
      throw err
    }
  }

  private lease (s: number): number {
    const n = Number.isFinite(s) ? s : 300
    return Math.min(this.maxLeaseS, Math.max(this.minLeaseS, n))
  }

  private claimNow (opts: BackendClaimOptions): ClaimedTask[] {
    try {
      return this.store.claim({
        worker_id: opts.workerId,
        peer_key: opts.workerId,
        session: opts.session,
        task_types: opts.taskTypes === null || opts.taskTypes.length === 0 ? null : opts.taskTypes,
        lease_s: this.lease(opts.leaseS),
        max_tasks: Math.min(128, Math.max(1, Math.trunc(opts.maxTasks))),
        same_task_type: false,
        transport_peer_id: '',
        peer_hint: ''
      })
    } catch (err) {
      throw localError(err)
    }
  }

  async claim (opts: BackendClaimOptions): Promise<ClaimedTask[]> {
    const deadline = Date.now() + Math.max(0, opts.waitS) * 1000
    for (;;) {
      if (this.closed) throw new BackendError('dial_failed', 'local queue is closed', { transient: false, unreachable: true })
      if (opts.signal?.aborted === true) return []
      // Read before claiming: a commit landing between the two must still wake us.
      const version = this.dataVersion()
      const tasks = this.claimNow(opts)
      if (tasks.length > 0 || Date.now() >= deadline) return tasks
      await this.untilChange(version, deadline, opts.signal)
    }
  }

  private dataVersion (): number {
    try {
      return this.store.dataVersion()
    } catch (err) {
      throw localError(err)
    }
  }

  /** Time (ms) at which a claim could succeed without any new write. */
  private dueAt (): number {
    let due = Date.now() + this.maxIdleMs
    const next = this.store.nextEligibleAt()
    if (next !== null) due = Math.min(due, next * 1000)
    const lease = this.store.nextLeaseExpiryAt()
    if (lease !== null) due = Math.min(due, lease * 1000)
    return due
  }

  private async untilChange (version: number, deadline: number, signal?: AbortSignal): Promise<void> {
    const due = Math.min(deadline, this.dueAt())
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const finish = (): void => {
        clearInterval(timer)
        this.store.off('change', onChange)
        signal?.removeEventListener('abort', finish)
        this.wakers.delete(finish)
        resolve()
      }
      const onChange = (c: { status: string }): void => { if (c.status === 'queued') finish() }
      timer = setInterval(() => {
        let moved = true
        try { moved = this.store.dataVersion() !== version } catch { /* let the claim report it */ }
        if (moved || Date.now() >= due) finish()
      }, Math.min(this.checkIntervalMs, Math.max(1, due - Date.now())))
      this.store.on('change', onChange)
      signal?.addEventListener('abort', finish, { once: true })
      this.wakers.add(finish)
    })
  }

  async complete (opts: BackendCompleteOptions): Promise<{ replayed: boolean }> {
    const r = opts.result
    // Same coercion as the `complete` op: a non-object result is wrapped.
    const result: JsonObject | null = r === undefined || r === null
      ? null
      : typeof r === 'object' && !Array.isArray(r) ? r : { result: r }
    try {
      const out = this.store.complete({ task_id: opts.taskId, status: opts.status, result, error: opts.error ?? '', worker_id: opts.workerId })
      return { replayed: out.replayed }
    } catch (err) {
      throw localError(err)
    }
  }

  async release (opts: BackendReleaseOptions): Promise<void> {
    try {
      this.store.release({
        task_id: opts.taskId,
        worker_id: opts.workerId,
        reason: opts.reason === undefined || opts.reason === '' ? 'released' : opts.reason,
        delay_s: Math.min(86400, Math.max(0, opts.delayS ?? 0))
      })
    } catch (err) {
      throw localError(err)
    }
  }

  async heartbeat (opts: BackendHeartbeatOptions): Promise<{ lease_until: number }> {
    try {
      const out = this.store.heartbeatTask({ task_id: opts.taskId, worker_id: opts.workerId, lease_s: this.lease(opts.leaseS), progress: opts.progress ?? null })
      return { lease_until: out.lease_until }
    } catch (err) {
      throw localError(err)
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const wake of [...this.wakers]) wake()
    if (this.ownsStore) this.store.db.close()
  }
}

/** SQLite failures other than `busy` (disk, corruption) mean the queue is unusable for now. */
function localError (err: unknown): BackendError {
  if (err instanceof TaskQueueError) return toBackendError(err)
  const message = err instanceof Error ? err.message : String(err)
  return new BackendError('internal_error', `local queue: ${message}`, { transient: true, unreachable: true, cause: err })
}
