/**
 * ★ The per-submitter totals on PostgreSQL (store/submitter-usage.ts; the table and its
 * triggers are pg/schema.ts migration 2 → 3). Each server process writes only its own
 * row per submitter, so a submitter's usage is the sum of its rows; the fold merges
 * them and drops submitters left with nothing, so the table stays as small as the set
 * of remote peers with unfinished work.
 */
import type pg from 'pg'
import type { SubmitterUsage } from '../submitter-usage.js'
import type { Db } from './admin.js'

/** A submitter's unfinished tasks and payload bytes: one index range of a few rows. */
export async function readSubmitterUsage (db: Db, submitter: string): Promise<SubmitterUsage> {
  const r = await db.query('SELECT sum(tasks) AS tasks, sum(bytes) AS bytes FROM tq_submitter_usage WHERE submitter = $1', [submitter])
  const row = r.rows[0] as { tasks: string | null, bytes: string | null } | undefined
  return { tasks: Number(row?.tasks ?? 0), bytes: Number(row?.bytes ?? 0) }
}

/**
 * Merges each submitter's rows into one (backend 0, which no server process has) and
 * deletes submitters whose sum is zero. Under a table lock, so no trigger's update
 * falls between the read and the delete; a short lock_timeout makes a busy moment
 * skip this round instead of holding writers up. Returns false when skipped.
 */
export async function foldSubmitterUsage (pool: pg.Pool): Promise<boolean> {
  const c = await pool.connect()
  try {
    await c.query('BEGIN')
    await c.query("SET LOCAL lock_timeout = '200ms'")
    await c.query('LOCK TABLE tq_submitter_usage IN SHARE ROW EXCLUSIVE MODE')
    await c.query(`WITH folded AS (
        SELECT submitter FROM tq_submitter_usage GROUP BY submitter HAVING count(*) > 1 OR sum(tasks) = 0
      ), gone AS (
        DELETE FROM tq_submitter_usage u USING folded f WHERE u.submitter = f.submitter RETURNING u.submitter, u.tasks, u.bytes
      )
      INSERT INTO tq_submitter_usage (submitter, backend, tasks, bytes)
      SELECT submitter, 0, sum(tasks), sum(bytes) FROM gone GROUP BY submitter HAVING sum(tasks) <> 0 OR sum(bytes) <> 0`)
    await c.query('COMMIT')
    return true
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {})
    // 55P03 lock_not_available: writers were busy; the next round folds.
    if ((err as { code?: unknown }).code === '55P03') return false
    throw err
  } finally {
    c.release()
  }
}
