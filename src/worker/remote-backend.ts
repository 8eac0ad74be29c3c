/**
 * A worker's tasks from a remote service over libp2p, through RemoteQueue: long-poll
 * claims, and completes batched into `complete_many` when the service supports it.
 */
import type { ClaimedTask } from '../protocol/types.js'
import type { RemoteQueue } from '../client/remote-queue.js'
import { CompleteBatcher, type ItemOutcome } from './complete-batcher.js'
import { BackendError, aborted, sleep, toBackendError } from './backend.js'
import type { BackendClaimOptions, BackendCompleteOptions, BackendHeartbeatOptions, BackendReleaseOptions, QueueBackend } from './backend.js'

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
    // One request shape whether it goes batched (complete_many) or alone.
    const request = {
      task_id: opts.taskId,
      worker_id: opts.workerId,
      status: opts.status,
      result: opts.result ?? undefined,
      error: opts.error === undefined || opts.error === '' ? undefined : opts.error,
      retry: opts.retry
    }
    if (this.batcher?.enabled === true) {
      let outcome: ItemOutcome
      try {
        outcome = await this.batcher.submit(request)
      } catch (err) {
        throw toBackendError(err)
      }
      if (outcome.ok) return { replayed: outcome.replayed }
      throw new BackendError(outcome.code, outcome.message, { transient: outcome.retryable, unreachable: false })
    }
    try {
      const out = await this.queue.complete(request)
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

