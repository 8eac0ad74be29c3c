/**
 * ★ Ops that operate the queue (README "Protocol additions"): `retry`, `purge`,
 * `pause`, `resume` and the `events` stream. Request checking and reply shapes only;
 * every state change is one QueueStore transaction (store/queue-admin.ts). Bad input
 * is refused with `invalid_params` and changes nothing.
 */
import { TaskQueueError } from '../../protocol/errors.js'
import { str, strList } from '../../protocol/coerce.js'
import type { Envelope } from '../../protocol/coerce.js'
import { REPLY_BYTE_BUDGET } from '../../protocol/ids.js'
import { expandTaskTypes } from '../../store/aliases.js'
import type { PurgeableStatus, RetryableStatus } from '../../store/queue-admin.js'
import type { EventPage } from '../../store/event-log.js'
import type { MaybePromise } from '../../store/task-store.js'
import type { TaskEvent } from '../../protocol/types.js'
import type { CallerInfo, Reply, ServiceContext } from '../context.js'

/** Most tasks one `retry` requeues, and one purge batch (a transaction of its own). */
export const MAX_RETRY = 10_000
const PURGE_BATCH = 1000
const MAX_EVENTS_PAGE = 1000

function invalid (detail: string): TaskQueueError {
  return new TaskQueueError('invalid_params', detail)
}

/** An optional number field within [min, max]; anything else present is refused. */
export function optionalNumber (env: Envelope, key: string, min: number, max: number): number | null {
  const v = env[key]
  if (v === undefined || v === null) return null
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw invalid(`${key} must be a number in ${min}..${max}`)
  return v
}

function optionalInt (env: Envelope, key: string, dflt: number, min: number, max: number): number {
  const v = optionalNumber(env, key, min, max)
  if (v === null) return dflt
  if (!Number.isInteger(v)) throw invalid(`${key} must be an integer in ${min}..${max}`)
  return v
}

/** `task_types` as a list (or comma string); null when absent or empty. */
function typeFilter (env: Envelope): string[] | null {
  const v = env.task_types ?? env.task_type
  if (v !== undefined && v !== null && typeof v !== 'string' && !Array.isArray(v)) throw invalid('task_types must be a list of strings')
  const list = strList(v)
  return list.length === 0 ? null : expandTaskTypes(list)
}

function statusList<T extends string> (env: Envelope, allowed: readonly T[], dflt: readonly T[] | null): T[] {
  const v = env.status ?? env.statuses
  if (v !== undefined && v !== null && typeof v !== 'string' && !Array.isArray(v)) throw invalid('status must be a string or a list')
  const list = strList(v).map(s => s.toLowerCase())
  if (list.length === 0) {
    if (dflt === null) throw invalid(`status is required (${allowed.join(', ')})`)
    return [...dflt]
  }
  for (const s of list) if (!(allowed as readonly string[]).includes(s)) throw invalid(`status ${JSON.stringify(s)} is not one of ${allowed.join(', ')}`)
  return list as T[]
}

/**
 * ★ `retry`: failed (or cancelled) tasks back to `queued` with fresh attempts, by
 * `task_ids` (or `task_id`) or by filter (`status`, `task_types`, `since`/`until` on
 * the time they finished), at most `limit`. Tasks that are not failed/cancelled are
 * left alone and listed in `skipped`, so repeating a retry changes nothing.
 */
export async function retry (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  let ids: string[] | null = null
  if (env.task_ids !== undefined && env.task_ids !== null) {
    if (!Array.isArray(env.task_ids) || env.task_ids.some(x => typeof x !== 'string' || x === '')) throw invalid('task_ids must be a list of task ids')
    ids = env.task_ids as string[]
  } else if (str(env.task_id) !== '') {
    ids = [str(env.task_id)]
  }
  const limit = optionalInt(env, 'limit', 1000, 1, MAX_RETRY)
  if (ids !== null && ids.length > MAX_RETRY) throw invalid(`at most ${MAX_RETRY} task_ids`)
  const input = {
    task_ids: ids,
    statuses: statusList<RetryableStatus>(env, ['failed', 'cancelled'], ['failed']),
    task_types: typeFilter(env),
    since: optionalNumber(env, 'since', 0, 1e11),
    until: optionalNumber(env, 'until', 0, 1e11),
    limit: ids === null ? limit : ids.length,
    delay_s: optionalNumber(env, 'delay_s', 0, 86400 * 365) ?? 0
  }
  const out = await ctx.writes.write(() => ctx.store.retryTasks(input))
  return { ok: true, retried: out.task_ids.length, task_ids: out.task_ids, skipped: out.skipped }
}

/**
 * ★ `purge`: deletes tasks by `status` (required: queued, completed, failed,
 * cancelled; never running), optionally `task_types` and `before` (last change
 * earlier than this time), at most `limit` (default: all), in transactions of
 * PURGE_BATCH tasks so other writes interleave.
 */
