/**
 * Request-field coercion of wire-protocol.md §4, kept identical to the original
 * (Python) service so that its clients see the same results from ours.
 */
import { isPlainObject } from './json.js'
import { TaskQueueError } from './errors.js'

export type Envelope = Record<string, unknown>

/** Python `str(x).strip()`, with absent → "". */
export function str (value: unknown): string {
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return value.trim()
  if (typeof value === 'boolean') return value ? 'True' : 'False'
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value).trim()
}

/** First non-empty string among several alias fields. */
export function firstStr (env: Envelope, ...keys: string[]): string {
  for (const key of keys) {
    const v = str(env[key])
    if (v !== '') return v
  }
  return ''
}

/**
 * Python `int(x)` (truncating floats, parsing decimal strings), falling back to the
 * default when unparsable, then clamped.
 */
export function int (value: unknown, fallback: number, min: number, max: number): number {
  let n: number | undefined
  if (typeof value === 'number' && Number.isFinite(value)) n = Math.trunc(value)
  else if (typeof value === 'boolean') n = value ? 1 : 0
  else if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) n = Number.parseInt(value, 10)
  if (n === undefined || !Number.isFinite(n)) n = fallback
  return Math.min(max, Math.max(min, n))
}

/** Like `int`, but for fractional seconds (`float(x)` in the original). */
export function num (value: unknown, fallback: number, min: number, max: number): number {
  let n: number | undefined
  if (typeof value === 'number' && Number.isFinite(value)) n = value
  else if (typeof value === 'boolean') n = value ? 1 : 0
  else if (typeof value === 'string' && /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(value)) n = Number.parseFloat(value)
  if (n === undefined || !Number.isFinite(n)) n = fallback
  return Math.min(max, Math.max(min, n))
}

/** Python truthiness: null, false, 0, "", [] and {} are false; everything else (incl. "false") is true. */
export function truthy (value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false
  if (Array.isArray(value)) return value.length > 0
  if (isPlainObject(value)) return Object.keys(value).length > 0
  return true
}

/** A JSON array of strings or a comma-separated string; items trimmed, empties dropped. */
export function strList (value: unknown): string[] {
  let items: unknown[]
  if (Array.isArray(value)) items = value
  else if (typeof value === 'string') items = value.split(',')
  else return []
  const out: string[] = []
  for (const item of items) {
    const s = str(item)
    if (s !== '') out.push(s)
  }
  return out
}

/** Object fields: a non-object value is wrapped as `{[wrapKey]: value}`; absent → `{}`. */
export function objectOrWrap (value: unknown, wrapKey: string): Record<string, unknown> {
  if (value === undefined || value === null) return {}
  if (isPlainObject(value)) return value
  return { [wrapKey]: value }
}

/**
 * ★ Bounds of caller-supplied identifiers the service keeps (the scheduler's peer
 * registry, task rows) or echoes (heartbeat and status replies): without them a few
 * calls with megabyte-long ids made every other peer's replies megabytes long.
 */
export const MAX_ID_CHARS = 256
/** Longest idempotency key (kept in the task row and its unique index). */
export const MAX_KEY_CHARS = 1024
/** Most task types one claimer or heartbeat may list (before alias expansion). */
export const MAX_TASK_TYPES = 64

/** `value` itself when at most `max` characters, else a typed `invalid_params`. */
export function bounded (value: string, field: string, max: number = MAX_ID_CHARS): string {
  if (value.length > max) throw new TaskQueueError('invalid_params', `${field} is longer than ${max} characters`)
  return value
}

/** `firstStr` with the identifier bound. */
export function firstId (env: Envelope, ...keys: string[]): string {
  return bounded(firstStr(env, ...keys), keys[0])
}

/** `strList` of identifiers: at most MAX_TASK_TYPES items of at most MAX_ID_CHARS each. */
export function idList (value: unknown, field: string): string[] {
  const list = strList(value)
  if (list.length > MAX_TASK_TYPES) throw new TaskQueueError('invalid_params', `${field} lists more than ${MAX_TASK_TYPES} items`)
  for (const item of list) bounded(item, field)
  return list
}
