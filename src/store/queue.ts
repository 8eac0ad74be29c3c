/**
 * The durable task queue (wire-protocol.md §6.1, §7, B4–B7, B10, B15) over SQLite.
 *
 * Every mutating method is one `BEGIN IMMEDIATE` transaction: the write lock is taken
 * up front, so a claim's read-decide-update cannot interleave with another
 * connection's, even in another process sharing the file. Methods are synchronous
 * (node:sqlite is); each takes well under a millisecond, so the event loop is held
 * for less time than an async driver would spend on round trips.
 */
import { EventEmitter } from 'node:events'
import type { DatabaseSync, SQLOutputValue } from 'node:sqlite'
import { TaskQueueError } from '../protocol/errors.js'
import { migrate } from './db.js'
import { Transactor, type GroupOutcome } from './group-commit.js'
import { normalizeTaskType } from './aliases.js'
import { PeerRegistry, type PeerTouch, claimerProfile } from './peers.js'
import { OwnerCache } from './ownership.js'
import { ClaimWalk } from './claim-walk.js'
import { DEFAULT_MAX_REPLY_BYTES, type QueueStatements, ReplySize, type WalkRow, claimedTask, prepareQueueStatements } from './queue-sql.js'
import { TaskLister } from './queue-list.js'
import {
  type Row, appendError, appendTaskError, canonicalJson, clampInt, extractAffinity, isObject, nstr, num,
  newTaskId, parseJson, resultObject, str, taskFromArray, withProgress
} from './queue-util.js'
import type { Backoff, ClaimedTask, JsonObject, Task, TaskStatus } from '../protocol/types.js'
import type {
  ClaimInput, CompleteInput, CompleteResult, ListInput, ListResult, PeerEntry, QueueCounts, ReleaseInput,
  SubmitInput, SubmitResult, SweepResult, TaskChange, TaskHeartbeatInput, TaskHeartbeatResult
} from './types.js'
import { DEFAULT_RETENTION, DEFAULT_RETRY_POLICY, type RetentionPolicy, type RetryPolicy, retentionOf, retryDelayS } from './retry-policy.js'
import { DEFAULT_EVENTS_MAX, EventLog } from './event-log.js'
import type { QueueStoreEvents, StoreBackend, TaskStore } from './task-store.js'
import { type StatusTypeCount, countsByStatusAndType, oldestQueuedAgeS } from './queue-stats.js'
import { assertOwnedRunning, completeGuard, lastFailureBy } from './task-guards.js'
import { NO_SUBMITTER_LIMITS, type SubmitterLimits, type SubmitterUsage, exceededLimit, limitsOn, quotaRefusal } from './submitter-usage.js'
import { QueueAdmin, type PausedState, type PruneResult, type PurgeInput, type RetryInput, type RetryResult } from './queue-admin.js'

export { DEFAULT_MAX_REPLY_BYTES }
export const LEASE_EXPIRED_ERROR = 'claim lease expired after maximum attempts'
/** The release reason of a worker that stops (Worker.stop): it leaves scheduling at once. */
export const WORKER_SHUTDOWN = 'worker_shutdown'
const NO_PAUSES: ReadonlySet<string> = new Set()

export const ATTEMPTS_EXHAUSTED_ERROR = 'maximum attempts exhausted'
/** §7.4: the scheduler considers at least this many eligible tasks per claim. */
export const MIN_SCHEDULER_WALK = 1000

