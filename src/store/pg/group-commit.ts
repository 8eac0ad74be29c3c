/**
 * Group commit on PostgreSQL: the submits and completes that reach one store together
 * (a `submit_many` or `complete_many`, which call the store once per item in one tick,
 * and the requests of many clients arriving at once) run as ONE transaction of two
 * round trips, whatever their number:
 *
 *   1. `BEGIN; INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING RETURNING …;
 *       UPDATE tq_tasks … FROM (VALUES (…), (…)) … RETURNING …` — one simple query,
 *       values written as escaped literals (sql-text.ts);
 *   2. the event-log rows under the events lock, `pg_notify` and `COMMIT` (the store's
 *      `commitSql`, as for every write).
 *
 * Each caller still gets its own result or error, and only after the COMMIT, so an
 * acknowledged write is as durable as with a transaction of its own. What the two
 * statements cannot settle for an item runs after the COMMIT on its own path: a submit
 * whose idempotency key already names a task is answered from one read of those keys
 * (replayed, or `idempotency_conflict`); a complete the one-statement UPDATE did not
 * match (not running, another worker's, a result stored by a heartbeat, a failure or a
 * retry) takes the store's full path in its own transaction. When the first query fails
 * (an item the database refuses, a deadlock), nothing was applied and every item runs
 * on its own, so one bad item fails alone. When the COMMIT's query fails, the outcome
 * is unknown to us and every item of the group gets that error (retryable `busy` for a
 * lost connection), as a lone write would.
 *
 * Why only these two: they are most of a busy queue's writes and each is one row
 * statement that sets from the request alone; the other writes (claim, heartbeat,
 * release, cancel, sweeps) read their row first and keep their own transaction.
 *
 * The event-log lock (schema.ts EVENTS_LOCK) makes every coordinator's write
 * transactions end one at a time; a group ends once for all its items, so the lock and
 * the WAL flush are paid per group instead of per item.
 */
import type pg from 'pg'
import { TaskQueueError } from '../../protocol/errors.js'
import { normalizeTaskType } from '../aliases.js'
import { canonicalJson, clampInt, extractAffinity, isObject, newTaskId, parseJson } from '../queue-util.js'
import type { JsonObject, TaskStatus } from '../../protocol/types.js'
import type { CompleteInput, CompleteResult, SubmitInput, SubmitResult, TaskChange } from '../types.js'
import { TASK_COLS, pgTask } from './admin.js'
import { lastResult, sqlLiteral } from './sql-text.js'
import { storeError } from './store-error.js'
import { NO_SUBMITTER_LIMITS, type SubmitterLimits, limitsOn } from '../submitter-usage.js'

type Row = Record<string, unknown>

function s (v: unknown): string { return typeof v === 'string' ? v : v == null ? '' : String(v) }

/** At most this many items per group (one statement each for submits and completes). */
const MAX_GROUP = 1024
/**
 * Groups running at once per store. Two: the next group's statements run while the
 * previous one waits for its COMMIT (the events lock and the WAL flush), and a lone
 * write never waits behind more than one group.
 */
const MAX_IN_FLIGHT = 2

// ---- submit ---------------------------------------------------------------------------

/** The columns a submit writes, with the type each literal is cast to. */
const SUBMIT_COLUMNS: ReadonlyArray<[string, string]> = [
  ['task_id', 'text'], ['task_type', 'text'], ['type_norm', 'text'], ['model_name', 'text'], ['payload', 'text'],
  ['status', 'text'], ['created_at', 'float8'], ['updated_at', 'float8'], ['priority', 'int'], ['attempt', 'int'],
  ['max_attempts', 'int'], ['next_attempt_at', 'float8'], ['idempotency_key', 'text'], ['req_session', 'text'],
  ['sticky_worker', 'text'], ['backoff', 'text'], ['keep_s', 'float8'], ['submitter', 'text'], ['payload_bytes', 'bigint']
]

