/**
 * SQL of the queue store, prepared once per store. Claim order is
 * (priority DESC, seq ASC): seq is insertion order and created_at is kept strictly
 * increasing with it, so this is exactly the spec's (priority, created_at, task_id).
 */
import type { DatabaseSync, SQLInputValue, SQLOutputValue, StatementSync } from 'node:sqlite'
import { prepareTx, returnArrays } from './db.js'
import { TASK_COLS } from './queue-util.js'
import type { ClaimedTask, JsonObject } from '../protocol/types.js'

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
// The order is that of WalkRow's fields (walkRow below).
const WALK_COLS = `seq, task_id, task_type, type_norm, model_name, priority, created_at, next_attempt_at,
  attempt, max_attempts, req_session, sticky_worker, octet_length(payload) AS payload_bytes`
/**
 * Numbered parameters (named ones cost node:sqlite ~1 µs each to bind): ?1 now,
 * ?2 worker, ?3 session, ?4 the priority to continue from, ?5 the type (or JSON
 * list of types), ?6 the seq to continue after. See walkArgs.
 */
const ELIGIBLE = `status = 'queued' AND next_attempt_at <= ?1
  AND (max_attempts = 0 OR attempt < max_attempts)
  AND (sticky_worker = '' OR sticky_worker = ?2)
  AND (req_session = '' OR req_session = ?3)`

/** The claim walk's index per shape (see QueueStore.keysetWalk for the batching). */
const WALK_FROM = {
  all: ['tasks INDEXED BY idx_tasks_claim', ''],
  type: ['tasks INDEXED BY idx_tasks_claim_type', 'type_norm = ?5 AND '],
  in: ['tasks INDEXED BY idx_tasks_claim', 'type_norm IN (SELECT value FROM json_each(?5)) AND ']
} as const
export type WalkShape = keyof typeof WALK_FROM
export type WalkPart = 'same' | 'lower'

/** Batch sizes of the walk. LIMIT is a literal: bound, it cost ~8 µs more per query. */
export const WALK_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] as const

export function walkSql (shape: WalkShape, part: WalkPart, limit: number): string {
  const [from, filter] = WALK_FROM[shape]
  return part === 'same'
    ? `SELECT ${WALK_COLS} FROM ${from} WHERE ${filter}${ELIGIBLE} AND priority = ?4 AND seq > ?6
      ORDER BY seq LIMIT ${limit}`
    : `SELECT ${WALK_COLS} FROM ${from} WHERE ${filter}${ELIGIBLE} AND priority < ?4
      ORDER BY priority DESC, seq LIMIT ${limit}`
}

/**
 * The arguments of a walk statement. node:sqlite refuses more arguments than the
 * statement's highest parameter number, so each part gets exactly that many.
 */
export function walkArgs (shape: WalkShape, part: WalkPart, now: number, worker: string, session: string,
  typeArg: string | null, p: number, s: number): SQLInputValue[] {
  if (part === 'same') return [now, worker, session, p, typeArg, s]
  return shape === 'all' ? [now, worker, session, p] : [now, worker, session, p, typeArg]
}

/** A walk row from the array node:sqlite returns (WALK_COLS order). */
export function walkRow (r: SQLOutputValue[]): WalkRow {
  return {
    seq: Number(r[0]),
    task_id: r[1] as string,
    task_type: r[2] as string,
    type_norm: r[3] as string,
    model_name: r[4] as string,
    priority: Number(r[5]),
    created_at: Number(r[6]),
    next_attempt_at: Number(r[7]),
    attempt: Number(r[8]),
    max_attempts: Number(r[9]),
    req_session: r[10] as string,
    sticky_worker: r[11] as string,
    payload_bytes: Number(r[12])
  }
}

export function claimsBefore (a: WalkRow, b: WalkRow): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority
  return a.seq < b.seq
}

/**
 * The claim reply's task for a walked row. Under the write lock nothing changes the
 * row between the walk and the claim's UPDATE, so the walk's fields are current.
 */
export function claimedTask (row: WalkRow, worker: string, leaseUntil: number, leaseS: number, payload: JsonObject | 0): ClaimedTask {
  return {
    task_id: row.task_id,
    task_type: row.task_type,
    model_name: row.model_name,
    payload: payload as JsonObject,
    created_at: row.created_at,
    status: 'running',
    assigned_worker: worker,
    lease_until: leaseUntil,
    lease_s: leaseS,
    attempt: row.attempt + 1,
    max_attempts: row.max_attempts,
    priority: row.priority
  }
}

/** Exact serialized size of the claimed task, without reading the payload text. */
export function claimedSize (row: WalkRow, worker: string, leaseUntil: number, leaseS: number): number {
  // A one-character payload stands in for the stored text, whose length is known.
  return Buffer.byteLength(JSON.stringify(claimedTask(row, worker, leaseUntil, leaseS, 0))) - 1 + row.payload_bytes
}