export interface QueueStoreOptions {
  db: DatabaseSync
  /** Default lease when a claim or heartbeat gives none (LEASE_S). */
  leaseS: number
  peerTimeoutS: number
  /** SCHEDULER_STEAL_AFTER_S; 0 = never steal. */
  stealAfterS: number
  deterministic: boolean
  /** Epoch seconds with fraction; injectable for tests. */
  now?: () => number
  /** Shared registry, e.g. when a service also records heartbeats elsewhere. */
  registry?: PeerRegistry
  maxPeers?: number
  /** Eligible tasks the deterministic scheduler examines per claim (≥ 1000). */
  schedulerWalk?: number
  /** ★ Backoff of retried failures (default: exponential from 1 s, at most 1 h). */
  retry?: RetryPolicy
  /** ★ How long finished tasks are kept (default: a week, at most 100,000). */
  retention?: RetentionPolicy
  /** ★ Entries the event log keeps (default 100,000; 0 = no event log). */
  eventsMax?: number
  /** ★ What one remote submitter may keep unfinished (PEER_MAX_TASKS, PEER_MAX_TASK_BYTES). */
  submitterLimits?: SubmitterLimits
}

export type { QueueStoreEvents }

export class QueueStore extends EventEmitter<QueueStoreEvents> implements TaskStore {
  readonly backend: StoreBackend = 'sqlite'
  readonly db: DatabaseSync
  readonly registry: PeerRegistry
  readonly leaseS: number
  readonly stealAfterS: number
  readonly deterministic: boolean
  readonly schedulerWalk: number
  readonly now: () => number
  readonly retry: RetryPolicy
  readonly retention: RetentionPolicy
  readonly submitterLimits: SubmitterLimits
  /** ★ The persistent stream of task changes (op events). */
  readonly events: EventLog
  private readonly admin: QueueAdmin
  private readonly s: QueueStatements
  private readonly lister: TaskLister
  private readonly walker: ClaimWalk
  private readonly owners: OwnerCache
  private readonly txr: Transactor
  /**
   * Set by a listener that waits on single tasks (service/task-events.ts): true for
   * a task somebody waits on, whose complete then carries the committed row on its
   * change event. The row is read inside the complete's own transaction, which is
   * cheaper than the waiter's standalone read afterwards (a WAL read transaction of
   * its own); tasks nobody waits on are not read at all.
   */
  watchesTask: ((taskId: string) => boolean) | null = null

  constructor (opts: QueueStoreOptions) {
    super()
    this.setMaxListeners(0) // one listener per waiting `wait`/long-poll claim
    this.db = opts.db
    this.now = opts.now ?? (() => Date.now() / 1000)
    this.leaseS = opts.leaseS > 0 ? opts.leaseS : 300
    this.stealAfterS = Math.max(0, opts.stealAfterS)
    this.deterministic = opts.deterministic
    this.schedulerWalk = Math.max(MIN_SCHEDULER_WALK, opts.schedulerWalk ?? MIN_SCHEDULER_WALK)
    this.registry = opts.registry ?? new PeerRegistry({ timeoutS: opts.peerTimeoutS, maxSize: opts.maxPeers, now: this.now })
    this.retry = opts.retry ?? DEFAULT_RETRY_POLICY
    this.retention = opts.retention ?? DEFAULT_RETENTION
    this.submitterLimits = opts.submitterLimits ?? NO_SUBMITTER_LIMITS
    migrate(this.db)
    this.s = prepareQueueStatements(this.db)
    this.events = new EventLog(this.db, opts.eventsMax ?? DEFAULT_EVENTS_MAX, this.now)
    this.admin = new QueueAdmin(this.db, this.retention)
    this.walker = new ClaimWalk(this.db, this.s)
    this.txr = new Transactor(this.db, (c) => this.emit('change', c), (changes) => { this.events.record(changes) })
    this.lister = new TaskLister(this.db)
    this.owners = new OwnerCache(this.stealAfterS)
  }

  // ---- submit -------------------------------------------------------------------

