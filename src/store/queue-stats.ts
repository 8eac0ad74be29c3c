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
      // Kept by triggers (db.ts migration 5 → 6): counting the table is O(tasks).
      counts: db.prepare(`SELECT task_type, queued, running, completed, failed, cancelled FROM task_counts
        WHERE queued + running + completed + failed + cancelled > 0`),
      // Waiting = queued and claimable now (a delayed retry is not waiting yet). seq order
      // is created_at order, so the oldest is the first claimable entry of one of the ten
      // priorities in the claim index (priority DESC, seq): ten short index reads, where
      // min(created_at) over the queue read every queued row.
      oldest: db.prepare(`WITH p(v) AS (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10))
        SELECT min((SELECT created_at FROM tasks INDEXED BY idx_tasks_claim
          WHERE status = 'queued' AND priority = p.v AND next_attempt_at <= ?1 ORDER BY priority DESC, seq LIMIT 1)) AS t FROM p`)
    }
    statements.set(db, s)
  }
  return s
}

const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const

export function countsByStatusAndType (db: DatabaseSync): StatusTypeCount[] {
  const out: StatusTypeCount[] = []
  for (const r of prepared(db).counts.all()) {
    for (const status of STATUSES) {
      const count = Number(r[status])
      if (count > 0) out.push({ status, task_type: String(r.task_type), count })
    }
  }
  return out
}

/** Seconds the oldest claimable queued task has waited; 0 when none waits. */
export function oldestQueuedAgeS (db: DatabaseSync, now: number): number {
  const t = prepared(db).oldest.get(now)?.t
  return typeof t === 'number' ? Math.max(0, now - t) : 0
}
