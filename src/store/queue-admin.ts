/**
 * Operating the queue (★ ops retry, purge, pause/resume, and retention pruning):
 * statements and decisions over many tasks at once. Each method runs inside a
 * QueueStore write transaction and reports what it changed through `changes`, so the
 * event log and waiters see these like any other state change. Work over many rows
 * is bounded per call (`limit`); callers loop in small transactions.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { expandTaskTypes } from './aliases.js'
import { num, str } from './queue-util.js'
import type { RetentionPolicy } from './retry-policy.js'
import type { TaskStatus } from '../protocol/types.js'
import type { TaskChange } from './types.js'

export type RetryableStatus = 'failed' | 'cancelled'
export type PurgeableStatus = 'queued' | 'completed' | 'failed' | 'cancelled'

export interface RetryInput {
  /** Explicit tasks; null = select by the filter below. */
  task_ids: readonly string[] | null
  /** Which finished tasks may be requeued (default ['failed']). */
  statuses: readonly RetryableStatus[]
  /** Lower-cased, alias-expanded; null = any. */
  task_types: readonly string[] | null
  /** Finished (updated_at) at or after / before; null = unbounded. */
  since: number | null
  until: number | null
  limit: number
  /** Claimable this long after the retry (0 = at once). */
  delay_s: number
}

export interface RetryResult {
  task_ids: string[]
  /** Named tasks left alone: their status (not retryable), or 'not_found'. */
  skipped: Array<{ task_id: string, status: string }>
}

export interface PurgeInput {
  statuses: readonly PurgeableStatus[]
  task_types: readonly string[] | null
  /** Only tasks last changed before this time; null = any. */
  before: number | null
  limit: number
}

export interface PausedState {
  /** The whole queue is paused. */
  all: boolean
  /** Paused task types (lower-cased spellings). */
  task_types: string[]
}

export interface PruneResult {
  pruned: number
  /** More is due: the caller runs another batch soon. */
  more: boolean
}

const PRUNED_KEY = 'pruned'

interface FinishedRow { seq: number, task_id: string, task_type: string, status: TaskStatus }

export class QueueAdmin {
  private readonly db: DatabaseSync
  private readonly retention: RetentionPolicy
  private readonly s: Record<string, StatementSync>
  private readonly selects = new Map<string, StatementSync>()

  constructor (db: DatabaseSync, retention: RetentionPolicy) {
    this.db = db
    this.retention = retention
    const p = (sql: string): StatementSync => db.prepare(sql)
    this.s = {
      byId: p('SELECT seq, task_id, task_type, status FROM tasks WHERE task_id = ?'),
      // Fresh attempts: the history (`errors`) stays, the last run's outcome goes.
      requeue: p(`UPDATE tasks SET status = 'queued', attempt = 0, assigned_worker = NULL, lease_until = NULL,
        heartbeat_at = NULL, next_attempt_at = ?1, error = NULL, result = NULL, expires_at = NULL, updated_at = ?2
        WHERE seq = ?3 AND (status = 'failed' OR status = 'cancelled')`),
      delete: p('DELETE FROM tasks WHERE seq = ? AND status <> \'running\''),
      expired: p(`SELECT seq, task_id, task_type, status FROM tasks INDEXED BY idx_tasks_expires
        WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`),
      countFinished: p(`SELECT count(*) AS n FROM tasks INDEXED BY idx_tasks_done
        WHERE status <> 'queued' AND status <> 'running'`),
      // Oldest first in insertion order; old rows are mostly finished, so the scan stops early.
      oldestFinished: p(`SELECT seq, task_id, task_type, status FROM tasks NOT INDEXED
        WHERE status <> 'queued' AND status <> 'running' ORDER BY seq LIMIT ?`),
      pause: p('INSERT OR IGNORE INTO queue_pauses (type_norm, paused_at) VALUES (?, ?)'),
      resumeOne: p('DELETE FROM queue_pauses WHERE type_norm = ?'),
      resumeAll: p('DELETE FROM queue_pauses'),
      paused: p('SELECT type_norm FROM queue_pauses ORDER BY type_norm'),
      addMeta: p(`INSERT INTO queue_meta (key, value) VALUES (?1, ?2)
        ON CONFLICT (key) DO UPDATE SET value = value + ?2`),
      meta: p('SELECT value FROM queue_meta WHERE key = ?')
    }
  }