  submit (input: SubmitInput): SubmitResult {
    const payload: JsonObject = isObject(input.payload) ? input.payload : {}
    const key = input.idempotency_key !== null && input.idempotency_key !== '' ? input.idempotency_key : null
    const { session, sticky } = extractAffinity(payload)
    const payloadText = JSON.stringify(payload)
    const now = this.now()
    const submitter = input.submitter ?? null
    const payloadBytes = submitter === null ? null : Buffer.byteLength(payloadText)
    return this.tx(changes => {
      if (submitter !== null && payloadBytes !== null) this.checkSubmitter(submitter, payloadBytes, key)
      const taskId = newTaskId()
      // A key that already exists makes the insert do nothing: no lookup first.
      const nextAttemptAt = Number.isFinite(input.next_attempt_at) ? Math.max(0, input.next_attempt_at) : 0
      const inserted = this.s.insert.run(
        taskId, input.task_type, normalizeTaskType(input.task_type), input.model_name, payloadText, this.nextCreatedAt(now),
        clampInt(input.priority, 1, 10, 5), clampInt(input.max_attempts, 0, 1000, 3), nextAttemptAt, key, session, sticky,
        input.backoff == null ? null : JSON.stringify(input.backoff), input.keep_s ?? null, submitter, payloadBytes
      )
      if (Number(inserted.changes) === 0 && key !== null) {
        const prev = this.s.byIdempotency.get(key)
        if (prev === undefined) throw new Error(`submit with idempotency_key ${key} inserted nothing`)
        const same = str(prev.task_type) === input.task_type && str(prev.model_name) === input.model_name &&
          canonicalJson(parseJson(prev.payload)) === canonicalJson(payload)
        if (same) return { task_id: str(prev.task_id), replayed: true }
        throw new TaskQueueError('idempotency_conflict',
          `idempotency_key already names task ${str(prev.task_id)} with different work`)
      }
      changes.push({
        task_id: taskId, status: 'queued', task_type: input.task_type, kind: 'submitted', next_attempt_at: nextAttemptAt,
        detail: nextAttemptAt > now ? { next_attempt_at: nextAttemptAt } : undefined
      })
      return { task_id: taskId, replayed: false }
    }, true)
  }

  /**
   * ★ PEER_MAX_TASKS / PEER_MAX_TASK_BYTES, read under the write lock (exact): one row
   * of the submitter's running totals. A resend of a submit whose idempotency key
   * already names a task is let through, to be answered as the replay it is.
   */
  private checkSubmitter (submitter: string, payloadBytes: number, key: string | null): void {
    if (!limitsOn(this.submitterLimits)) return
    const usage = this.submitterUsage(submitter)
    const over = exceededLimit(usage, payloadBytes, this.submitterLimits)
    if (over === null || (key !== null && this.s.byIdempotency.get(key) !== undefined)) return
    throw quotaRefusal(over, usage, this.submitterLimits)
  }

  /** ★ What `submitter` keeps unfinished now (tests, status). */
  submitterUsage (submitter: string): SubmitterUsage {
    const row = this.s.usageOf.get(submitter)
    return { tasks: num(row?.tasks), bytes: num(row?.bytes) }
  }

  /**
   * created_at is made strictly increasing in insertion (seq) order, under the write
   * lock, so seq order is exactly (created_at, task_id) order and FIFO holds even for
   * submits within one clock tick or from processes whose clocks disagree. The price:
   * after a clock step backwards, new tasks carry created_at = newest + 1 µs until the
   * clock catches up.
   */
  private nextCreatedAt (now: number): number {
    // Read once per write transaction: a group of submits would otherwise read the
    // newest row once each (another connection cannot insert before our COMMIT). A
    // submit rolled back later in the group leaves the remembered value ahead of the
    // table by 1 µs at most, which keeps the order strictly increasing all the same.
    const tx = this.txr.transaction
    let newest = this.newestCreated?.tx === tx ? this.newestCreated.at : this.s.newestCreated.get()?.created_at
    if (typeof newest !== 'number') newest = -Infinity
    const at = newest >= now ? newest + 1e-6 : now
    this.newestCreated = { tx, at }
    return at
  }
  /** The created_at given last, and in which write transaction (nextCreatedAt). */
  private newestCreated: { tx: number, at: number } | null = null

  // ---- claim --------------------------------------------------------------------

