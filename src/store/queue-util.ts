/**
 * Pure helpers of the queue store: row decoding, JSON conventions for `result`,
 * payload affinity extraction and list cursors. Kept apart so queue.ts reads as
 * the state machine it is.
 */
import { randomBytes } from 'node:crypto'
import type { SQLOutputValue } from 'node:sqlite'
import { TaskQueueError } from '../protocol/errors.js'
import { isJsonObject } from '../protocol/json.js'
import type { Backoff, JsonObject, JsonValue, Task, TaskError, TaskStatus } from '../protocol/types.js'

export type Row = Record<string, SQLOutputValue>

export function str (v: SQLOutputValue | undefined): string {
  return typeof v === 'string' ? v : v == null ? '' : String(v)
}

export function nstr (v: SQLOutputValue | undefined): string | null {
  return v == null ? null : str(v)
}

export function num (v: SQLOutputValue | undefined): number {
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : Number(v ?? 0)
}

export function nnum (v: SQLOutputValue | undefined): number | null {
  return v == null ? null : num(v)
}

export function parseJson (text: SQLOutputValue | undefined): JsonValue | null {
  if (text == null) return null
  return JSON.parse(str(text)) as JsonValue
}

export const isObject = isJsonObject

/** The columns of a full task, in the order taskFromArray reads them. */
const TASK_FIELDS = ['task_id', 'task_type', 'model_name', 'payload', 'status', 'assigned_worker', 'created_at',
  'updated_at', 'result', 'error', 'priority', 'attempt', 'max_attempts', 'next_attempt_at', 'lease_until',
  'heartbeat_at', 'idempotency_key', 'errors', 'backoff', 'keep_s'] as const
export const TASK_COLS = TASK_FIELDS.join(', ')

/** A full task from a row of TASK_COLS returned as an array (see db.ts returnArrays). */
export function taskFromArray (r: SQLOutputValue[]): Task {
  const payload = parseJson(r[3])
  return {
    task_id: str(r[0]),
    task_type: str(r[1]),
    model_name: str(r[2]),
    payload: isObject(payload) ? payload : {},
    status: str(r[4]) as TaskStatus,
    assigned_worker: nstr(r[5]),
    created_at: num(r[6]),
    updated_at: num(r[7]),
    result: parseJson(r[8]),
    error: nstr(r[9]),
    priority: num(r[10]),
    attempt: num(r[11]),
    max_attempts: num(r[12]),
    next_attempt_at: num(r[13]),
    lease_until: nnum(r[14]),
    heartbeat_at: nnum(r[15]),
    idempotency_key: nstr(r[16]),
    errors: r[17] == null ? [] : parseJson(r[17]) as unknown as TaskError[],
    backoff: r[18] == null ? null : parseJson(r[18]) as unknown as Backoff,
    keep_s: nnum(r[19])
  }
}

/** Most failed attempts kept on a task (`errors`); older ones are dropped first. */
export const MAX_TASK_ERRORS = 20

/** The stored `errors` text with one more failed attempt, bounded to the newest MAX_TASK_ERRORS. */
export function appendTaskError (stored: SQLOutputValue | undefined, entry: TaskError): string {
  const prev = stored == null ? [] : parseJson(stored)
  const list = Array.isArray(prev) ? prev : []
  list.push(entry as unknown as JsonValue)
  return JSON.stringify(list.slice(-MAX_TASK_ERRORS))
}

/** A full task from a row read as an object (list pages). */
export function rowToTask (r: Row): Task {
  return taskFromArray(TASK_FIELDS.map((f) => r[f]))
}