export async function purge (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const raw = strList(env.status ?? env.statuses).map(s => s.toLowerCase())
  if (raw.includes('running')) throw invalid('running tasks are never purged (cancel or let them finish first)')
  const statuses = statusList<PurgeableStatus>(env, ['queued', 'completed', 'failed', 'cancelled'], null)
  const limit = optionalInt(env, 'limit', Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER)
  const base = { statuses, task_types: typeFilter(env), before: optionalNumber(env, 'before', 0, 1e11) }
  let purged = 0
  while (purged < limit) {
    const batch = Math.min(PURGE_BATCH, limit - purged)
    const n = await ctx.writes.write(() => ctx.store.purge({ ...base, limit: batch }))
    purged += n
    if (n < batch) break
  }
  return { ok: true, purged }
}

/** ★ `pause`: claims of `task_types` (or, without them, of every task) return nothing until `resume`. */
export async function pause (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const types = typeFilter(env)
  return { ok: true, paused: await ctx.writes.write(() => ctx.store.pause(types)) }
}

/** ★ `resume`: the named types, or (without `task_types`) the whole queue and every type. */
export async function resume (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const types = typeFilter(env)
  return { ok: true, paused: await ctx.writes.write(() => ctx.store.resume(types)) }
}

/**
 * ★ `events`: task state changes after `cursor` (0 = from the oldest kept; -1 = from
 * now), at most `limit`, optionally only of `task_id`/`task_ids`. With `wait_s` > 0
 * and nothing new, the reply waits for the next change (long-poll). Resume with the
 * reply's `cursor`; `gap: true` says entries were trimmed before they were read.
 */
export async function events (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const log = ctx.store.events
  if (!log.enabled) throw new TaskQueueError('events_disabled', 'the service keeps no event log (EVENTS_MAX=0)')
  let cursor = optionalInt(env, 'cursor', 0, -1, Number.MAX_SAFE_INTEGER)
  if (cursor === -1) cursor = await log.newest()
  const limit = optionalInt(env, 'limit', 100, 1, MAX_EVENTS_PAGE)
  const waitS = optionalNumber(env, 'wait_s', 0, Number.MAX_SAFE_INTEGER) ?? 0
  const deadline = Date.now() + Math.min(waitS, ctx.options.waitMaxS) * 1000
  const only = eventTaskFilter(env)
  const first = cursor
  let gap = false
  for (;;) {
    const heard = ctx.events.changeCount
    const page = await readFiltered(log.read.bind(log), cursor, limit, only)
    gap ||= page.gap && cursor === first
    cursor = page.cursor
    const left = deadline - Date.now()
    if (page.events.length > 0 || page.more || left <= 0 || caller.signal.aborted || ctx.events.closed) {
      return { ok: true, events: page.events, cursor, oldest: page.oldest, gap, more: page.more }
    }
    // A change heard while the page was read (PostgreSQL reads yield): read again, do not park.
    if (ctx.events.changeCount === heard) await ctx.events.untilChange(left, caller.signal)
  }
}

function eventTaskFilter (env: Envelope): Set<string> | null {
  const ids = env.task_ids ?? (env.task_id === undefined ? undefined : [env.task_id])
  if (ids === undefined || ids === null) return null
  if (!Array.isArray(ids) || ids.some(x => typeof x !== 'string' || x === '')) throw invalid('task_ids must be a list of task ids')
  return new Set(ids as string[])
}

/**
 * A page of at most `limit` events, filtered to `only`, within the reply budget; the
 * cursor advances over everything scanned, so a filtered follower skips the rest.
 */
async function readFiltered (read: (cursor: number, limit: number) => MaybePromise<EventPage>, cursor: number, limit: number, only: Set<string> | null): Promise<EventPage> {
  const out: TaskEvent[] = []
  let bytes = 0
  let page = await read(cursor, limit)
  const first = page
  for (let scans = 1; ; scans++) {
    let taken = 0
    for (const e of page.events) {
      if (only !== null && !only.has(e.task_id)) { cursor = e.seq; taken++; continue }
      bytes += Buffer.byteLength(JSON.stringify(e)) + 1
      if (bytes > REPLY_BYTE_BUDGET - 4096 && out.length > 0) return { ...page, events: out, cursor, more: true }
      out.push(e)
      cursor = e.seq
      taken++
      if (out.length >= limit) return { ...page, events: out, cursor, more: page.more || taken < page.events.length }
    }
    // A filter matching little scans a bounded stretch per call; `more` brings the caller back.
    if (!page.more || out.length > 0 || only === null || scans >= 16) return { ...page, events: out, cursor, gap: first.gap, more: page.more }
    page = await read(cursor, MAX_EVENTS_PAGE)
  }
}
