/**
 * PostgreSQL side of reads and of operating the queue (list, counts, ★ retry, purge,
 * pause/resume, retention) and the ★ event log: the same decisions as the SQLite
 * `QueueAdmin`, `TaskLister` and `EventLog`, in SQL PostgreSQL plans well. Work over
 * many rows locks what it changes with SKIP LOCKED, so coordinators running the same
 * batch at once split the rows instead of waiting on each other.
 */
import type pg from 'pg'
import { expandTaskTypes, normalizeTaskType } from '../aliases.js'
import { DEFAULT_MAX_REPLY_BYTES } from '../queue-sql.js'
import { clampInt, decodeCursor, isObject, parseJson } from '../queue-util.js'
import { listPage } from '../queue-list.js'
import { type EventPage, eventPage, taskEvent } from '../event-log.js'
import { requeuedChange, type PausedState, type PruneResult, type PurgeInput, type RetryInput, type RetryResult } from '../queue-admin.js'
import type { RetentionPolicy } from '../retry-policy.js'
import type { TaskEventLog } from '../task-store.js'
import type { Backoff, Task, TaskError, TaskStatus } from '../../protocol/types.js'
import type { ListInput, ListResult, QueueCounts, TaskChange } from '../types.js'
import { sqlLiteral } from './sql-text.js'

/** A pool (autocommit reads) or a connection inside a transaction (pg/sql-text.ts OpeningTransaction). */
export interface Db { query: <R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<pg.QueryResult<R>> }
type Row = Record<string, unknown>

export const TASK_COLS = `seq, task_id, task_type, model_name, payload, status, assigned_worker, created_at, updated_at, result, error,
  priority, attempt, max_attempts, next_attempt_at, lease_until, heartbeat_at, idempotency_key, errors, backoff, keep_s`
export const TASK_SELECT = `SELECT ${TASK_COLS} FROM tq_tasks`

function s (v: unknown): string { return typeof v === 'string' ? v : v == null ? '' : String(v) }
function ns (v: unknown): string | null { return v == null ? null : s(v) }
function n (v: unknown): number { return typeof v === 'number' ? v : Number(v ?? 0) }
function nn (v: unknown): number | null { return v == null ? null : n(v) }

export function pgTask (r: Row): Task {
  const payload = parseJson(ns(r.payload))
  return {
    task_id: s(r.task_id),
    task_type: s(r.task_type),
    model_name: s(r.model_name),
    payload: isObject(payload) ? payload : {},
    status: s(r.status) as TaskStatus,
    assigned_worker: ns(r.assigned_worker),
    created_at: n(r.created_at),
    updated_at: n(r.updated_at),
    result: parseJson(ns(r.result)),
    error: ns(r.error),
    priority: n(r.priority),
    attempt: n(r.attempt),
    max_attempts: n(r.max_attempts),
    next_attempt_at: n(r.next_attempt_at),
    lease_until: nn(r.lease_until),
    heartbeat_at: nn(r.heartbeat_at),
    idempotency_key: ns(r.idempotency_key),
    errors: r.errors == null ? [] : parseJson(s(r.errors)) as unknown as TaskError[],
    backoff: r.backoff == null ? null : parseJson(s(r.backoff)) as unknown as Backoff,
    keep_s: nn(r.keep_s)
  }
}

const PRUNED_KEY = 'pruned'
const TERMINAL = ['completed', 'failed', 'cancelled']

interface FinishedRow { seq: number, task_id: string, task_type: string, status: TaskStatus }
function finishedRow (r: Row): FinishedRow {
  return { seq: n(r.seq), task_id: s(r.task_id), task_type: s(r.task_type), status: s(r.status) as TaskStatus }
}

export class PgAdmin {
  constructor (private readonly retention: RetentionPolicy) {}

  async list (db: Db, input: ListInput): Promise<ListResult> {
    const cursor = input.cursor !== null && input.cursor !== '' ? decodeCursor(input.cursor) : null
    const desc = input.order === 'desc'
    const types = input.task_types === null ? [] : [...new Set(input.task_types.map(normalizeTaskType).filter(t => t !== ''))]
    const limit = clampInt(input.limit, 1, 100_000, 50)
    const maxBytes = input.max_bytes > 0 ? input.max_bytes : DEFAULT_MAX_REPLY_BYTES
    if (input.status !== null && !['queued', 'running', ...TERMINAL].includes(input.status)) return { tasks: [], next_cursor: null, truncated: false }
    const where: string[] = []
    const args: unknown[] = []
    if (input.status !== null) { args.push(input.status); where.push(`status = $${args.length}`) }
    if (types.length > 0) { args.push(types); where.push(`type_norm = ANY($${args.length})`) }
    if (cursor !== null) { args.push(cursor.seq); where.push(`seq ${desc ? '<' : '>'} $${args.length}`) }
    args.push(limit + 1)
    const r = await db.query(`${TASK_SELECT} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''}
      ORDER BY seq ${desc ? 'DESC' : 'ASC'} LIMIT $${args.length}`, args)
    return listPage(r.rows as Row[], pgTask, limit, maxBytes)
  }