/**
 * JSON members, punctuation and numbers of a claimed task other than its strings
 * and payload: ~165 bytes of keys and punctuation, six numbers of at most 24
 * characters, `"running"`.
 */
const CLAIMED_FIXED_MAX = 400

/** A bound on claimedSize that needs no serialization: JSON escapes a UTF-16 unit into at most 6 bytes. */
function claimedSizeBound (row: WalkRow, worker: string): number {
  return CLAIMED_FIXED_MAX + 6 * (row.task_id.length + row.task_type.length + row.model_name.length + worker.length) + row.payload_bytes
}

/**
 * The byte budget of a claim reply's task array. Sizing every task exactly means
 * serializing it; a cheap upper bound decides alone while the bounds of all tasks
 * taken so far fit, which is every claim whose payloads are far from the budget.
 * Only past that point are exact sizes computed, so the tasks that fit are exactly
 * those an exact count admits.
 */
export class ReplySize {
  /** Sum of bounds while `exact` is null; the exact byte count once computed. */
  private bound = 2 // "[]"
  private exact: number | null = null

  constructor (private readonly worker: string, private readonly leaseUntil: number, private readonly leaseS: number, private readonly maxBytes: number) {}

  /** Counts `row`, to be taken after `picked`, unless it would pass the budget; the first task always counts. */
  take (row: WalkRow, picked: readonly WalkRow[]): boolean {
    const comma = picked.length > 0 ? 1 : 0
    if (this.exact === null) {
      const b = claimedSizeBound(row, this.worker) + comma
      if (this.bound + b <= this.maxBytes || picked.length === 0) {
        this.bound += b
        return true
      }
      this.exact = 2
      for (let i = 0; i < picked.length; i++) this.exact += claimedSize(picked[i], this.worker, this.leaseUntil, this.leaseS) + (i > 0 ? 1 : 0)
    }
    const size = claimedSize(row, this.worker, this.leaseUntil, this.leaseS) + comma
    if (this.exact + size > this.maxBytes && picked.length > 0) return false
    this.exact += size
    return true
  }
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
    // The first terms repeat the partial index's condition (db.ts): SQLite cannot
    // prove that a bound :status implies it, and would otherwise refuse the INDEXED BY plan.
    where.push('status <> \'queued\' AND status <> \'running\' AND status = :status')
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
    // An existing idempotency key inserts nothing (changes = 0); the caller looks it up.
    // (created_at comes from newestCreated, a statement of its own: computed here by a
    // subquery, the INSERT … SELECT form cost ~6 µs more, SQLite materializes it.)
    insert: p(`INSERT INTO tasks (task_id, task_type, type_norm, model_name, payload, status, created_at,
      updated_at, priority, attempt, max_attempts, next_attempt_at, idempotency_key, req_session, sticky_worker,
      backoff, keep_s, submitter, payload_bytes)
      VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
      ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`),
    usageOf: p('SELECT tasks, bytes FROM submitter_usage WHERE submitter = ?'),
    newestCreated: p('SELECT created_at FROM tasks ORDER BY seq DESC LIMIT 1'),
    byIdempotency: p('SELECT task_id, task_type, model_name, payload FROM tasks WHERE idempotency_key = ?'),
    // Loose index scan: one seek per distinct queued type, not one step per task.
    // (A literal LIMIT: a bound one made SQLite 8x slower here.)
    queuedTypes: p(`WITH RECURSIVE t(v) AS (
        SELECT (SELECT min(type_norm) FROM tasks INDEXED BY idx_tasks_claim_type WHERE status = 'queued')
        UNION ALL
        SELECT (SELECT min(type_norm) FROM tasks INDEXED BY idx_tasks_claim_type
                WHERE status = 'queued' AND type_norm > t.v)
        FROM t WHERE t.v IS NOT NULL LIMIT ${QUEUED_TYPES_CAP + 1}
      ) SELECT v FROM t WHERE v IS NOT NULL`),
    // One statement for the whole batch (a JSON list of seqs); the status guard makes a
    // lost race skip the row. No RETURNING: it builds a temporary table per execution,
    // and the claim reads the payloads beforehand (payloadsOf) so nothing follows the write.
    claim: p(`UPDATE tasks SET status = 'running', assigned_worker = ?1, attempt = attempt + 1,
      heartbeat_at = ?2, lease_until = ?3, updated_at = ?2
      WHERE seq IN (SELECT value FROM json_each(?4)) AND status = 'queued'`),
    claimOne: p(`UPDATE tasks SET status = 'running', assigned_worker = ?1, attempt = attempt + 1,
      heartbeat_at = ?2, lease_until = ?3, updated_at = ?2 WHERE seq = ?4 AND status = 'queued'`),
    payloadOf: p('SELECT payload FROM tasks WHERE seq = ?'),
    payloadsOf: p('SELECT seq, payload FROM tasks WHERE seq IN (SELECT value FROM json_each(?))'),
    // ClaimWalk.mayHaveWork for one type: an expired lease or a queued task of it, in
    // one statement (each standalone read opens a WAL read transaction of its own).
    mayClaimType: p(`SELECT EXISTS (SELECT 1 FROM tasks INDEXED BY idx_tasks_lease
        WHERE status = 'running' AND lease_until <= ?1)
      OR EXISTS (SELECT 1 FROM tasks INDEXED BY idx_tasks_claim_type WHERE status = 'queued' AND type_norm = ?2) AS x`),
    expiredLeases: p(`SELECT seq, task_id, task_type, attempt, max_attempts, error, assigned_worker, errors FROM tasks
      INDEXED BY idx_tasks_lease WHERE status = 'running' AND lease_until <= ?`),
    hasExpiredLease: p(`SELECT 1 AS x FROM tasks INDEXED BY idx_tasks_lease
      WHERE status = 'running' AND lease_until <= ? LIMIT 1`),
    requeueExpired: p(`UPDATE tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
      next_attempt_at = ?1, updated_at = ?1, errors = coalesce(?2, errors) WHERE seq = ?3`),
    // Every statement that finishes a task sets expires_at: now + (keep_s, else the
    // retention of its status, ?-bound; NULL keeps it). See QueueStore.retentionOf.
    fail: p(`UPDATE tasks SET status = 'failed', lease_until = NULL, error = ?1, updated_at = ?2,
      expires_at = ?2 + coalesce(keep_s, ?3), errors = coalesce(?4, errors) WHERE seq = ?5`),
    // A failed attempt with attempts left (★ retries): queued again after its backoff.
    retryLater: p(`UPDATE tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
      next_attempt_at = ?1, error = ?2, errors = ?3, result = coalesce(?4, result), updated_at = ?5 WHERE seq = ?6`),
    exhaustedQueued: p(`SELECT seq, task_id, task_type, error FROM tasks INDEXED BY idx_tasks_exhausted
      WHERE status = 'queued' AND max_attempts > 0 AND attempt >= max_attempts`),
    guard: p(`SELECT seq, status, assigned_worker, task_type, result, error, attempt, max_attempts, errors, backoff
      FROM tasks WHERE task_id = ?`),
    complete: p(`UPDATE tasks SET status = ?1, result = ?2, error = ?3, lease_until = NULL, updated_at = ?4,
      expires_at = ?4 + coalesce(keep_s, ?5), errors = coalesce(?6, errors) WHERE seq = ?7`),
    // QueueStore.complete's usual case (same effect as its guarded path there). No
    // RETURNING: it builds a temporary table per execution; typeOf is cheaper.
    completeRunning: p(`UPDATE tasks SET status = ?1, result = ?2, error = CASE WHEN ?3 = '' THEN error ELSE ?3 END,
      lease_until = NULL, updated_at = ?4, expires_at = ?4 + coalesce(keep_s, ?7)
      WHERE task_id = ?5 AND status = 'running' AND result IS NULL
        AND (?6 = '' OR assigned_worker IS NULL OR assigned_worker = ?6)`),
    typeOf: p('SELECT task_type FROM tasks WHERE task_id = ?'),
    release: p(`UPDATE tasks SET status = 'queued', assigned_worker = NULL, lease_until = NULL,
      next_attempt_at = ?, attempt = max(attempt - 1, 0), result = ?, updated_at = ? WHERE seq = ?`),
    heartbeat: p('UPDATE tasks SET lease_until = ?, heartbeat_at = ?, result = ?, updated_at = ? WHERE seq = ?'),
    cancel: p(`UPDATE tasks SET status = 'cancelled', assigned_worker = NULL, lease_until = NULL,
      result = ?1, updated_at = ?2, expires_at = ?2 + coalesce(keep_s, ?3) WHERE seq = ?4 AND status = 'queued'`),
    pausedTypes: p('SELECT type_norm FROM queue_pauses'),
    get: returnArrays(p(`SELECT ${TASK_COLS} FROM tasks WHERE task_id = ?`)),
    delete: p('DELETE FROM tasks WHERE task_id = ?'),
    // Kept by triggers (db.ts migration 5 → 6): counting the table is O(tasks).
    countsQueued: p('SELECT task_type, queued AS n FROM task_counts WHERE queued > 0'),
    countsRunning: p('SELECT task_type, running AS n FROM task_counts WHERE running > 0'),
    nextEligible: p(`SELECT min(next_attempt_at) AS t FROM tasks INDEXED BY idx_tasks_next_attempt
      WHERE status = 'queued' AND next_attempt_at > created_at AND next_attempt_at > ?`),
    nextLease: p('SELECT min(lease_until) AS t FROM tasks INDEXED BY idx_tasks_lease WHERE status = \'running\''),
    dataVersion: p('PRAGMA data_version')
  }
}

export type QueueStatements = ReturnType<typeof prepareQueueStatements>
