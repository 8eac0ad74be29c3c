/**
 * The durable task queue on PostgreSQL (TASK_QUEUE_URL=postgres://…): the same
 * contract and semantics as the SQLite `QueueStore` (task-store.ts), for several
 * coordinators sharing one database.
 *
 * - Every write is one transaction on a pooled connection; its changes are appended
 *   to the event log and sent with `pg_notify` inside it, so they reach the other
 *   coordinators at COMMIT (listener.ts) and this process's waiters right after it.
 * - Claims pick rows with `FOR UPDATE SKIP LOCKED`: coordinators claiming at once
 *   never block each other and never hand out the same task.
 * - The lease sweep and retention lock the rows they change with SKIP LOCKED as
 *   well, so every coordinator may run them at once.
 * - The deterministic scheduler (SCHEDULER_DETERMINISTIC) is a property of one
 *   coordinator's view of its claimers; on PostgreSQL claims are first come, first
 *   served in claim order (priority, then age), with session and sticky affinity.
 */
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { TaskQueueError } from '../../protocol/errors.js'
import { DEFAULT_QUEUE_POOL_SIZE } from '../../config/settings.js'
import { PeerRegistry, type PeerTouch, claimerProfile } from '../peers.js'
import { DEFAULT_MAX_REPLY_BYTES } from '../queue-sql.js'
import {
  appendError, appendTaskError, clampInt, isObject, parseJson,
  resultObject, withProgress
} from '../queue-util.js'
import type { Backoff, ClaimedTask, JsonObject, Task, TaskStatus } from '../../protocol/types.js'
import type {
  ClaimInput, CompleteInput, CompleteResult, ListInput, ListResult, PeerEntry, QueueCounts, ReleaseInput,
  SubmitInput, SubmitResult, SweepResult, TaskChange, TaskHeartbeatInput, TaskHeartbeatResult
} from '../types.js'
import { DEFAULT_RETENTION, DEFAULT_RETRY_POLICY, type RetentionPolicy, type RetryPolicy, retentionOf, retryDelayS } from '../retry-policy.js'
import { DEFAULT_EVENTS_MAX } from '../event-log.js'
import type { PausedState, PruneResult, PurgeInput, RetryInput, RetryResult } from '../queue-admin.js'
import type { QueueStoreEvents, StoreBackend, TaskStore } from '../task-store.js'
import { EVENTS_LOCK, migratePg } from './schema.js'
import type { StatusTypeCount } from '../queue-stats.js'
import { assertOwnedRunning, completeGuard, lastFailureBy } from '../task-guards.js'
import { CHANNEL, ChangeListener, packChanges } from './listener.js'
import { foldSubmitterUsage, readSubmitterUsage } from './submitter-usage.js'
import { NO_SUBMITTER_LIMITS, type SubmitterLimits, type SubmitterUsage, exceededLimit, limitsOn, quotaRefusal } from '../submitter-usage.js'
import { PgAdmin, PgEventLog, TASK_SELECT, type Db, pgTask } from './admin.js'
import { OpeningTransaction, sqlLiteral } from './sql-text.js'
import { storeError } from './store-error.js'
import { KEYED_SQL, PgGroupCommit, insertSql, replayOf, simpleComplete, submitRow } from './group-commit.js'

const LEASE_EXPIRED_ERROR = 'claim lease expired after maximum attempts'
const ATTEMPTS_EXHAUSTED_ERROR = 'maximum attempts exhausted'
const WORKER_SHUTDOWN = 'worker_shutdown'
/** Seconds between folds of the per-submitter totals (pg/submitter-usage.ts). */
const USAGE_FOLD_EVERY_S = 30
/** Seconds between a claim's looks for due leases (expireDue). */
const EXPIRY_CHECK_S = 1

export interface PgQueueStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string
  leaseS: number
  peerTimeoutS: number
  stealAfterS?: number
  deterministic?: boolean
  now?: () => number
  registry?: PeerRegistry
  maxPeers?: number
  retry?: RetryPolicy
  retention?: RetentionPolicy
  eventsMax?: number
  /** Pooled connections for queue (and cache) work, TASK_QUEUE_POOL_SIZE; one more listens. */
  poolSize?: number
  /** ★ What one remote submitter may keep unfinished (PEER_MAX_TASKS, PEER_MAX_TASK_BYTES). */
  submitterLimits?: SubmitterLimits
}

type Row = Record<string, unknown>

function s (v: unknown): string { return typeof v === 'string' ? v : v == null ? '' : String(v) }
function ns (v: unknown): string | null { return v == null ? null : s(v) }
function n (v: unknown): number { return typeof v === 'number' ? v : Number(v ?? 0) }