  async counts (db: Db): Promise<QueueCounts> {
    const out: QueueCounts = { queued: 0, running: 0, queued_by_type: {}, running_by_type: {} }
    const r = await db.query(`SELECT status, task_type, count(*)::int AS n FROM tq_tasks
      WHERE status IN ('queued', 'running') GROUP BY status, task_type`)
    for (const row of r.rows as Row[]) {
      const k = n(row.n)
      if (row.status === 'queued') {
        out.queued_by_type[s(row.task_type)] = k
        out.queued += k
      } else {
        out.running_by_type[s(row.task_type)] = k
        out.running += k
      }
    }
    return out
  }

  async countsByStatusAndType (db: Db): Promise<Array<{ status: string, task_type: string, count: number }>> {
    const r = await db.query('SELECT status, task_type, count(*)::int AS n FROM tq_tasks GROUP BY status, task_type')
    return (r.rows as Row[]).map((row) => ({ status: s(row.status), task_type: s(row.task_type), count: n(row.n) }))
  }

  async retry (db: Db, input: RetryInput, now: number, changes: TaskChange[]): Promise<RetryResult> {
    const out: RetryResult = { task_ids: [], skipped: [] }
    const allowed = new Set<string>(input.statuses)
    const at = now + Math.max(0, input.delay_s)
    const requeue = async (row: FinishedRow): Promise<void> => {
      const r = await db.query(`UPDATE tq_tasks SET status = 'queued', attempt = 0, assigned_worker = NULL, lease_until = NULL,
        heartbeat_at = NULL, next_attempt_at = $1, error = NULL, result = NULL, expires_at = NULL, updated_at = $2
        WHERE seq = $3 AND (status = 'failed' OR status = 'cancelled')`, [at, now, row.seq])
      if (r.rowCount !== 1) return
      out.task_ids.push(row.task_id)
      changes.push(requeuedChange(row, at))
    }
    if (input.task_ids !== null) {
      for (const id of input.task_ids.slice(0, input.limit)) {
        const r = (await db.query('SELECT seq, task_id, task_type, status FROM tq_tasks WHERE task_id = $1 FOR UPDATE', [id])).rows[0] as Row | undefined
        if (r === undefined) {
          out.skipped.push({ task_id: id, status: 'not_found' })
          continue
        }
        const row = finishedRow(r)
        if (!allowed.has(row.status)) out.skipped.push({ task_id: id, status: row.status })
        else await requeue(row)
      }
      return out
    }
    for (const row of await this.select(db, input.statuses, input.task_types, input.since, input.until, input.limit)) await requeue(row)
    return out
  }

  async purge (db: Db, input: PurgeInput, changes: TaskChange[]): Promise<number> {
    const rows = await this.select(db, input.statuses, input.task_types, null, input.before, input.limit)
    return await this.remove(db, rows, 'purge', changes)
  }

  async prune (db: Db, now: number, batch: number, keep: (taskId: string) => boolean, changes: TaskChange[]): Promise<PruneResult> {
    const expired = (await db.query(`SELECT seq, task_id, task_type, status FROM tq_tasks
      WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`, [now, batch])).rows.map((r) => finishedRow(r as Row))
    let pruned = await this.remove(db, expired.filter((r) => !keep(r.task_id)), 'retention', changes)
    let more = expired.length >= batch
    const max = this.retention.maxFinished
    if (max > 0 && pruned < batch) {
      const c = await db.query('SELECT count(*)::int AS n FROM tq_tasks WHERE status <> \'queued\' AND status <> \'running\'')
      const excess = n((c.rows[0] as Row | undefined)?.n) - max
      if (excess > 0) {
        const k = Math.min(excess, batch - pruned)
        const oldest = (await db.query(`SELECT seq, task_id, task_type, status FROM tq_tasks
          WHERE status <> 'queued' AND status <> 'running' ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`, [k])).rows.map((r) => finishedRow(r as Row))
        pruned += await this.remove(db, oldest.filter((r) => !keep(r.task_id)), 'retention', changes)
        more ||= excess > k
      }
    }
    if (pruned > 0) {
      await db.query(`INSERT INTO tq_meta (key, value) VALUES ($1, $2)
        ON CONFLICT (key) DO UPDATE SET value = tq_meta.value + EXCLUDED.value`, [PRUNED_KEY, pruned])
    }
    return { pruned, more: more && pruned > 0 }
  }

  async prunedTotal (db: Db): Promise<number> {
    const r = await db.query('SELECT value FROM tq_meta WHERE key = $1', [PRUNED_KEY])
    return n((r.rows[0] as Row | undefined)?.value)
  }