/** JSON with object keys sorted at every level: equal work gives equal text. */
export function canonicalJson (v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`
  if (isObject(v)) {
    const keys = Object.keys(v).filter(k => v[k] !== undefined).sort()
    return `{${keys.map(k => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`
  }
  return JSON.stringify(v ?? null)
}

/**
 * The stored result as an object we can annotate: null → {}, a non-object is kept
 * under `result` (the same wrapping `complete` applies to non-object results).
 */
export function resultObject (stored: JsonValue | null): JsonObject {
  if (stored === null) return {}
  if (isObject(stored)) return { ...stored }
  return { result: stored }
}

/** `result` with `patch` shallow-merged into `result.progress`. */
/**
 * ★ Characters of JSON a task's merged `result.progress` may grow to (README "Security"):
 * a worker sending new keys on every heartbeat would otherwise grow the stored row
 * without end. Past it the patch replaces the progress instead of merging into it.
 */
export const MAX_PROGRESS_CHARS = 256 * 1024

export function withProgress (stored: JsonValue | null, patch: JsonObject): JsonObject {
  const result = resultObject(stored)
  const prev = result.progress
  const merged = { ...(isObject(prev) ? prev : {}), ...patch }
  // Only a merge into earlier progress can grow past the bound (one patch is one frame).
  result.progress = isObject(prev) && JSON.stringify(merged).length > MAX_PROGRESS_CHARS ? { ...patch } : merged
  return result
}

export function appendError (existing: string | null, msg: string): string {
  return existing !== null && existing !== '' ? `${existing}; ${msg}` : msg
}

/** Python-ish `str(x).strip()` for the few scalar payload keys with queue meaning. */
function scalarText (v: JsonValue | undefined): string {
  if (typeof v === 'string') return v.trim()
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  if (typeof v === 'boolean') return v ? 'True' : 'False'
  return ''
}

function firstText (payload: JsonObject, keys: readonly string[]): string {
  for (const k of keys) {
    const s = scalarText(payload[k])
    if (s !== '') return s
  }
  return ''
}

/** Session and sticky-worker requirements a payload carries (wire-protocol.md §7.1). */
export function extractAffinity (payload: JsonObject): { session: string, sticky: string } {
  return {
    session: firstText(payload, ['session_id', 'session', 'p2p_session']),
    sticky: firstText(payload, ['sticky_worker_id', 'sticky_worker'])
  }
}

/** Position after the last row of a list page. Opaque to clients. */
export interface ListCursor {
  seq: number
  created_at: number
}

export function encodeCursor (c: ListCursor): string {
  return Buffer.from(`${c.seq}:${c.created_at}`, 'utf8').toString('base64url')
}

export function decodeCursor (cursor: string): ListCursor {
  const bad = (): TaskQueueError => new TaskQueueError('invalid_params', 'invalid cursor')
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(cursor)) throw bad()
  const m = /^([0-9]{1,16}):(-?[0-9][0-9.eE+-]*)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (m === null) throw bad()
  const seq = Number(m[1])
  const created = Number(m[2])
  if (!Number.isSafeInteger(seq) || !Number.isFinite(created)) throw bad()
  return { seq, created_at: created }
}

export function clampInt (v: number, lo: number, hi: number, dflt: number): number {
  const n = Math.trunc(Number(v))
  if (!Number.isFinite(n)) return dflt
  return Math.min(hi, Math.max(lo, n))
}

/**
 * Lazily merges iterators that are each already sorted by `before`. Used to read one
 * ordered stream out of several index ranges without sorting. Every input iterator
 * is closed (statement reset) however the consumer stops.
 */
export function * mergeSorted<T> (its: Array<Iterator<T>>, before: (a: T, b: T) => boolean): Generator<T> {
  const pull = (it: Iterator<T>): T | undefined => {
    const r = it.next()
    return r.done === true ? undefined : r.value
  }
  try {
    if (its.length === 1) {
      for (let v = pull(its[0]); v !== undefined; v = pull(its[0])) yield v
      return
    }
    const heads = its.map(pull)
    for (;;) {
      let best = -1
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i]
        if (h !== undefined && (best < 0 || before(h, heads[best] as T))) best = i
      }
      if (best < 0) return
      yield heads[best] as T
      heads[best] = pull(its[best])
    }
  } finally {
    for (const it of its) it.return?.()
  }
}

/**
 * A task id: 32 lowercase hex characters (wire-protocol.md §6.1), laid out like a
 * UUIDv7 — 48 bits of milliseconds, then 80 random bits. Ids made close in time
 * share a prefix, so inserting them touches the same few leaves of the unique
 * task_id index instead of a random leaf per task (a v4 id cost one extra 4 KiB WAL
 * page per submit). 80 random bits keep ids unguessable and collisions out of reach.
 */
export function newTaskId (nowMs: number = Date.now()): string {
  const time = Math.max(0, Math.trunc(nowMs)).toString(16).padStart(12, '0').slice(-12)
  if (randomPoolAt + RANDOM_ID_BYTES > randomPool.length) {
    // One CSPRNG call per 400 ids: randomBytes(10) per id cost more than the rest of it.
    randomPool = randomBytes(RANDOM_ID_BYTES * 400)
    randomPoolAt = 0
  }
  const tail = randomPool.toString('hex', randomPoolAt, randomPoolAt + RANDOM_ID_BYTES)
  randomPoolAt += RANDOM_ID_BYTES
  return time + tail
}

const RANDOM_ID_BYTES = 10
let randomPool = Buffer.alloc(0)
let randomPoolAt = 0