  /** The claimer's scheduler profile; claiming (or asking to) is a sign of life. */
  /**
   * False only when a claim for `input` surely finds nothing now (no eligible type
   * queued, no lease due to expire): two index reads and no transaction, so a
   * long-poll claimer with nothing to take can park without a write transaction.
   * Records the claimer as live, as a claim does.
   */
  mayClaim (input: ClaimInput): boolean {
    const now = this.now()
    this.registry.touch(claimerProfile(input, now))
    const types = this.unpausedTypes(input.task_types)
    return types !== false && this.walker.mayHaveWork(types, now)
  }

  /**
   * The claim filter with paused types taken out: false when nothing it names may be
   * claimed (the whole queue or every named type paused). A filter of "any" stays
   * null; the claim walk then skips paused types row by row.
   */
  private unpausedTypes (types: readonly string[] | null): readonly string[] | null | false {
    const paused = this.pausedSet()
    if (paused.size === 0) return types
    if (paused.has('*')) return false
    if (types === null) return null
    const left = types.filter(t => !paused.has(t))
    return left.length === 0 ? false : left
  }

  /** Paused types ('*' = all), read from the file: a local worker in another process honours them too. */
  private pausedSet (): ReadonlySet<string> {
    const rows = this.s.pausedTypes.all()
    return rows.length === 0 ? NO_PAUSES : new Set(rows.map(r => str(r.type_norm)))
  }

  claim (input: ClaimInput): ClaimedTask[] {
    const now = this.now()
    const worker = input.worker_id
    const profile = claimerProfile(input, now)
    const self = profile.peer_id
    this.registry.touch(profile)
    const maxTasks = clampInt(input.max_tasks, 1, 100_000, 1)
    const leaseS = input.lease_s > 0 ? input.lease_s : this.leaseS
    const leaseUntil = now + leaseS
    const types = this.unpausedTypes(input.task_types)
    if (types === false) return []
    const paused = input.task_types === null ? this.pausedSet() : NO_PAUSES
    const maxBytes = input.max_reply_bytes ?? DEFAULT_MAX_REPLY_BYTES
    const walkLimit = Math.max(this.schedulerWalk, maxTasks * 16)
    // An idle long-poll claimer re-claims on every wake-up: with nothing it could
    // take and no lease to expire, two index reads answer without a write transaction.
    // Inside a group transaction the write lock is held anyway, and the walk's own
    // check of the queued types is the early exit.
    if (!this.txr.inGroup && !this.walker.mayHaveWork(types, now)) return []

    this.expireDue(now)
    // Expiring the requester's own lapsed lease forgets it; it is plainly alive.
    if (this.registry.get(self) === undefined) this.registry.touch(profile)
    // One write statement, after every read and parse: a savepoint-free op in a group.
    return this.tx(changes => {
      const owner = this.deterministic ? this.owners.forClaim(self, this.registry.candidates(now), now) : null
      const mine = owner?.mine ?? null
      // Rows the walk is expected to need: every eligible one is taken unless the
      // scheduler gives most of them to the other candidates (or same_task_type skips).
      const batch = Math.min(1024, maxTasks * (owner?.peers ?? 1) * (input.same_task_type ? 4 : 1))
      const picked: WalkRow[] = []
      const size = new ReplySize(worker, leaseUntil, leaseS, maxBytes)
      let firstType: string | null = null
      let walked = 0
      for (const row of this.walker.walk(types, worker, input.session, now, batch)) {
        if (++walked > walkLimit) break
        if (paused.size > 0 && paused.has(row.type_norm)) continue
        if (input.same_task_type && firstType !== null && row.task_type !== firstType) continue
        if (mine !== null && !mine(row)) continue
        // The first task always goes out: refusing it would leave it unclaimable forever.
        if (!size.take(row, picked)) break
        picked.push(row)
        firstType ??= row.task_type
        if (picked.length >= maxTasks) break
      }
      if (picked.length === 0) return []
      // One row (the usual long-poll handoff) needs no JSON list, whose temporary
      // table costs more than the statement itself.
      const seqs = picked.length === 1 ? null : JSON.stringify(picked.map(p => p.seq))
      const payloads = new Map<number, SQLOutputValue>()
      if (seqs === null) payloads.set(picked[0].seq, this.s.payloadOf.get(picked[0].seq)?.payload ?? null)
      else for (const r of this.s.payloadsOf.all(seqs)) payloads.set(num(r.seq), r.payload)
      const out = picked.map(row => claimedTask(row, worker, leaseUntil, leaseS, (parseJson(payloads.get(row.seq)) ?? {}) as JsonObject))
      if (seqs === null) this.s.claimOne.run(worker, now, leaseUntil, picked[0].seq)
      else this.s.claim.run(worker, now, leaseUntil, seqs)
      for (const row of picked) {
        changes.push({ task_id: row.task_id, status: 'running', task_type: row.task_type, kind: 'claimed', detail: { attempt: row.attempt + 1, worker_id: worker } })
      }
      return out
    }, true)
  }

