/**
 * Aggregate reads for metrics and the dashboard (issue 22): counts by status and type,
 * and the age of the oldest waiting task. Read-only statements on the queue's database,
 * run when somebody asks (a Prometheus scrape, a dashboard refresh), never per request.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'

export interface StatusTypeCount { status: string, task_type: string, count: number }

const statements = new WeakMap<DatabaseSync, { counts: StatementSync, oldest: StatementSync }>()

function prepared (db: DatabaseSync): { counts: StatementSync, oldest: StatementSync } {
  let s = statements.get(db)
  if (s === undefined) {
    s = {
      counts: db.prepare('SELECT status, task_type, count(*) AS n FROM tasks GROUP BY status, task_type'),
      // Waiting = queued and claimable now (a delayed retry is not waiting yet).
      oldest: db.prepare("SELECT min(created_at) AS t FROM tasks WHERE status = 'queued' AND next_attempt_at <= ?")
    }
    statements.set(db, s)
  }
  return s
}

export function countsByStatusAndType (db: DatabaseSync): StatusTypeCount[] {
  return prepared(db).counts.all().map((r) => ({ status: String(r.status), task_type: String(r.task_type), count: Number(r.n) }))
}

/** Seconds the oldest claimable queued task has waited; 0 when none waits. */
export function oldestQueuedAgeS (db: DatabaseSync, now: number): number {
  const t = prepared(db).oldest.get(now)?.t
  return typeof t === 'number' ? Math.max(0, now - t) : 0
}
