/**
 * SQL of the queue store, prepared once per store. Claim order is
 * (priority DESC, seq ASC): seq is insertion order and created_at is kept strictly
 * increasing with it, so this is exactly the spec's (priority, created_at, task_id).
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { prepareTx } from './db.js'

/** What the claim walk reads per candidate: everything but the payload text. */
export interface WalkRow {
  seq: number
  task_id: string
  task_type: string
  type_norm: string
  model_name: string
  priority: number
  created_at: number
  next_attempt_at: number
  attempt: number
  max_attempts: number
  req_session: string
  sticky_worker: string
  payload_bytes: number
}

// octet_length() reads the stored length without loading (possibly overflowed) text.
const WALK_COLS = `seq, task_id, task_type, type_norm, model_name, priority, created_at, next_attempt_at,
  attempt, max_attempts, req_session, sticky_worker, octet_length(payload) AS payload_bytes`
const ELIGIBLE = `status = 'queued' AND next_attempt_at <= :now
  AND (max_attempts = 0 OR attempt < max_attempts)
  AND (sticky_worker = '' OR sticky_worker = :worker)
  AND (req_session = '' OR req_session = :session)`

/** The claim walk's index per shape (see QueueStore.keysetWalk for the batching). */
const WALK_FROM = {
  all: ['tasks INDEXED BY idx_tasks_claim', ''],
  type: ['tasks INDEXED BY idx_tasks_claim_type', 'type_norm = :type AND '],
  in: ['tasks INDEXED BY idx_tasks_claim', 'type_norm IN (SELECT value FROM json_each(:types)) AND ']
} as const
export type WalkShape = keyof typeof WALK_FROM

/** Batch sizes of the walk. LIMIT is a literal: bound, it cost ~8 µs more per query. */
export const WALK_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] as const

export function walkSql (shape: WalkShape, part: 'same' | 'lower', limit: number): string {
  const [from, filter] = WALK_FROM[shape]
  return part === 'same'
    ? `SELECT ${WALK_COLS} FROM ${from} WHERE ${filter}${ELIGIBLE} AND priority = :p AND seq > :s
      ORDER BY seq LIMIT ${limit}`
    : `SELECT ${WALK_COLS} FROM ${from} WHERE ${filter}${ELIGIBLE} AND priority < :p
      ORDER BY priority DESC, seq LIMIT ${limit}`
}

export function claimsBefore (a: WalkRow, b: WalkRow): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority
  return a.seq < b.seq
}

/** Exact serialized size of the claimed task, without reading the payload text. */
export function claimedSize (row: WalkRow, worker: string, leaseUntil: number): number {
  const shell = JSON.stringify({
    task_id: row.task_id,
    task_type: row.task_type,
    model_name: row.model_name,
    payload: 0,
    created_at: row.created_at,
    status: 'running',
    assigned_worker: worker,
    lease_until: leaseUntil,
    attempt: row.attempt + 1,
    max_attempts: row.max_attempts,
    priority: row.priority
  })
  return Buffer.byteLength(shell) - 1 + row.payload_bytes
}

/** Beyond this many distinct queued types the claim walk stops intersecting with them. */
export const QUEUED_TYPES_CAP = 64

export type ListKind = 'all' | 'queued' | 'running' | 'done'

/** A claim or list reply stays under the 1 MiB frame with room for the envelope. */
export const DEFAULT_MAX_REPLY_BYTES = 1024 * 1024 - 4096

/** list: one statement per shape, built on first use (queue-list.ts). */
export function listSql (kind: ListKind, desc: boolean, byCursor: boolean, byTypes: boolean): string {
  const where: string[] = []
  let from = 'tasks'
  if (kind === 'queued') {
    from = 'tasks INDEXED BY idx_tasks_claim'
    where.push('status = \'queued\' AND priority = :priority')
  } else if (kind === 'running') {
    // The running set is bounded by workers' concurrency: sorting it is cheap.
    from = 'tasks INDEXED BY idx_tasks_lease'
    where.push('status = \'running\'')
  } else if (kind === 'done') {
    from = 'tasks INDEXED BY idx_tasks_done'
    // The IN term repeats the partial index's condition: SQLite cannot prove that a
    // bound :status implies it, and would otherwise refuse the INDEXED BY plan.
    where.push('status IN (\'completed\', \'failed\', \'cancelled\') AND status = :status')
  }
  // A deleted cursor row's seq can be reused by a newer task only at the end of the
  // table; created_at tells that newer row apart so an ascending walk still sees it.
  if (byCursor) where.push(desc ? 'seq < :c_seq' : 'seq >= :c_seq AND (seq > :c_seq OR created_at > :c_created)')
  if (byTypes) where.push('type_norm IN (SELECT value FROM json_each(:types))')
  return `SELECT * FROM ${from} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''}
    ORDER BY seq ${desc ? 'DESC' : 'ASC'} LIMIT :limit`
}