  /** Applies lease expiry (§7.2) when a lease is due: usually one index read and no write. */
  private expireDue (now: number): void {
    if (this.s.hasExpiredLease.get(now) === undefined) return
    this.tx(changes => { this.expireLeases(now, changes) })
  }

  // ---- leases and sweeping ------------------------------------------------------

  /** Leases that ran out since this store opened (requeued or failed by expiry; metrics). */
  leaseExpiries = 0

  /** Tells `fn` the duration of every write transaction (metrics); returns the undo. */
  observeCommits (fn: (seconds: number) => void): () => void {
    this.txr.onCommit = fn
    return () => { if (this.txr.onCommit === fn) this.txr.onCommit = null }
  }

  private expireLeases (now: number, changes: TaskChange[]): SweepResult {
    let requeued = 0
    let failed = 0
    for (const r of this.s.expiredLeases.all(now)) {
      const id = str(r.task_id)
      const maxAttempts = num(r.max_attempts)
      // A worker that let a lease lapse is presumed gone: without this, the deterministic
      // scheduler would keep picking it as the owner of the requeued task until it steals.
      const holder = nstr(r.assigned_worker)
      if (holder !== null) this.registry.forgetWorker(holder)
      const attempt = num(r.attempt)
      const errors = appendTaskError(r.errors, { attempt, at: now, error: 'lease expired', worker_id: holder })
      const detail = { attempt, worker_id: holder, reason: 'lease_expired' }
      if (maxAttempts === 0 || attempt < maxAttempts) {
        this.s.requeueExpired.run(now, errors, num(r.seq))
        changes.push({ task_id: id, status: 'queued', task_type: str(r.task_type), kind: 'released', detail })
        requeued++
      } else {
        const error = appendError(nstr(r.error), LEASE_EXPIRED_ERROR)
        this.s.fail.run(error, now, this.keepFor('failed'), errors, num(r.seq))
        changes.push({ task_id: id, status: 'failed', task_type: str(r.task_type), kind: 'failed', detail: { ...detail, error } })
        failed++
      }
    }
    this.leaseExpiries += requeued + failed
    return { requeued, failed }
  }

  /** Expired leases (§7.2) plus queued tasks with no attempts left (B6). */
  sweep (): SweepResult {
    const now = this.now()
    return this.tx(changes => {
      const res = this.expireLeases(now, changes)
      for (const r of this.s.exhaustedQueued.all()) {
        const id = str(r.task_id)
        const error = appendError(nstr(r.error), ATTEMPTS_EXHAUSTED_ERROR)
        this.s.fail.run(error, now, this.keepFor('failed'), null, num(r.seq))
        changes.push({ task_id: id, status: 'failed', task_type: str(r.task_type), kind: 'failed', detail: { error } })
        res.failed++
      }
      return res
    })
  }

  // ---- complete / release / heartbeat / cancel ------------------------------------

