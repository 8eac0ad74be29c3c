/**
 * A worker's tasks straight from the store: the SQLite file of a `serve` on the same
 * host, or the PostgreSQL database of a queue's coordinators (the worker is then one
 * more client of the database, woken by its notifications like a coordinator).
 */
import type { TaskStore } from '../store/task-store.js'
import { QueueStore, type QueueStoreOptions } from '../store/queue.js'
import { openDatabase } from '../store/db.js'
import { PgQueueStore, type PgQueueStoreOptions } from '../store/pg/queue.js'
import type { ClaimedTask, JsonObject } from '../protocol/types.js'
import { TaskQueueError } from '../protocol/errors.js'
import { isJsonObject } from '../protocol/json.js'
import { BackendError, toBackendError } from './backend.js'
import type { BackendClaimOptions, BackendCompleteOptions, BackendHeartbeatOptions, BackendReleaseOptions, QueueBackend } from './backend.js'

export interface LocalBackendOptions {
  /** Lease bounds applied like the service does (10..3600); tests may lower the minimum. */
  minLeaseS?: number
  maxLeaseS?: number
  /** How often an idle long-poll looks for writes by other processes. */
  checkIntervalMs?: number
  /** Upper bound between claim attempts while idle (time-based eligibility, e.g. scheduler steals). */
  maxIdleMs?: number
}

/** The store's options (LEASE_S and the scheduler, ★ retry, retention, events): as the service's (queueStoreOptionsFrom). */
export interface OpenLocalBackendOptions extends LocalBackendOptions, Partial<Omit<QueueStoreOptions, 'db'>> {}

/** The store options a local worker's store needs, as the service's defaults. */
function schedulerDefaults (opts: { leaseS?: number, peerTimeoutS?: number, stealAfterS?: number, deterministic?: boolean }) {
  return {
    leaseS: opts.leaseS ?? 300,
    peerTimeoutS: opts.peerTimeoutS ?? 300,
    stealAfterS: opts.stealAfterS ?? 30,
    deterministic: opts.deterministic ?? false
  }
}

/** As OpenLocalBackendOptions, for a PostgreSQL queue (TASK_QUEUE_POOL_SIZE as poolSize). */
export interface OpenPgLocalBackendOptions extends LocalBackendOptions, Partial<Omit<PgQueueStoreOptions, 'url'>> {}

/**
 * Claims straight from the store. On SQLite no change events cross processes, so while
 * a claim waits it reads `PRAGMA data_version` (moves when another connection
 * commits) every few tens of milliseconds and re-claims when it moves, when a
 * delayed task or an expiring lease comes due, or when this process's store emits a
 * change. On PostgreSQL the store's data version moves with every other process's
 * change notification, so the same loop wakes on those. Nothing runs while the worker
 * is busy.
 */
export class LocalBackend implements QueueBackend {
  readonly kind = 'local'
  /** The service's store (SQLite or PostgreSQL, for `serve --worker`), or a queue file opened here. */
  readonly store: TaskStore
  private readonly ownsStore: boolean
  private readonly minLeaseS: number
  private readonly maxLeaseS: number
  private readonly checkIntervalMs: number
  private readonly maxIdleMs: number
  private closed = false
  private readonly wakers = new Set<() => void>()
  /** Queued changes heard: a claim that awaited its store (PostgreSQL) looks again when one came meanwhile. */
  private queuedHeard = 0
  private readonly onQueued = (c: { status: string }): void => { if (c.status === 'queued') this.queuedHeard++ }

  constructor (store: TaskStore, opts: LocalBackendOptions & { ownsStore?: boolean } = {}) {
    this.store = store
    store.on('change', this.onQueued)
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
      const store = new QueueStore({ ...opts, db, ...schedulerDefaults(opts) })
      return new LocalBackend(store, { ...opts, ownsStore: true })
    } catch (err) {
      db.close()
      throw err
    }
  }

  /**
   * Opens a PostgreSQL queue (migrating it if needed, as a coordinator would); close()
   * closes it. Other coordinators' changes wake a waiting claim through LISTEN/NOTIFY.
   */
  static async openUrl (url: string, opts: OpenPgLocalBackendOptions = {}): Promise<LocalBackend> {
    const store = await PgQueueStore.open({ ...opts, url, ...schedulerDefaults(opts) })
    return new LocalBackend(store, { ...opts, ownsStore: true })
  }

  private lease (s: number): number {
    const n = Number.isFinite(s) ? s : 300
    return Math.min(this.maxLeaseS, Math.max(this.minLeaseS, n))
  }

  private async claimNow (opts: BackendClaimOptions): Promise<ClaimedTask[]> {
    try {
      return await this.store.claim({
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
      const heard = this.queuedHeard
      const tasks = await this.claimNow(opts)
      if (tasks.length > 0 || Date.now() >= deadline) return tasks
      if (this.queuedHeard !== heard) continue
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
      : isJsonObject(r) ? r : { result: r }
    try {
      const out = await this.store.complete({ task_id: opts.taskId, status: opts.status, result, error: opts.error ?? '', worker_id: opts.workerId, retry: opts.retry })
      return { replayed: out.replayed }
    } catch (err) {
      throw localError(err)
    }
  }

  async release (opts: BackendReleaseOptions): Promise<void> {
    try {
      await this.store.release({
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
      const out = await this.store.heartbeatTask({ task_id: opts.taskId, worker_id: opts.workerId, lease_s: this.lease(opts.leaseS), progress: opts.progress ?? null })
      return { lease_until: out.lease_until }
    } catch (err) {
      throw localError(err)
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const wake of [...this.wakers]) wake()
    this.store.off('change', this.onQueued)
    if (this.ownsStore && this.store instanceof QueueStore) this.store.db.close()
    if (this.ownsStore && this.store instanceof PgQueueStore) await this.store.close()
  }
}

/** SQLite failures other than `busy` (disk, corruption) mean the queue is unusable for now. */
function localError (err: unknown): BackendError {
  if (err instanceof TaskQueueError) return toBackendError(err)
  const message = err instanceof Error ? err.message : String(err)
  return new BackendError('internal_error', `local queue: ${message}`, { transient: true, unreachable: true, cause: err })
}
