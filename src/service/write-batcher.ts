/**
 * Group commit for the service (store/group-commit.ts): queue writes run as one
 * SQLite transaction, and each caller's promise settles only after the COMMIT, so
 * an acknowledged write is as durable as with a transaction of its own.
 *
 * Adaptive batching, with no timer: SQLite commits synchronously, so what queues up
 * behind a commit is what arrived while it ran. When the service is busy (a commit
 * ended less than BUSY_GAP_MS ago) a batch is cut at the end of the event loop's
 * poll phase (`setImmediate`), collecting the writes of every stream and connection
 * that delivered data in it. After a quiet gap the first write is committed as soon
 * as the I/O callback that brought it has been handled (`process.nextTick`, which
 * still batches everything that callback carried), so an idle service holds no
 * write back for others: a worker's complete no longer waits behind the parsing of
 * a `wait` that reached the service in the same poll phase.
 *
 * Work handoff: long-poll claimers with nothing to take park here. A transaction that
 * queues work (submit, release) runs the parked claims of matching types before its
 * COMMIT, so the new task is committed as submitted *and* claimed at once, and the
 * claimer gets it right after that one commit instead of after a wake-up, a second
 * transaction and a second commit.
 */
import type { QueueStore } from '../store/queue.js'
import { normalizeTaskType } from '../store/aliases.js'
import type { ClaimedTask } from '../protocol/types.js'
import type { MaybePromise } from '../store/task-store.js'
import type { TaskChange } from '../store/types.js'

interface PendingWrite {
  run: () => unknown
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

/** A waiting long-poll claimer (service/ops/queue-ops.ts). */
export interface ParkedClaim {
  /**
   * Claims for the waiting claimer (a TaskStore.claim call). On SQLite it runs inside
   * a group transaction and is synchronous; on PostgreSQL it returns a promise.
   */
  claim: () => MaybePromise<ClaimedTask[]>
  /** The claimer's alias-expanded type filter; null = any type. */
  types: ReadonlySet<string> | null
  /** Receives the tasks once the transaction that claimed them has committed. */
  deliver: (tasks: ClaimedTask[]) => void
  /** False when a claim would surely find nothing (TaskStore.mayClaim: reads, no transaction). */
  mayClaim: () => MaybePromise<boolean>
}

/**
 * How the service's ops write to the queue: `WriteBatcher` (SQLite group commit, below)
 * or `PgWrites` (pg-writes.ts). `write` resolves with the op's value once committed.
 */
export interface QueueWrites {
  write: <T>(op: () => T) => Promise<Awaited<T>>
  /** Claims now; with `park`, a claimer that found nothing is parked (see WriteBatcher.claim). */
  claim: (claimer: ParkedClaim, park: boolean) => Promise<ClaimedTask[]>
  unpark: (claimer: ParkedClaim) => void
  readonly parkedClaims: number
  readonly counters: { ops: number, commits: number, handoffs: number }
}

/** The value of a store call that must be synchronous here (the SQLite store's always is). */
function synchronous<T> (v: MaybePromise<T>): T {
  if (v instanceof Promise) throw new Error('the SQLite write batcher runs synchronous store calls only')
  return v
}

/** A batch is cut here so one transaction (and the replies waiting on it) stays short. */
const MAX_BATCH = 512
/** A commit that ended less than this long ago means the service is busy (see above). */
export const BUSY_GAP_MS = 1

export class WriteBatcher implements QueueWrites {
  private readonly store: QueueStore
  private pending: PendingWrite[] = []
  private scheduled = false
  /** performance.now() when the last batch committed. */
  private lastFlushAt = -Infinity
  /** In park order: the longest-waiting claimer is offered work first. */
  private readonly parked = new Set<ParkedClaim>()
  /**
   * Ops in the transactions run so far, how many transactions, and how many parked
   * claimers were handed work inside one: for status detail and tests.
   */
  readonly counters = { ops: 0, commits: 0, handoffs: 0 }

  private readonly busyGapMs: number