/**
 * Hot statements name their index: without ANALYZE statistics SQLite would often
 * prefer the broad status index over the small partial ones.
 */
export function prepareQueueStatements (db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql)
  return {
    ...prepareTx(db),
    // Numbered, not named, parameters: node:sqlite binds a 12-name object ~5 µs slower
    // than 12 positional values, on every submit. Argument order: see QueueStore.submit.
    insert: p(`INSERT INTO tasks (task_id, task_type, type_norm, model_name, payload, status, created_at,
      updated_at, priority, attempt, max_attempts, next_attempt_at, idempotency_key, req_session, sticky_worker)
      VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12)`),
    byIdempotency: p('SELECT task_id, task_type, model_name, payload FROM tasks WHERE idempotency_key = ?'),
    newestCreated: p('SELECT created_at FROM tasks ORDER BY seq DESC LIMIT 1'),
    // Loose index scan: one seek per distinct queued type, not one step per task.
    // (A literal LIMIT: a bound one made SQLite 8x slower here.)
    queuedTypes: p(`WITH RECURSIVE t(v) AS (
        SELECT (SELECT min(type_norm) FROM tasks INDEXED BY idx_tasks_claim_type WHERE status = 'queued')
        UNION ALL
        SELECT (SELECT min(type_norm) FROM tasks INDEXED BY idx_tasks_claim_type
                WHERE status = 'queued' AND type_norm > t.v)
        FROM t WHERE t.v IS NOT NULL LIMIT ${QUEUED_TYPES_CAP + 1}
      ) SELECT v FROM t WHERE v IS NOT NULL`),
    // One statement for the whole batch; the status guard makes a lost race skip the row.
    claim: p(`UPDATE tasks SET status = 'running', assigned_worker = :worker, attempt = attempt + 1,
      heartbeat_at = :now, lease_until = :lease_until, updated_at = :now
      WHERE seq IN (SELECT value FROM json_each(:seqs)) AND status = 'queued'
      RETURNING seq, payload, attempt`),
    expiredLeases: p(`SELECT seq, task_id, task_type, attempt, max_attempts, error, assigned_worker FROM tasks
      INDEXED BY idx_tasks_lease WHERE status = 'running' AND lease_until <= ?`),
    requeueExpired: p(`UPDATE tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
      next_attempt_at = ?, updated_at = ? WHERE seq = ?`),
    fail: p('UPDATE tasks SET status = \'failed\', lease_until = NULL, error = ?, updated_at = ? WHERE seq = ?'),
    exhaustedQueued: p(`SELECT seq, task_id, task_type, error FROM tasks INDEXED BY idx_tasks_exhausted
      WHERE status = 'queued' AND max_attempts > 0 AND attempt >= max_attempts`),
    guard: p('SELECT seq, status, assigned_worker, task_type, result, error FROM tasks WHERE task_id = ?'),
    complete: p(`UPDATE tasks SET status = ?, result = ?, error = ?, lease_until = NULL, updated_at = ?
      WHERE seq = ?`),
    release: p(`UPDATE tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
      next_attempt_at = ?, attempt = max(attempt - 1, 0), result = ?, updated_at = ? WHERE seq = ?`),
    heartbeat: p('UPDATE tasks SET lease_until = ?, heartbeat_at = ?, result = ?, updated_at = ? WHERE seq = ?'),
    cancel: p(`UPDATE tasks SET status = 'cancelled', assigned_worker = NULL, lease_until = NULL,
      result = ?, updated_at = ? WHERE seq = ? AND status = 'queued'`),
    get: p('SELECT * FROM tasks WHERE task_id = ?'),
    delete: p('DELETE FROM tasks WHERE task_id = ?'),
    countsQueued: p(`SELECT task_type, count(*) AS n FROM tasks INDEXED BY idx_tasks_claim
      WHERE status = 'queued' GROUP BY task_type`),
    countsRunning: p(`SELECT task_type, count(*) AS n FROM tasks INDEXED BY idx_tasks_lease
      WHERE status = 'running' GROUP BY task_type`),
    nextEligible: p(`SELECT min(next_attempt_at) AS t FROM tasks INDEXED BY idx_tasks_next_attempt
      WHERE status = 'queued' AND next_attempt_at > created_at AND next_attempt_at > ?`),
    nextLease: p('SELECT min(lease_until) AS t FROM tasks INDEXED BY idx_tasks_lease WHERE status = \'running\''),
    dataVersion: p('PRAGMA data_version')
  }
}

export type QueueStatements = ReturnType<typeof prepareQueueStatements>