/** One submit, decided before it is written: its new row (as SQL text) and its change. */
export interface SubmitRow {
  input: SubmitInput
  task_id: string
  key: string | null
  payload: JsonObject
  /** ★ The remote peer that submitted it (null: local, exempt from per-peer bounds) and its payload's bytes. */
  submitter: string | null
  payloadBytes: number
  /** SUBMIT_COLUMNS' literals, comma-separated. */
  literals: string
  change: TaskChange
  /** The task's next_attempt_at when it is delayed (the store's wake-up hint), else null. */
  delayedUntil: number | null
}

/** Builds the row of a submit at `now` (throws, before anything is sent, for text PostgreSQL cannot store). */
export function submitRow (input: SubmitInput, now: number): SubmitRow {
  const payload: JsonObject = isObject(input.payload) ? input.payload : {}
  const key = input.idempotency_key !== null && input.idempotency_key !== '' ? input.idempotency_key : null
  const { session, sticky } = extractAffinity(payload)
  const nextAttemptAt = Number.isFinite(input.next_attempt_at) ? Math.max(0, input.next_attempt_at) : 0
  const taskId = newTaskId()
  const payloadText = JSON.stringify(payload)
  const submitter = input.submitter ?? null
  const payloadBytes = Buffer.byteLength(payloadText)
  const cells: unknown[] = [
    taskId, input.task_type, normalizeTaskType(input.task_type), input.model_name, payloadText, 'queued', now, now,
    clampInt(input.priority, 1, 10, 5), 0, clampInt(input.max_attempts, 0, 1000, 3), nextAttemptAt, key, session, sticky,
    input.backoff == null ? null : JSON.stringify(input.backoff), input.keep_s ?? null, submitter, submitter === null ? null : payloadBytes
  ]
  const literals = cells.map((v, i) => `${sqlLiteral(v)}::${SUBMIT_COLUMNS[i][1]}`).join(', ')
  const delayed = nextAttemptAt > now
  return {
    input,
    task_id: taskId,
    key,
    payload,
    submitter,
    payloadBytes,
    literals,
    change: {
      task_id: taskId, status: 'queued', task_type: input.task_type, kind: 'submitted', next_attempt_at: nextAttemptAt,
      detail: delayed ? { next_attempt_at: nextAttemptAt } : undefined
    },
    delayedUntil: delayed ? nextAttemptAt : null
  }
}

/** One INSERT of `rows` in order (seq order = submit order); a row whose key is taken is skipped. */
export function insertSql (rows: readonly SubmitRow[], limits: SubmitterLimits = NO_SUBMITTER_LIMITS): string {
  const cols = SUBMIT_COLUMNS.map(([c]) => c).join(', ')
  const conflict = 'ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING task_id'
  if (!limitsOn(limits) || rows.every((r) => r.submitter === null)) {
    return `INSERT INTO tq_tasks (${cols}) VALUES ${rows.map((r) => `(${r.literals})`).join(',\n')} ${conflict}`
  }
  // ★ Per-submitter bounds in the statement itself: a row goes in only while its
  // submitter's committed totals plus its own and the earlier rows of the group stay
  // within PEER_MAX_TASKS / PEER_MAX_TASK_BYTES (the totals as the statement reads them,
  // like the lone path's read). A row left out is answered after the COMMIT: a taken key
  // replays (a replay passes at the bound), anything else takes the lone path, which
  // refuses it with the typed rate_limited (or admits it, had room appeared).
  const within = [
    limits.maxTasks > 0 ? `coalesce(u.tasks, 0) + w.k <= ${limits.maxTasks}` : 'TRUE',
    limits.maxBytes > 0 ? `coalesce(u.bytes, 0) + w.kb <= ${limits.maxBytes}` : 'TRUE'
  ].join(' AND ')
  return `WITH v (${cols}, i) AS (VALUES ${rows.map((r, i) => `(${r.literals}, ${i})`).join(',\n')}),
    u AS (SELECT submitter, sum(tasks) AS tasks, sum(bytes) AS bytes FROM tq_submitter_usage
      WHERE submitter IN (SELECT submitter FROM v WHERE submitter IS NOT NULL) GROUP BY submitter),
    w AS (SELECT v.*, count(*) OVER s AS k, sum(payload_bytes) OVER s AS kb FROM v WINDOW s AS (PARTITION BY submitter ORDER BY i))
    INSERT INTO tq_tasks (${cols}) SELECT ${SUBMIT_COLUMNS.map(([c]) => `w.${c}`).join(', ')} FROM w LEFT JOIN u ON u.submitter = w.submitter
      WHERE w.submitter IS NULL OR (${within}) ORDER BY w.i
    ${conflict}`
}