  retry (input: RetryInput, now: number, changes: TaskChange[]): RetryResult {
    const out: RetryResult = { task_ids: [], skipped: [] }
    const allowed = new Set<string>(input.statuses)
    const at = now + Math.max(0, input.delay_s)
    const requeue = (r: FinishedRow): void => {
      if (Number(this.s.requeue.run(at, now, r.seq).changes) !== 1) return
      out.task_ids.push(r.task_id)
      changes.push(requeuedChange(r, at))
    }
    if (input.task_ids !== null) {
      for (const id of input.task_ids.slice(0, input.limit)) {
        const r = this.s.byId.get(id)
        if (r === undefined) {
          out.skipped.push({ task_id: id, status: 'not_found' })
          continue
        }
        const row = finishedRow(r)
        if (!allowed.has(row.status)) out.skipped.push({ task_id: id, status: row.status })
        else requeue(row)
      }
      return out
    }
    for (const row of this.select(input.statuses, input.task_types, input.since, input.until, input.limit)) requeue(row)
    return out
  }

  /** Deletes up to `limit` matching tasks (never running ones); returns how many. */
  purge (input: PurgeInput, changes: TaskChange[]): number {
    let n = 0
    for (const row of this.select(input.statuses, input.task_types, null, input.before, input.limit)) {
      if (this.remove(row, 'purge', changes)) n++
    }
    return n
  }

  /**
   * One retention batch: tasks past their expiry, then the oldest finished tasks beyond
   * RETENTION_MAX_FINISHED. `keep` names tasks that must stay (somebody waits on them).
   */
  prune (now: number, batch: number, keep: (taskId: string) => boolean, changes: TaskChange[]): PruneResult {
    let pruned = 0
    const expired = this.s.expired.all(now, batch).map(finishedRow)
    for (const row of expired) if (!keep(row.task_id) && this.remove(row, 'retention', changes)) pruned++
    let more = expired.length >= batch
    const max = this.retention.maxFinished
    if (max > 0 && pruned < batch) {
      const excess = num(this.s.countFinished.get()?.n) - max
      if (excess > 0) {
        const n = Math.min(excess, batch - pruned)
        for (const row of this.s.oldestFinished.all(n).map(finishedRow)) {
          if (!keep(row.task_id) && this.remove(row, 'retention', changes)) pruned++
        }
        more ||= excess > n
      }
    }
    if (pruned > 0) this.s.addMeta.run(PRUNED_KEY, pruned)
    return { pruned, more: more && pruned > 0 }
  }

  /** Tasks pruned by retention since the file was created. */
  prunedTotal (): number {
    return num(this.s.meta.get(PRUNED_KEY)?.value)
  }

  pause (types: readonly string[] | null, now: number): PausedState {
    for (const t of types === null ? ['*'] : expandTaskTypes(types)) this.s.pause.run(t, now)
    return this.paused()
  }

  /** Resumes the named types, or everything (the whole queue and every type) for null. */
  resume (types: readonly string[] | null): PausedState {
    if (types === null) this.s.resumeAll.run()
    else for (const t of expandTaskTypes(types)) this.s.resumeOne.run(t)
    return this.paused()
  }

  paused (): PausedState {
    const types = this.s.paused.all().map(r => str(r.type_norm))
    return { all: types.includes('*'), task_types: types.filter(t => t !== '*') }
  }

  private remove (row: FinishedRow, reason: string, changes: TaskChange[]): boolean {
    if (Number(this.s.delete.run(row.seq).changes) !== 1) return false
    changes.push({ task_id: row.task_id, status: row.status, task_type: row.task_type, kind: 'pruned', detail: { reason } })
    return true
  }

  /** Tasks by status, type and last-change time, oldest first (one statement per shape). */
  private select (statuses: readonly string[], types: readonly string[] | null, since: number | null, until: number | null, limit: number): FinishedRow[] {
    const where = ['status IN (SELECT value FROM json_each(?1))', 'status <> \'running\'']
    if (types !== null) where.push('type_norm IN (SELECT value FROM json_each(?2))')
    if (since !== null) where.push('updated_at >= ?3')
    if (until !== null) where.push('updated_at < ?4')
    const sql = `SELECT seq, task_id, task_type, status FROM tasks WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?5`
    let st = this.selects.get(sql)
    if (st === undefined) {
      st = this.db.prepare(sql)
      this.selects.set(sql, st)
    }
    // Numbered parameters: unused numbers below the highest (?5) are bound and ignored.
    return st.all(JSON.stringify(statuses), types === null ? null : JSON.stringify(types), since, until, limit).map(finishedRow)
  }
}

function finishedRow (r: Record<string, unknown>): FinishedRow {
  return { seq: Number(r.seq), task_id: String(r.task_id), task_type: String(r.task_type), status: String(r.status) as TaskStatus }
}

/** The change a `retry` records for a failed or cancelled task it queued again (both backends). */
export function requeuedChange (row: { task_id: string, task_type: string, status: string }, at: number): TaskChange {
  return {
    task_id: row.task_id, status: 'queued', task_type: row.task_type, kind: 'requeued', next_attempt_at: at,
    detail: { previous_status: row.status, next_attempt_at: at }
  }
}