  complete (input: CompleteInput): CompleteResult {
    const now = this.now()
    const id = input.task_id
    return this.tx(changes => {
      // The usual case without a read first: a running task owned by the caller (or
      // by nobody) with no stored result to merge into. Anything else takes the guarded
      // path below, which re-reads the row; either way at most one row is written.
      // A failure takes the guarded path: it records the attempt's error and may retry.
      const done = id !== '' && input.status !== 'failed' && Number(this.s.completeRunning.run(input.status,
        input.result === null ? null : JSON.stringify(input.result), input.error, now, id, input.worker_id,
        this.keepFor(input.status)).changes) === 1
      if (done) {
        const kind = input.status
        const task = this.watchesTask?.(id) === true ? this.get(id) : null
        if (task !== null) {
          changes.push({ task_id: id, status: input.status, task_type: task.task_type, kind, task })
        } else {
          changes.push({ task_id: id, status: input.status, task_type: str(this.s.typeOf.get(id)?.task_type), kind })
        }
        return { task_id: id, replayed: false }
      }
      const row = this.guardRow(id)
      const guard = completeGuard(id, input, nstr(row.assigned_worker), str(row.status), () => lastFailureBy(row.errors, num(row.attempt), input.worker_id))
      if (guard === 'replayed') return { task_id: id, replayed: true }
      if (guard === 'cancel') {
        this.cancelIn(id, row, input.error, now, changes)
        return { task_id: id, replayed: false, cancelled: true }
      }
      const stored = parseJson(row.result)
      let result = stored
      if (input.result !== null) result = isObject(stored) ? { ...stored, ...input.result } : input.result
      const error = input.error !== '' ? input.error : nstr(row.error)
      const resultText = result === null ? null : JSON.stringify(result)
      if (input.status !== 'failed') {
        this.s.complete.run(input.status, resultText, error, now, this.keepFor(input.status), null, num(row.seq))
        changes.push({ task_id: id, status: input.status, task_type: str(row.task_type), kind: input.status })
        return { task_id: id, replayed: false }
      }
      return this.failAttempt(id, row, input, error, resultText, now, changes)
    }, true)
  }

  /**
   * A failed attempt: recorded in `errors`, then queued again after its backoff when
   * the worker asked for a retry and attempts remain (★), else failed for good.
   */
  private failAttempt (id: string, row: Row, input: CompleteInput, error: string | null, resultText: string | null, now: number, changes: TaskChange[]): CompleteResult {
    const attempt = num(row.attempt)
    const maxAttempts = num(row.max_attempts)
    const worker = input.worker_id !== '' ? input.worker_id : nstr(row.assigned_worker)
    const errors = appendTaskError(row.errors, { attempt, at: now, error: error ?? '', worker_id: worker })
    const detail: JsonObject = { attempt, worker_id: worker, error }
    if (input.retry === true && (maxAttempts === 0 || attempt < maxAttempts)) {
      const stored = parseJson(row.backoff)
      const backoff = isObject(stored) ? stored as unknown as Backoff : this.retry.backoff
      const retryAt = now + retryDelayS(backoff, attempt, this.retry.maxDelayS)
      // Only a result given with the failure replaces the stored one (progress is kept).
      this.s.retryLater.run(retryAt, error, errors, input.result === null ? null : resultText, now, num(row.seq))
      changes.push({ task_id: id, status: 'queued', task_type: str(row.task_type), kind: 'retried', next_attempt_at: retryAt, detail: { ...detail, next_attempt_at: retryAt } })
      return { task_id: id, replayed: false, retry_at: retryAt }
    }
    this.s.complete.run('failed', resultText, error, now, this.keepFor('failed'), errors, num(row.seq))
    changes.push({ task_id: id, status: 'failed', task_type: str(row.task_type), kind: 'failed', detail })
    return { task_id: id, replayed: false }
  }

  /** Retention (s) of a task finishing with `status`, for the finishing statement; null = kept. */
  private keepFor (status: TaskStatus): number | null {
    return retentionOf(this.retention, status)
  }