/** Reads what each of `keys` names (for submits whose key was taken). */
export const KEYED_SQL = 'SELECT task_id, task_type, model_name, payload, idempotency_key FROM tq_tasks WHERE idempotency_key = ANY($1::text[])'

/** The answer to a submit whose idempotency key names `prev`: the same work replays, other work is refused. */
export function replayOf (row: SubmitRow, prev: Row): SubmitResult {
  const same = s(prev.task_type) === row.input.task_type && s(prev.model_name) === row.input.model_name &&
    canonicalJson(parseJson(s(prev.payload))) === canonicalJson(row.payload)
  if (same) return { task_id: s(prev.task_id), replayed: true }
  throw new TaskQueueError('idempotency_conflict', `idempotency_key already names task ${s(prev.task_id)} with different work`)
}

// ---- complete -------------------------------------------------------------------------

/** Whether a complete may take the one-statement path (the store's usual case). */
export function simpleComplete (input: CompleteInput): boolean {
  return input.task_id !== '' && input.status !== 'failed'
}

/**
 * One UPDATE completing every item of `rows` whose task is running, owned by its worker
 * (or nobody) and has no stored result — the store's one-statement case — returning
 * each completed item's index `i` and, with `full`, the whole row (a watched task).
 */
function completeSql (rows: readonly string[], now: number, full: boolean): string {
  const cols = full ? TASK_COLS.split(',').map((c) => `t.${c.trim()}`).join(', ') : 't.task_type'
  const at = sqlLiteral(now)
  return `UPDATE tq_tasks t SET status = v.status, result = v.result, error = CASE WHEN v.error = '' THEN t.error ELSE v.error END,
      lease_until = NULL, updated_at = ${at}::float8, expires_at = ${at}::float8 + coalesce(t.keep_s, v.keep)
    FROM (VALUES ${rows.join(',\n')}) AS v(i, task_id, status, result, error, worker, keep)
    WHERE t.task_id = v.task_id AND t.status = 'running' AND t.result IS NULL
      AND (v.worker = '' OR t.assigned_worker IS NULL OR t.assigned_worker = v.worker)
    RETURNING v.i, ${cols}`
}

function completeValues (i: number, input: CompleteInput, keep: number | null): string {
  const result = input.result === null ? null : JSON.stringify(input.result)
  return `(${i}, ${sqlLiteral(input.task_id)}::text, ${sqlLiteral(input.status)}::text, ${sqlLiteral(result)}::text, ` +
    `${sqlLiteral(input.error)}::text, ${sqlLiteral(input.worker_id)}::text, ${sqlLiteral(keep)}::float8)`
}

// ---- the group ------------------------------------------------------------------------