  constructor (store: QueueStore, opts: { busyGapMs?: number } = {}) {
    this.store = store
    this.busyGapMs = opts.busyGapMs ?? BUSY_GAP_MS
  }

  /** Runs `op` (synchronous store calls) in the next group transaction; resolves after its COMMIT. */
  async write<T>(op: () => T): Promise<Awaited<T>> {
    return await new Promise<Awaited<T>>((resolve, reject) => {
      this.pending.push({ run: op, resolve: resolve as (value: unknown) => void, reject })
      if (!this.scheduled) {
        this.scheduled = true
        if (performance.now() - this.lastFlushAt < this.busyGapMs) setImmediate(this.flush)
        else process.nextTick(this.flush)
      }
    })
  }

  /**
   * Runs `claimer.claim` in the next group transaction. With `park`, a claimer that
   * finds nothing is parked right there, inside that transaction: work queued later
   * in it or in any later one is offered to it before that COMMIT and delivered once,
   * after it, until `unpark`. Parking in the batcher rather than after the reply
   * leaves no gap in which a submit could commit unseen. Work that becomes claimable
   * any other way (another process's write, a delayed task coming due, a lease
   * expiring) is not offered: the claimer's own wake-up covers that.
   */
  async claim (claimer: ParkedClaim, park: boolean): Promise<ClaimedTask[]> {
    // Nothing to take: park at once, without a write transaction (an idle worker's
    // claim after each complete). Every commit of this process runs synchronously in
    // flush, so none can fall between this read and the parking; the next one offers
    // its work here as usual.
    if (park && !synchronous(claimer.mayClaim())) {
      this.parked.add(claimer)
      return []
    }
    return await this.write(() => {
      const tasks = synchronous(claimer.claim())
      if (tasks.length === 0 && park) this.parked.add(claimer)
      return tasks
    })
  }

  unpark (claimer: ParkedClaim): void {
    this.parked.delete(claimer)
  }

  get parkedClaims (): number {
    return this.parked.size
  }

  private readonly flush = (): void => {
    this.scheduled = false
    while (this.pending.length > 0) {
      const batch = this.pending.length > MAX_BATCH ? this.pending.splice(0, MAX_BATCH) : this.pending
      if (batch === this.pending) this.pending = []
      const offered: ParkedClaim[] = []
      const outcomes = this.store.group<unknown>(batch.map((p) => p.run), (changes) => this.offerWork(changes, offered))
      this.counters.ops += batch.length
      this.counters.commits++
      // Claimers first: on the submit → claim → complete path the worker is the one
      // with more to do before the task is done.
      for (let i = 0; i < offered.length; i++) {
        const o = outcomes[batch.length + i]
        const tasks = o?.ok === true ? o.value as ClaimedTask[] : []
        if (tasks.length === 0) continue
        this.parked.delete(offered[i])
        this.counters.handoffs++
        offered[i].deliver(tasks)
      }
      for (let i = 0; i < batch.length; i++) {
        const o = outcomes[i]
        if (o.ok) batch[i].resolve(o.value)
        else batch[i].reject(o.error)
      }
    }
    this.lastFlushAt = performance.now()
  }

  /**
   * The parked claims to run in a transaction that made `changes`: those whose type
   * filter matches a task it queued, until as many tasks were claimed as it queued.
   */
  private offerWork (changes: readonly TaskChange[], offered: ParkedClaim[]): Array<() => ClaimedTask[]> {
    if (this.parked.size === 0) return []
    let queued = 0
    const types = new Set<string>()
    for (const c of changes) {
      if (c.status !== 'queued' || c.kind === 'pruned') continue
      queued++
      types.add(normalizeTaskType(c.task_type))
    }
    if (queued === 0) return []
    let taken = 0
    const ops: Array<() => ClaimedTask[]> = []
    for (const p of this.parked) {
      if (p.types !== null && ![...types].some((t) => p.types?.has(t) === true)) continue
      offered.push(p)
      ops.push(() => {
        if (taken >= queued) return []
        const tasks = synchronous(p.claim())
        taken += tasks.length
        return tasks
      })
    }
    return ops
  }
}