  release (input: ReleaseInput): { task_id: string } {
    const now = this.now()
    const id = input.task_id
    return this.tx(changes => {
      const row = this.ownedRunning(id, input.worker_id)
      const prev = resultObject(parseJson(row.result)).progress
      const count = isObject(prev) && typeof prev.release_count === 'number' ? prev.release_count : 0
      const result = withProgress(parseJson(row.result), {
        release_count: count + 1,
        last_release_reason: input.reason,
        last_release_ts: now
      })
      const delay = Number.isFinite(input.delay_s) ? Math.max(0, input.delay_s) : 0
      this.s.release.run(now + delay, JSON.stringify(result), now, num(row.seq))
      // A worker shutting down is gone: its tasks go to the next claimer at once instead
      // of waiting for the scheduler to stop picking it (SCHEDULER_STEAL_AFTER_S).
      if (input.reason === WORKER_SHUTDOWN) this.registry.forgetWorker(input.worker_id)
      changes.push({
        task_id: id, status: 'queued', task_type: str(row.task_type), kind: 'released', next_attempt_at: now + delay,
        detail: { worker_id: input.worker_id, reason: input.reason }
      })
      return { task_id: id }
    }, true)
  }

  heartbeatTask (input: TaskHeartbeatInput): TaskHeartbeatResult {
    const now = this.now()
    const id = input.task_id
    const leaseUntil = now + (input.lease_s > 0 ? input.lease_s : this.leaseS)
    return this.tx(changes => {
      const row = this.ownedRunning(id, input.worker_id)
      const progress = input.progress !== null && isObject(input.progress) ? input.progress : null
      const result = progress !== null
        ? JSON.stringify(withProgress(parseJson(row.result), progress))
        : nstr(row.result)
      this.s.heartbeat.run(leaseUntil, now, result, now, num(row.seq))
      if (progress !== null) changes.push({ task_id: id, status: 'running', task_type: str(row.task_type), kind: 'progress', detail: { progress } })
      return { task_id: id, lease_until: leaseUntil, heartbeat_at: now }
    }, true)
  }

  cancel (taskId: string, reason: string = ''): { cancelled: boolean } {
    const now = this.now()
    return this.tx(changes => {
      const row = this.s.guard.get(taskId)
      if (row === undefined || str(row.status) !== 'queued') return { cancelled: false }
      this.cancelIn(taskId, row, reason, now, changes)
      return { cancelled: true }
    }, true)
  }

  private cancelIn (id: string, row: Row, reason: string, now: number, changes: TaskChange[]): void {
    const patch: JsonObject = { cancelled_at: now }
    if (reason !== '') patch.cancel_reason = reason
    this.s.cancel.run(JSON.stringify(withProgress(parseJson(row.result), patch)), now, this.keepFor('cancelled'), num(row.seq))
    changes.push({ task_id: id, status: 'cancelled', task_type: str(row.task_type), kind: 'cancelled', detail: reason === '' ? undefined : { reason } })
  }

  private guardRow (id: string): Row {
    const row = id === '' ? undefined : this.s.guard.get(id)
    if (row === undefined) throw new TaskQueueError('task_not_found', `task ${id} not found`)
    return row
  }

  /** Release and heartbeat: the task must be running and owned by `worker`. */
  private ownedRunning (id: string, worker: string): Row {
    const row = this.guardRow(id)
    assertOwnedRunning(id, nstr(row.assigned_worker), str(row.status), worker)
    return row
  }

  // ---- reads ----------------------------------------------------------------------

  get (taskId: string): Task | null {
    if (taskId === '') return null
    const r = this.s.get.get(taskId) as SQLOutputValue[] | undefined
    return r === undefined ? null : taskFromArray(r)
  }