  async pause (db: Db, types: readonly string[] | null, now: number): Promise<PausedState> {
    const list = types === null ? ['*'] : expandTaskTypes(types)
    await db.query(`INSERT INTO tq_pauses (type_norm, paused_at) SELECT unnest($1::text[]), $2
      ON CONFLICT (type_norm) DO NOTHING`, [list, now])
    return await this.paused(db)
  }

  async resume (db: Db, types: readonly string[] | null): Promise<PausedState> {
    if (types === null) await db.query('DELETE FROM tq_pauses')
    else await db.query('DELETE FROM tq_pauses WHERE type_norm = ANY($1)', [expandTaskTypes(types)])
    return await this.paused(db)
  }

  async paused (db: Db): Promise<PausedState> {
    const r = await db.query('SELECT type_norm FROM tq_pauses ORDER BY type_norm')
    const types = (r.rows as Row[]).map((row) => s(row.type_norm))
    return { all: types.includes('*'), task_types: types.filter(t => t !== '*') }
  }

  private async remove (db: Db, rows: FinishedRow[], reason: string, changes: TaskChange[]): Promise<number> {
    if (rows.length === 0) return 0
    const r = await db.query('DELETE FROM tq_tasks WHERE seq = ANY($1::bigint[]) AND status <> \'running\' RETURNING seq', [rows.map((x) => x.seq)])
    const gone = new Set((r.rows as Row[]).map((x) => n(x.seq)))
    for (const row of rows) {
      if (gone.has(row.seq)) changes.push({ task_id: row.task_id, status: row.status, task_type: row.task_type, kind: 'pruned', detail: { reason } })
    }
    return gone.size
  }

  private async select (db: Db, statuses: readonly string[], types: readonly string[] | null, since: number | null, until: number | null, limit: number): Promise<FinishedRow[]> {
    const r = await db.query(`SELECT seq, task_id, task_type, status FROM tq_tasks
      WHERE status = ANY($1::text[]) AND status <> 'running'
        AND ($2::text[] IS NULL OR type_norm = ANY($2)) AND ($3::float8 IS NULL OR updated_at >= $3)
        AND ($4::float8 IS NULL OR updated_at < $4)
      ORDER BY seq LIMIT $5 FOR UPDATE SKIP LOCKED`, [statuses, types === null ? null : [...types], since, until, limit])
    return (r.rows as Row[]).map(finishedRow)
  }
}

/**
 * The ★ event log in `tq_events`. Appends happen inside the write transaction under
 * EVENTS_LOCK (pg/queue.ts), so seq order is commit order even with several
 * coordinators, and a reader resuming after its cursor never skips an entry.
 */
export class PgEventLog implements TaskEventLog {
  readonly max: number

  constructor (private readonly pool: pg.Pool, max: number) {
    this.max = Math.max(0, Math.trunc(max))
  }

  get enabled (): boolean {
    return this.max > 0
  }

  /** The INSERT of `changes` as SQL text with escaped literals (it joins the COMMIT's round trip, pg/queue.ts). */
  insertSql (changes: readonly TaskChange[], at: number): string {
    const lit = sqlLiteral
    const when = lit(Number.isFinite(at) ? at : 0)
    const rows = changes.map((ch) => `(${when}, ${lit(ch.task_id)}, ${lit(ch.kind)}, ${lit(ch.status)}, ${lit(ch.task_type)}, ${ch.detail === undefined ? 'NULL' : lit(JSON.stringify(ch.detail))})`)
    return `INSERT INTO tq_events (at, task_id, kind, status, task_type, data) VALUES ${rows.join(', ')}`
  }

  async read (cursor: number, limit: number): Promise<EventPage> {
    const { lo, hi } = await this.bounds()
    const r = await this.pool.query(`SELECT seq, at, kind, task_id, task_type, status, data FROM tq_events
      WHERE seq > $1 ORDER BY seq LIMIT $2`, [cursor, limit + 1])
    const entries = (r.rows as Row[]).map((e) => taskEvent(e.seq, e.at, e.kind, e.task_id, e.task_type, e.status, e.data))
    return eventPage(entries, cursor, limit, lo, hi)
  }

  async newest (): Promise<number> {
    return (await this.bounds()).hi
  }

  async trim (): Promise<number> {
    const { hi } = await this.bounds()
    const keepFrom = hi - Math.max(1, this.max) + 1
    if (keepFrom <= 1) return 0
    const r = await this.pool.query('DELETE FROM tq_events WHERE seq < $1', [keepFrom])
    return r.rowCount ?? 0
  }

  private async bounds (): Promise<{ lo: number, hi: number }> {
    const r = await this.pool.query('SELECT min(seq) AS lo, max(seq) AS hi FROM tq_events')
    const row = r.rows[0] as Row | undefined
    return { lo: n(row?.lo), hi: n(row?.hi) }
  }
}