/** What the group needs of its store (pg/queue.ts). */
export interface GroupHost {
  readonly pool: pg.Pool
  now: () => number
  /** Seconds a task finished with `status` is kept (retention), or null. */
  keepFor: (status: TaskStatus) => number | null
  /** Whether somebody waits on this task (its change then carries the committed row). */
  watches: (taskId: string) => boolean
  /** The query that appends the event log, notifies and commits. */
  commitSql: (changes: readonly TaskChange[]) => string
  /** After the COMMIT: tells the store's listeners, timing and wake-up hints. */
  committed: (changes: readonly TaskChange[], seconds: number, delayedUntil: readonly number[]) => void
  /** ★ What one remote submitter may keep unfinished (checked inside the group's INSERT). */
  readonly submitterLimits: SubmitterLimits
  /** The lone paths, each its own transaction. */
  submitAlone: (input: SubmitInput) => Promise<SubmitResult>
  completeAlone: (input: CompleteInput) => Promise<CompleteResult>
}

interface Waiter<T> { resolve: (v: T) => void, reject: (err: unknown) => void }
type Pending =
  | { kind: 'submit', input: SubmitInput, w: Waiter<SubmitResult> }
  | { kind: 'complete', input: CompleteInput, w: Waiter<CompleteResult> }

export class PgGroupCommit {
  /** Groups committed and items in them (status detail, tests). */
  readonly counters = { groups: 0, items: 0 }
  private pending: Pending[] = []
  private scheduled = false
  private inFlight = 0

  constructor (private readonly host: GroupHost) {}

  async submit (input: SubmitInput): Promise<SubmitResult> {
    return await new Promise((resolve, reject) => { this.enqueue({ kind: 'submit', input, w: { resolve, reject } }) })
  }

  /** A complete of the one-statement kind (`simpleComplete`); others go straight to the store's full path. */
  async complete (input: CompleteInput): Promise<CompleteResult> {
    return await new Promise((resolve, reject) => { this.enqueue({ kind: 'complete', input, w: { resolve, reject } }) })
  }

  private enqueue (p: Pending): void {
    this.pending.push(p)
    this.schedule()
  }