  delete (taskId: string): boolean {
    return this.tx(changes => {
      const r = this.s.guard.get(taskId)
      if (r === undefined || Number(this.s.delete.run(taskId).changes) === 0) return false
      changes.push({ task_id: taskId, status: str(r.status) as TaskStatus, task_type: str(r.task_type), kind: 'pruned', detail: { reason: 'deleted' } })
      return true
    }, true)
  }

  // ---- operating the queue (★ retry, purge, pause/resume, retention) ---------------

  /** Requeues failed (or cancelled) tasks with fresh attempts. */
  retryTasks (input: RetryInput): RetryResult {
    return this.tx(changes => this.admin.retry(input, this.now(), changes))
  }

  /** Deletes up to `input.limit` matching tasks that are not running; returns how many. */
  purge (input: PurgeInput): number {
    return this.tx(changes => this.admin.purge(input, changes))
  }

  /** Pauses claims of the named types, or of the whole queue (null). Submits still go in. */
  pause (types: readonly string[] | null): PausedState {
    return this.tx(() => this.admin.pause(types, this.now()))
  }

  /** Resumes the named types, or everything (null); parked claimers are woken. */
  resume (types: readonly string[] | null): PausedState {
    const out = this.tx(() => this.admin.resume(types))
    this.emit('resumed')
    return out
  }

  paused (): PausedState {
    return this.admin.paused()
  }

  /** One retention batch (RETENTION_*, keep_s); never a task `watchesTask` names. */
  prune (batch = 500): PruneResult {
    const now = this.now()
    const watched = this.watchesTask
    return this.tx(changes => this.admin.prune(now, batch, (id) => watched?.(id) === true, changes))
  }

  /** Tasks pruned by retention over the file's life. */
  prunedTotal (): number {
    return this.admin.prunedTotal()
  }

  list (input: ListInput): ListResult {
    return this.lister.list(input)
  }

  counts (): QueueCounts {
    const out: QueueCounts = { queued: 0, running: 0, queued_by_type: {}, running_by_type: {} }
    for (const r of this.s.countsQueued.all()) {
      out.queued_by_type[str(r.task_type)] = num(r.n)
      out.queued += num(r.n)
    }
    for (const r of this.s.countsRunning.all()) {
      out.running_by_type[str(r.task_type)] = num(r.n)
      out.running += num(r.n)
    }
    return out
  }

  /** Earliest future next_attempt_at of a queued task: when a long-poll should look again. */
  nextEligibleAt (): number | null {
    const v = this.s.nextEligible.get(this.now())?.t
    return typeof v === 'number' ? v : null
  }

  /** Earliest lease expiry of a running task (its requeue is another reason to look again). */
  nextLeaseExpiryAt (): number | null {
    const v = this.s.nextLease.get()?.t
    return typeof v === 'number' ? v : null
  }

  statusTypeCounts (): StatusTypeCount[] {
    return countsByStatusAndType(this.db)
  }

  oldestQueuedAgeS (): number {
    return oldestQueuedAgeS(this.db, this.now())
  }

  /** Changes when another connection (e.g. another process) commits to the file. */
  dataVersion (): number {
    return num(this.s.dataVersion.get()?.data_version)
  }

  touchPeer (t: PeerTouch): PeerEntry {
    return this.registry.touch({ ...t, last_seen: t.last_seen ?? this.now() })
  }

  // ---- transactions ---------------------------------------------------------------

  /** One write transaction; change events go out only after it committed. */
  private tx<T>(fn: (changes: TaskChange[]) => T, singleWrite = false): T {
    return this.txr.run(fn, singleWrite)
  }

  /**
   * Group commit: runs `ops` (closures calling this store's methods) in order in one
   * write transaction, each rolled back alone if it throws. Outcomes, and change
   * events, only after the COMMIT (group-commit.ts).
   */
  group<T>(ops: ReadonlyArray<() => T>, more?: (changes: readonly TaskChange[]) => ReadonlyArray<() => T>): Array<GroupOutcome<T>> {
    return this.txr.group(ops, more)
  }
}