export class PgQueueStore extends EventEmitter<QueueStoreEvents> implements TaskStore {
  readonly backend: StoreBackend = 'postgres'
  readonly pool: pg.Pool
  readonly registry: PeerRegistry
  readonly leaseS: number
  readonly now: () => number
  readonly retry: RetryPolicy
  readonly retention: RetentionPolicy
  readonly submitterLimits: SubmitterLimits
  readonly events: PgEventLog
  /** This store's id in notifications: its own changes are published locally, not twice. */
  readonly origin = randomBytes(8).toString('hex')
  leaseExpiries = 0
  watchesTask: ((taskId: string) => boolean) | null = null
  private readonly admin: PgAdmin
  /** Submits and completes arriving together, one transaction (group-commit.ts). */
  readonly group: PgGroupCommit
  private readonly listener: ChangeListener
  private onCommit: ((seconds: number) => void) | null = null
  /** Bumped by every change another coordinator made (and after a listener gap). */
  private foreignVersion = 0
  /** Earliest future next_attempt_at known (see nextEligibleAt). */
  private delayedHint: number | null = null
  private closed = false
  private usageFoldedAt = 0
  /** The store's clock when a claim last looked for due leases. */
  private lastExpiryCheck = -Infinity

  private constructor (opts: PgQueueStoreOptions) {
    super()
    this.setMaxListeners(0)
    this.now = opts.now ?? (() => Date.now() / 1000)
    this.leaseS = opts.leaseS > 0 ? opts.leaseS : 300
    this.registry = opts.registry ?? new PeerRegistry({ timeoutS: opts.peerTimeoutS, maxSize: opts.maxPeers, now: this.now })
    this.retry = opts.retry ?? DEFAULT_RETRY_POLICY
    this.retention = opts.retention ?? DEFAULT_RETENTION
    this.submitterLimits = opts.submitterLimits ?? NO_SUBMITTER_LIMITS
    this.pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? DEFAULT_QUEUE_POOL_SIZE })
    // An idle pooled connection that dies (server restart) must not crash the process.
    this.pool.on('error', () => {})
    this.events = new PgEventLog(this.pool, opts.eventsMax ?? DEFAULT_EVENTS_MAX)
    this.admin = new PgAdmin(this.retention)
    this.group = new PgGroupCommit({
      pool: this.pool,
      now: this.now,
      keepFor: (status) => this.keepFor(status),
      watches: (id) => this.watchesTask?.(id) === true,
      commitSql: (changes) => this.commitSql(changes),
      committed: (changes, seconds, delayed) => {
        for (const at of delayed) this.noteDelayed(at)
        this.onCommit?.(seconds)
        this.publish(changes)
      },
      submitterLimits: this.submitterLimits,
      submitAlone: async (input) => await this.submitAlone(input),
      // The group's UPDATE did not take it: the full path, without trying that UPDATE again.
      completeAlone: async (input) => await this.completeAlone(input, false)
    })
    this.listener = new ChangeListener({
      connectionString: opts.url,
      onNotify: (msg) => {
        if (msg.origin === this.origin) return
        this.foreignVersion++
        for (const c of msg.changes) {
          if (c.status === 'queued' && c.next_attempt_at !== undefined) this.noteDelayed(c.next_attempt_at)
          this.publishOne(c)
        }
        if (msg.resumed) this.emit('resumed')
      },
      onGap: () => {
        this.foreignVersion++
        this.delayedHint = null
        this.emit('resumed')
      }
    })
  }

  /** Connects, migrates the schema and starts listening for other coordinators' changes. */
  static async open (opts: PgQueueStoreOptions): Promise<PgQueueStore> {
    const store = new PgQueueStore(opts)
    try {
      await migratePg(store.pool)
      await store.listener.start()
      await store.refreshDelayedHint()
    } catch (err) {
      await store.close()
      throw err
    }
    return store
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.listener.stop()
    await this.pool.end().catch(() => {})
  }

  // ---- transactions -----------------------------------------------------------------

  /**
   * One write transaction. Its changes go into the event log (under EVENTS_LOCK, so
   * log order is commit order across coordinators) and into notifications, both
   * inside it; this process's listeners hear of them after the COMMIT.
   */
  private async tx<T>(fn: (db: Db, changes: TaskChange[]) => Promise<T>, resumed = false): Promise<T> {
    let c: pg.PoolClient
    try {
      c = await this.pool.connect()
    } catch (err) {
      throw storeError(err)
    }
    const changes: TaskChange[] = []
    const started = this.onCommit !== null ? performance.now() : 0
    const db = new OpeningTransaction(c)
    let out: T
    try {
      out = await fn(db, changes)
      // The event log, the notifications and the COMMIT in one round trip: a
      // multi-statement simple query, values escaped by the driver.
      const end = this.commitSql(changes, resumed)
      if (db.begun) await c.query(end)
      else if (end !== 'COMMIT') await c.query(`BEGIN;\n${end}`)
    } catch (err) {
      const rolledBack = !db.begun || await c.query('ROLLBACK').then(() => true, () => false)
      // A connection that cannot even roll back is broken: the pool drops it.
      c.release(rolledBack ? undefined : true)
      throw storeError(err)
    }
    c.release()
    if (this.onCommit !== null) this.onCommit((performance.now() - started) / 1000)
    this.publish(changes)
    return out
  }

  /**
   * The end of a write transaction as one simple-protocol query: under EVENTS_LOCK the
   * event log rows (so log order is commit order across coordinators), then pg_notify
   * per packed payload, then COMMIT.
   */
  commitSql (changes: readonly TaskChange[], resumed = false): string {
    if (changes.length === 0 && !resumed) return 'COMMIT'
    const parts: string[] = []
    if (this.events.enabled && changes.length > 0) {
      parts.push(`SELECT pg_advisory_xact_lock(${EVENTS_LOCK})`)
      parts.push(this.events.insertSql(changes, this.now()))
    }
    for (const payload of packChanges(this.origin, changes, resumed)) {
      parts.push(`SELECT pg_notify('${CHANNEL}', ${sqlLiteral(payload)})`)
    }
    parts.push('COMMIT')
    return parts.join(';\n')
  }

  /** Tells this process's listeners of committed changes. */
  publish (changes: readonly TaskChange[]): void {
    for (const ch of changes) this.publishOne(ch)
  }

  private publishOne (change: TaskChange): void {
    try {
      this.emit('change', change)
    } catch (err) {
      process.emitWarning(`task change listener failed: ${(err as Error).message}`)
    }
  }

  private async read<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    try {
      return await fn(this.pool)
    } catch (err) {
      throw storeError(err)
    }
  }

  observeCommits (fn: (seconds: number) => void): () => void {
    this.onCommit = fn
    return () => { if (this.onCommit === fn) this.onCommit = null }
  }

  // ---- submit -----------------------------------------------------------------------

  /** Joins the group commit (group-commit.ts): submits arriving together are one transaction. */
  async submit (input: SubmitInput): Promise<SubmitResult> {
    return await this.group.submit(input)
  }

  /** A submit in a transaction of its own (what the group falls back to). */
  private async submitAlone (input: SubmitInput): Promise<SubmitResult> {
    return await this.tx(async (db, changes) => {
      const row = submitRow(input, this.now())
      if (row.submitter !== null) await this.checkSubmitter(db, row.submitter, row.payloadBytes, row.key)
      const r = await db.query(insertSql([row]))
      if (r.rowCount === 0 && row.key !== null) {
        const prev = (await db.query(KEYED_SQL, [[row.key]])).rows[0] as Row | undefined
        if (prev === undefined) throw new TaskQueueError('busy', `submit with idempotency_key ${row.key} raced a delete; retry`)
        return replayOf(row, prev)
      }
      if (row.delayedUntil !== null) this.noteDelayed(row.delayedUntil)
      changes.push(row.change)
      return { task_id: row.task_id, replayed: false }
    })
  }

  /**
   * ★ PEER_MAX_TASKS / PEER_MAX_TASK_BYTES from the submitter's running totals (one
   * short read; see store/pg/submitter-usage.ts). Not serialized across transactions:
   * submits of one peer committing at the same moment may each pass the bound once,
   * so it can be exceeded by that peer's concurrently running submit transactions.
   */
  private async checkSubmitter (db: Db, submitter: string, payloadBytes: number, key: string | null): Promise<void> {
    if (!limitsOn(this.submitterLimits)) return
    const usage = await readSubmitterUsage(db, submitter)
    const over = exceededLimit(usage, payloadBytes, this.submitterLimits)
    if (over === null) return
    if (key !== null && (await db.query('SELECT 1 FROM tq_tasks WHERE idempotency_key = $1', [key])).rowCount !== 0) return
    throw quotaRefusal(over, usage, this.submitterLimits)
  }

  /** ★ What `submitter` keeps unfinished now (tests, status). */
  async submitterUsage (submitter: string): Promise<SubmitterUsage> {
    return await this.read(async (db) => await readSubmitterUsage(db, submitter))
  }

  // ---- claim ------------------------------------------------------------------------

  async mayClaim (input: ClaimInput): Promise<boolean> {
    const now = this.now()
    this.registry.touch(claimerProfile(input, now))
    const types = input.task_types === null || input.task_types.length === 0 ? null : [...input.task_types]
    const r = await this.read(async (db) => await db.query(`SELECT
        EXISTS (SELECT 1 FROM tq_tasks WHERE status = 'running' AND lease_until <= $1) OR
        EXISTS (SELECT 1 FROM tq_tasks t WHERE status = 'queued' AND next_attempt_at <= $1
          AND ($2::text[] IS NULL OR type_norm = ANY($2))
          AND NOT EXISTS (SELECT 1 FROM tq_pauses p WHERE p.type_norm = t.type_norm OR p.type_norm = '*')) AS x`, [now, types]))
    return r.rows[0]?.x === true
  }

  async claim (input: ClaimInput): Promise<ClaimedTask[]> {
    const now = this.now()
    const worker = input.worker_id
    const profile = claimerProfile(input, now)
    this.registry.touch(profile)
    const maxTasks = clampInt(input.max_tasks, 1, 100_000, 1)
    const leaseS = input.lease_s > 0 ? input.lease_s : this.leaseS
    const leaseUntil = now + leaseS
    const types = input.task_types === null || input.task_types.length === 0 ? null : [...input.task_types]
    const maxBytes = input.max_reply_bytes ?? DEFAULT_MAX_REPLY_BYTES
    await this.expireDue(now)
    if (this.registry.get(profile.peer_id) === undefined) this.registry.touch(profile)
    return await this.tx(async (db, changes) => {
      let sameType: string | null = null
      if (input.same_task_type && maxTasks > 1) {
        // The first eligible task decides the type of the batch.
        const first = await db.query(`SELECT task_type FROM tq_tasks t WHERE ${ELIGIBLE}
          ORDER BY priority DESC, seq LIMIT 1`, [now, worker, input.session, types])
        if (first.rows.length === 0) return []
        sameType = s((first.rows[0] as Row).task_type)
      }
      const r = await db.query(`WITH picked AS (
          SELECT seq FROM tq_tasks t WHERE ${ELIGIBLE} AND ($6::text IS NULL OR task_type = $6)
          ORDER BY priority DESC, seq LIMIT $5 FOR UPDATE SKIP LOCKED)
        UPDATE tq_tasks t SET status = 'running', assigned_worker = $2, attempt = attempt + 1,
          heartbeat_at = $1, lease_until = $7, updated_at = $1
        FROM picked WHERE t.seq = picked.seq
        RETURNING t.seq, t.task_id, t.task_type, t.model_name, t.payload, t.created_at, t.attempt, t.max_attempts, t.priority`,
      [now, worker, input.session, types, maxTasks, sameType, leaseUntil])
      const rows = (r.rows as Row[]).sort((a, b) => n(b.priority) - n(a.priority) || n(a.seq) - n(b.seq))
      const out: ClaimedTask[] = []
      const giveBack: number[] = []
      let bytes = 2
      for (const row of rows) {
        const task: ClaimedTask = {
          task_id: s(row.task_id),
          task_type: s(row.task_type),
          model_name: s(row.model_name),
          payload: (parseJson(s(row.payload)) ?? {}) as JsonObject,
          created_at: n(row.created_at),
          status: 'running',
          assigned_worker: worker,
          lease_until: leaseUntil,
          lease_s: leaseS,
          attempt: n(row.attempt),
          max_attempts: n(row.max_attempts),
          priority: n(row.priority)
        }
        const size = Buffer.byteLength(JSON.stringify(task)) + (out.length > 0 ? 1 : 0)
        // The first task always goes out: refusing it would leave it unclaimable forever.
        if (out.length > 0 && (giveBack.length > 0 || bytes + size > maxBytes)) {
          giveBack.push(n(row.seq))
          continue
        }
        bytes += size
        out.push(task)
      }
      if (giveBack.length > 0) {
        await db.query(`UPDATE tq_tasks SET status = 'queued', assigned_worker = NULL, attempt = attempt - 1,
          heartbeat_at = NULL, lease_until = NULL WHERE seq = ANY($1::bigint[])`, [giveBack])
      }
      for (const t of out) {
        changes.push({ task_id: t.task_id, status: 'running', task_type: t.task_type, kind: 'claimed', detail: { attempt: t.attempt, worker_id: worker } })
      }
      return out
    })
  }

  /**
   * Applies lease expiry (§7.2) when a lease is due; rows another coordinator is expiring
   * are skipped. Looked for at most once per EXPIRY_CHECK_S of the store's clock, not
   * before every claim (that read was a round trip per claim); the sweep, on every
   * coordinator, expires leases as well.
   */
  private async expireDue (now: number): Promise<void> {
    if (now >= this.lastExpiryCheck && now - this.lastExpiryCheck < EXPIRY_CHECK_S) return
    this.lastExpiryCheck = now
    const due = await this.read(async (db) => await db.query('SELECT 1 FROM tq_tasks WHERE status = \'running\' AND lease_until <= $1 LIMIT 1', [now]))
    if (due.rows.length === 0) return
    await this.tx(async (db, changes) => { await this.expireLeases(db, now, changes) })
  }

  private async expireLeases (db: Db, now: number, changes: TaskChange[]): Promise<SweepResult> {
    let requeued = 0
    let failed = 0
    const r = await db.query(`SELECT seq, task_id, task_type, attempt, max_attempts, error, assigned_worker, errors FROM tq_tasks
      WHERE status = 'running' AND lease_until <= $1 ORDER BY lease_until LIMIT 1000 FOR UPDATE SKIP LOCKED`, [now])
    for (const row of r.rows as Row[]) {
      const holder = ns(row.assigned_worker)
      if (holder !== null) this.registry.forgetWorker(holder)
      const attempt = n(row.attempt)
      const maxAttempts = n(row.max_attempts)
      const errors = appendTaskError(ns(row.errors), { attempt, at: now, error: 'lease expired', worker_id: holder })
      const detail = { attempt, worker_id: holder, reason: 'lease_expired' }
      if (maxAttempts === 0 || attempt < maxAttempts) {
        await db.query(`UPDATE tq_tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
          next_attempt_at = $1, updated_at = $1, errors = $2 WHERE seq = $3`, [now, errors, row.seq])
        changes.push({ task_id: s(row.task_id), status: 'queued', task_type: s(row.task_type), kind: 'released', detail })
        requeued++
      } else {
        const error = appendError(ns(row.error), LEASE_EXPIRED_ERROR)
        await db.query(`UPDATE tq_tasks SET status = 'failed', lease_until = NULL, error = $1, updated_at = $2,
          expires_at = $2 + coalesce(keep_s, $3), errors = $4 WHERE seq = $5`, [error, now, this.keepFor('failed'), errors, row.seq])
        changes.push({ task_id: s(row.task_id), status: 'failed', task_type: s(row.task_type), kind: 'failed', detail: { ...detail, error } })
        failed++
      }
    }
    this.leaseExpiries += requeued + failed
    return { requeued, failed }
  }

  async sweep (): Promise<SweepResult> {
    const now = this.now()
    const res = await this.tx(async (db, changes) => {
      const res = await this.expireLeases(db, now, changes)
      const r = await db.query(`SELECT seq, task_id, task_type, error FROM tq_tasks
        WHERE status = 'queued' AND max_attempts > 0 AND attempt >= max_attempts FOR UPDATE SKIP LOCKED`)
      for (const row of r.rows as Row[]) {
        const error = appendError(ns(row.error), ATTEMPTS_EXHAUSTED_ERROR)
        await db.query(`UPDATE tq_tasks SET status = 'failed', lease_until = NULL, error = $1, updated_at = $2,
          expires_at = $2 + coalesce(keep_s, $3) WHERE seq = $4`, [error, now, this.keepFor('failed'), row.seq])
        changes.push({ task_id: s(row.task_id), status: 'failed', task_type: s(row.task_type), kind: 'failed', detail: { error } })
        res.failed++
      }
      return res
    })
    await this.refreshDelayedHint()
    return res
  }

  // ---- complete / release / heartbeat / cancel ----------------------------------------

  private keepFor (status: TaskStatus): number | null {
    return retentionOf(this.retention, status)
  }

  /** The usual complete joins the group commit (group-commit.ts); the rest runs alone. */
  async complete (input: CompleteInput): Promise<CompleteResult> {
    return simpleComplete(input) ? await this.group.complete(input) : await this.completeAlone(input, false)
  }

  /** A complete in a transaction of its own; `oneStatement`: try the usual case's single UPDATE first. */
  private async completeAlone (input: CompleteInput, oneStatement: boolean): Promise<CompleteResult> {
    const now = this.now()
    const id = input.task_id
    return await this.tx(async (db, changes) => {
      if (oneStatement && simpleComplete(input)) {
        // The usual case in one statement: a running task owned by the caller (or nobody), no stored result.
        const r = await db.query(`UPDATE tq_tasks SET status = $1, result = $2, error = CASE WHEN $3 = '' THEN error ELSE $3 END,
          lease_until = NULL, updated_at = $4, expires_at = $4 + coalesce(keep_s, $7)
          WHERE task_id = $5 AND status = 'running' AND result IS NULL
            AND ($6 = '' OR assigned_worker IS NULL OR assigned_worker = $6) RETURNING task_type`,
        [input.status, input.result === null ? null : JSON.stringify(input.result), input.error, now, id, input.worker_id, this.keepFor(input.status)])
        if (r.rows.length === 1) {
          const change: TaskChange = { task_id: id, status: input.status, task_type: s((r.rows[0] as Row).task_type), kind: input.status }
          if (this.watchesTask?.(id) === true) {
            const task = await this.getIn(db, id)
            if (task !== null) change.task = task
          }
          changes.push(change)
          return { task_id: id, replayed: false }
        }
      }
      const row = await this.guardRow(db, id)
      const guard = completeGuard(id, input, ns(row.assigned_worker), s(row.status), () => lastFailureBy(row.errors, n(row.attempt), input.worker_id))
      if (guard === 'replayed') return { task_id: id, replayed: true }
      if (guard === 'cancel') {
        await this.cancelIn(db, id, row, input.error, now, changes)
        return { task_id: id, replayed: false, cancelled: true }
      }
      const stored = parseJson(ns(row.result))
      let result = stored
      if (input.result !== null) result = isObject(stored) ? { ...stored, ...input.result } : input.result
      const error = input.error !== '' ? input.error : ns(row.error)
      const resultText = result === null ? null : JSON.stringify(result)
      if (input.status !== 'failed') {
        await db.query(`UPDATE tq_tasks SET status = $1, result = $2, error = $3, lease_until = NULL, updated_at = $4,
          expires_at = $4 + coalesce(keep_s, $5) WHERE seq = $6`, [input.status, resultText, error, now, this.keepFor(input.status), row.seq])
        changes.push({ task_id: id, status: input.status, task_type: s(row.task_type), kind: input.status })
        return { task_id: id, replayed: false }
      }
      return await this.failAttempt(db, id, row, input, error, resultText, now, changes)
    })
  }

  private async failAttempt (db: Db, id: string, row: Row, input: CompleteInput, error: string | null, resultText: string | null, now: number, changes: TaskChange[]): Promise<CompleteResult> {
    const attempt = n(row.attempt)
    const maxAttempts = n(row.max_attempts)
    const worker = input.worker_id !== '' ? input.worker_id : ns(row.assigned_worker)
    const errors = appendTaskError(ns(row.errors), { attempt, at: now, error: error ?? '', worker_id: worker })
    const detail: JsonObject = { attempt, worker_id: worker, error }
    if (input.retry === true && (maxAttempts === 0 || attempt < maxAttempts)) {
      const stored = parseJson(ns(row.backoff))
      const backoff = isObject(stored) ? stored as unknown as Backoff : this.retry.backoff
      const retryAt = now + retryDelayS(backoff, attempt, this.retry.maxDelayS)
      await db.query(`UPDATE tq_tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
        next_attempt_at = $1, error = $2, errors = $3, result = coalesce($4, result), updated_at = $5 WHERE seq = $6`,
      [retryAt, error, errors, input.result === null ? null : resultText, now, row.seq])
      this.noteDelayed(retryAt)
      changes.push({ task_id: id, status: 'queued', task_type: s(row.task_type), kind: 'retried', next_attempt_at: retryAt, detail: { ...detail, next_attempt_at: retryAt } })
      return { task_id: id, replayed: false, retry_at: retryAt }
    }
    await db.query(`UPDATE tq_tasks SET status = 'failed', result = $1, error = $2, lease_until = NULL, updated_at = $3,
      expires_at = $3 + coalesce(keep_s, $4), errors = $5 WHERE seq = $6`, [resultText, error, now, this.keepFor('failed'), errors, row.seq])
    changes.push({ task_id: id, status: 'failed', task_type: s(row.task_type), kind: 'failed', detail })
    return { task_id: id, replayed: false }
  }

  async release (input: ReleaseInput): Promise<{ task_id: string }> {
    const now = this.now()
    const id = input.task_id
    return await this.tx(async (db, changes) => {
      const row = await this.ownedRunning(db, id, input.worker_id)
      const prev = resultObject(parseJson(ns(row.result))).progress
      const count = isObject(prev) && typeof prev.release_count === 'number' ? prev.release_count : 0
      const result = withProgress(parseJson(ns(row.result)), { release_count: count + 1, last_release_reason: input.reason, last_release_ts: now })
      const delay = Number.isFinite(input.delay_s) ? Math.max(0, input.delay_s) : 0
      await db.query(`UPDATE tq_tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
        next_attempt_at = $1, attempt = greatest(attempt - 1, 0), result = $2, updated_at = $3 WHERE seq = $4`,
      [now + delay, JSON.stringify(result), now, row.seq])
      if (input.reason === WORKER_SHUTDOWN) this.registry.forgetWorker(input.worker_id)
      if (delay > 0) this.noteDelayed(now + delay)
      changes.push({
        task_id: id, status: 'queued', task_type: s(row.task_type), kind: 'released', next_attempt_at: now + delay,
        detail: { worker_id: input.worker_id, reason: input.reason }
      })
      return { task_id: id }
    })
  }

  async heartbeatTask (input: TaskHeartbeatInput): Promise<TaskHeartbeatResult> {
    const now = this.now()
    const id = input.task_id
    const leaseUntil = now + (input.lease_s > 0 ? input.lease_s : this.leaseS)
    const progress = input.progress !== null && isObject(input.progress) ? input.progress : null
    if (progress === null && id !== '' && input.worker_id !== '') {
      // The usual heartbeat (no progress, nothing for the event log): one statement, its
      // own transaction, one round trip. A task it does not match takes the guarded path
      // below, which says why (or renews it, had it changed in between).
      const r = await this.read(async (db) => await db.query(`UPDATE tq_tasks SET lease_until = $1, heartbeat_at = $2, updated_at = $2
        WHERE task_id = $3 AND status = 'running' AND assigned_worker = $4`, [leaseUntil, now, id, input.worker_id]))
      if (r.rowCount === 1) return { task_id: id, lease_until: leaseUntil, heartbeat_at: now }
    }
    return await this.tx(async (db, changes) => {
      const row = await this.ownedRunning(db, id, input.worker_id)
      const result = progress !== null ? JSON.stringify(withProgress(parseJson(ns(row.result)), progress)) : ns(row.result)
      await db.query('UPDATE tq_tasks SET lease_until = $1, heartbeat_at = $2, result = $3, updated_at = $2 WHERE seq = $4', [leaseUntil, now, result, row.seq])
      if (progress !== null) changes.push({ task_id: id, status: 'running', task_type: s(row.task_type), kind: 'progress', detail: { progress } })
      return { task_id: id, lease_until: leaseUntil, heartbeat_at: now }
    })
  }

  async cancel (taskId: string, reason: string = ''): Promise<{ cancelled: boolean }> {
    const now = this.now()
    return await this.tx(async (db, changes) => {
      const row = taskId === '' ? undefined : (await db.query(`${GUARD} FOR UPDATE`, [taskId])).rows[0] as Row | undefined
      if (row === undefined || s(row.status) !== 'queued') return { cancelled: false }
      await this.cancelIn(db, taskId, row, reason, now, changes)
      return { cancelled: true }
    })
  }

  private async cancelIn (db: Db, id: string, row: Row, reason: string, now: number, changes: TaskChange[]): Promise<void> {
    const patch: JsonObject = { cancelled_at: now }
    if (reason !== '') patch.cancel_reason = reason
    await db.query(`UPDATE tq_tasks SET status = 'cancelled', assigned_worker = NULL, lease_until = NULL,
      result = $1, updated_at = $2, expires_at = $2 + coalesce(keep_s, $3) WHERE seq = $4 AND status = 'queued'`,
    [JSON.stringify(withProgress(parseJson(ns(row.result)), patch)), now, this.keepFor('cancelled'), row.seq])
    changes.push({ task_id: id, status: 'cancelled', task_type: s(row.task_type), kind: 'cancelled', detail: reason === '' ? undefined : { reason } })
  }

  /** The task's row, locked for this transaction. */
  private async guardRow (db: Db, id: string): Promise<Row> {
    const row = id === '' ? undefined : (await db.query(`${GUARD} FOR UPDATE`, [id])).rows[0] as Row | undefined
    if (row === undefined) throw new TaskQueueError('task_not_found', `task ${id} not found`)
    return row
  }

  private async ownedRunning (db: Db, id: string, worker: string): Promise<Row> {
    const row = await this.guardRow(db, id)
    assertOwnedRunning(id, ns(row.assigned_worker), s(row.status), worker)
    return row
  }

  // ---- reads --------------------------------------------------------------------------

  private async getIn (db: Db, taskId: string): Promise<Task | null> {
    const r = await db.query(`${TASK_SELECT} WHERE task_id = $1`, [taskId])
    const row = r.rows[0] as Row | undefined
    return row === undefined ? null : pgTask(row)
  }

  async get (taskId: string): Promise<Task | null> {
    if (taskId === '') return null
    return await this.read(async (db) => await this.getIn(db, taskId))
  }

  async delete (taskId: string): Promise<boolean> {
    return await this.tx(async (db, changes) => {
      const r = await db.query('DELETE FROM tq_tasks WHERE task_id = $1 RETURNING status, task_type', [taskId])
      const row = r.rows[0] as Row | undefined
      if (row === undefined) return false
      changes.push({ task_id: taskId, status: s(row.status) as TaskStatus, task_type: s(row.task_type), kind: 'pruned', detail: { reason: 'deleted' } })
      return true
    })
  }

  async list (input: ListInput): Promise<ListResult> {
    return await this.read(async (db) => await this.admin.list(db, input))
  }

  async counts (): Promise<QueueCounts> {
    return await this.read(async (db) => await this.admin.counts(db))
  }

  async statusTypeCounts (): Promise<StatusTypeCount[]> {
    return await this.read(async (db) => await this.admin.countsByStatusAndType(db))
  }

  async oldestQueuedAgeS (): Promise<number> {
    const now = this.now()
    const r = await this.read(async (db) => await db.query('SELECT min(created_at) AS t FROM tq_tasks WHERE status = \'queued\' AND next_attempt_at <= $1', [now]))
    const t = (r.rows[0] as Row | undefined)?.t
    return typeof t === 'number' ? Math.max(0, now - t) : 0
  }

  nextLeaseExpiryAt (): number | null {
    return null
  }

  // ---- operating the queue ------------------------------------------------------------

  async retryTasks (input: RetryInput): Promise<RetryResult> {
    return await this.tx(async (db, changes) => await this.admin.retry(db, input, this.now(), changes))
  }

  async purge (input: PurgeInput): Promise<number> {
    return await this.tx(async (db, changes) => await this.admin.purge(db, input, changes))
  }

  async pause (types: readonly string[] | null): Promise<PausedState> {
    return await this.tx(async (db) => await this.admin.pause(db, types, this.now()))
  }

  async resume (types: readonly string[] | null): Promise<PausedState> {
    // The notification wakes the parked claimers of every coordinator.
    const out = await this.tx(async (db) => await this.admin.resume(db, types), true)
    this.emit('resumed')
    return out
  }

  async paused (): Promise<PausedState> {
    return await this.read(async (db) => await this.admin.paused(db))
  }

  async prune (batch = 500): Promise<PruneResult> {
    const now = this.now()
    const watched = this.watchesTask
    const out = await this.tx(async (db, changes) => await this.admin.prune(db, now, batch, (id) => watched?.(id) === true, changes))
    // ★ The per-submitter totals' rows are merged now and then (retention runs every second).
    if (now - this.usageFoldedAt >= USAGE_FOLD_EVERY_S) {
      this.usageFoldedAt = now
      await foldSubmitterUsage(this.pool).catch((err: unknown) => { throw storeError(err) })
    }
    return out
  }

  async prunedTotal (): Promise<number> {
    return await this.read(async (db) => await this.admin.prunedTotal(db))
  }

  // ---- wake-up hints --------------------------------------------------------------------

  nextEligibleAt (): number | null {
    const h = this.delayedHint
    if (h !== null && h <= this.now()) {
      // Due: what comes after it is read again in the background.
      this.delayedHint = null
      this.refreshDelayedHint().catch(() => {})
      return null
    }
    return h
  }

  private noteDelayed (at: number): void {
    if (at <= this.now()) return
    this.delayedHint = this.delayedHint === null ? at : Math.min(this.delayedHint, at)
  }

  private async refreshDelayedHint (): Promise<void> {
    const r = await this.read(async (db) => await db.query(`SELECT min(next_attempt_at) AS t FROM tq_tasks
      WHERE status = 'queued' AND next_attempt_at > created_at AND next_attempt_at > $1`, [this.now()]))
    const t = (r.rows[0] as Row | undefined)?.t
    this.delayedHint = typeof t === 'number' ? t : null
  }

  dataVersion (): number {
    return this.foreignVersion
  }

  touchPeer (t: PeerTouch): PeerEntry {
    return this.registry.touch({ ...t, last_seen: t.last_seen ?? this.now() })
  }
}

/** What a claim may take (claim order is applied by the caller's ORDER BY). $1 now, $2 worker, $3 session, $4 types. */
const ELIGIBLE = `status = 'queued' AND next_attempt_at <= $1
  AND (max_attempts = 0 OR attempt < max_attempts)
  AND (sticky_worker = '' OR sticky_worker = $2)
  AND (req_session = '' OR req_session = $3)
  AND ($4::text[] IS NULL OR type_norm = ANY($4))
  AND NOT EXISTS (SELECT 1 FROM tq_pauses p WHERE p.type_norm = t.type_norm OR p.type_norm = '*')`

const GUARD = `SELECT seq, status, assigned_worker, task_type, result, error, attempt, max_attempts, errors, backoff
  FROM tq_tasks WHERE task_id = $1`