  /** A group is cut after the I/O of this loop iteration: what arrived together goes together. */
  private schedule (): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT || this.pending.length === 0) return
    this.scheduled = true
    setImmediate(this.flush)
  }

  private readonly flush = (): void => {
    this.scheduled = false
    const group = this.pending.splice(0, MAX_GROUP)
    if (group.length === 0) return
    this.inFlight++
    this.run(group).catch((err: unknown) => {
      // run settles every item itself; this is a bug's last resort.
      for (const p of group) p.w.reject(err)
    }).finally(() => {
      this.inFlight--
      this.schedule()
    })
  }

  private alone (p: Pending): void {
    if (p.kind === 'submit') this.host.submitAlone(p.input).then(p.w.resolve, p.w.reject)
    else this.host.completeAlone(p.input).then(p.w.resolve, p.w.reject)
  }

  private async run (group: Pending[]): Promise<void> {
    const now = this.host.now()
    const submits: Array<{ p: Pending & { kind: 'submit' }, row: SubmitRow }> = []
    const completes: Array<{ p: Pending & { kind: 'complete' }, values: string }> = []
    const later: Pending[] = []
    const completing = new Set<string>()
    for (const p of group) {
      try {
        if (p.kind === 'submit') {
          submits.push({ p, row: submitRow(p.input, now) })
        } else if (completing.has(p.input.task_id)) {
          later.push(p) // the same task twice: the second sees the first's outcome
        } else {
          completing.add(p.input.task_id)
          completes.push({ p, values: completeValues(completes.length, p.input, this.host.keepFor(p.input.status)) })
        }
      } catch (err) {
        p.w.reject(storeError(err))
      }
    }
    if (submits.length === 0 && completes.length === 0) {
      for (const p of later) this.alone(p)
      return
    }
    let c: pg.PoolClient
    try {
      c = await this.host.pool.connect()
    } catch (err) {
      for (const p of group) p.w.reject(storeError(err))
      return
    }
    const started = performance.now()
    const watched = completes.some(({ p }) => this.host.watches(p.input.task_id))
    const statements = ['BEGIN']
    if (submits.length > 0) statements.push(insertSql(submits.map((x) => x.row), this.host.submitterLimits))
    if (completes.length > 0) statements.push(completeSql(completes.map((x) => x.values), now, watched))
    let results: pg.QueryResult[]
    try {
      const r = await c.query(statements.join(';\n')) as pg.QueryResult | pg.QueryResult[]
      results = Array.isArray(r) ? r : [r]
    } catch {
      // Nothing was applied: every item on its own, so a bad one fails alone.
      const rolledBack = await c.query('ROLLBACK').then(() => true, () => false)
      c.release(rolledBack ? undefined : true)
      for (const { p } of submits) this.alone(p)
      for (const { p } of completes) this.alone(p)
      for (const p of later) this.alone(p)
      return
    }
    const changes: TaskChange[] = []
    const delayed: number[] = []
    const done: Array<() => void> = []
    const keyed: SubmitRow[] = []
    const keyedWaiters: Array<Waiter<SubmitResult>> = []
    if (submits.length > 0) {
      const inserted = new Set((results[1].rows as Row[]).map((r) => s(r.task_id)))
      for (const { p, row } of submits) {
        if (inserted.has(row.task_id)) {
          changes.push(row.change)
          if (row.delayedUntil !== null) delayed.push(row.delayedUntil)
          done.push(() => { p.w.resolve({ task_id: row.task_id, replayed: false }) })
        } else if (row.key !== null) {
          keyed.push(row)
          keyedWaiters.push(p.w)
        } else {
          later.push(p)
        }
      }
    }
    if (completes.length > 0) {
      const updated = new Map<number, Row>()
      for (const r of lastResult(results).rows as Row[]) updated.set(Number(r.i), r)
      for (const [i, { p }] of completes.entries()) {
        const r = updated.get(i)
        if (r === undefined) {
          later.push(p)
          continue
        }
        const id = p.input.task_id
        const change: TaskChange = { task_id: id, status: p.input.status, task_type: s(r.task_type), kind: p.input.status }
        if (watched && this.host.watches(id)) change.task = pgTask(r)
        changes.push(change)
        done.push(() => { p.w.resolve({ task_id: id, replayed: false }) })
      }
    }
    try {
      await c.query(this.host.commitSql(changes))
    } catch (err) {
      // Whether it committed is unknown: every item gets the error, as a lone write would.
      const rolledBack = await c.query('ROLLBACK').then(() => true, () => false)
      c.release(rolledBack ? undefined : true)
      for (const { p } of submits) p.w.reject(storeError(err))
      for (const { p } of completes) p.w.reject(storeError(err))
      for (const p of later) this.alone(p)
      return
    }
    c.release()
    this.counters.groups++
    this.counters.items += changes.length
    this.host.committed(changes, (performance.now() - started) / 1000, delayed)
    for (const f of done) f()
    if (keyed.length > 0) await this.replay(keyed, keyedWaiters)
    for (const p of later) this.alone(p)
  }

  /** Submits whose key was taken: one read of those keys answers them all (the rows are committed). */
  private async replay (rows: SubmitRow[], waiters: Array<Waiter<SubmitResult>>): Promise<void> {
    let prev: Map<string, Row>
    try {
      const r = await this.host.pool.query(KEYED_SQL, [rows.map((x) => x.key)])
      prev = new Map((r.rows as Row[]).map((x) => [s(x.idempotency_key), x]))
    } catch (err) {
      for (const w of waiters) w.reject(storeError(err))
      return
    }
    rows.forEach((row, i) => {
      const found = prev.get(row.key ?? '')
      // Deleted in between: submit again on the lone path (which inserts or replays).
      if (found === undefined) this.host.submitAlone(row.input).then(waiters[i].resolve, waiters[i].reject)
      else {
        try { waiters[i].resolve(replayOf(row, found)) } catch (err) { waiters[i].reject(err) }
      }
    })
  }
}
