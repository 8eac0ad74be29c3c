/**
 * The persistent, bounded stream of task state changes behind the ★ `events` op.
 * Every committed change of the queue store is appended inside the transaction that
 * made it (group-commit.ts calls `record` before COMMIT), so the log and the tasks
 * never disagree, and a reader resumes after its cursor (`seq`) across restarts.
 * The sweeper trims it to the newest `max` entries; the newest entry is never
 * trimmed, so `seq` keeps growing and a cursor is never reused.
 */
import type { DatabaseSync, SQLOutputValue } from 'node:sqlite'
import { returnArrays } from './db.js'
import type { JsonObject, TaskEvent, TaskEventKind, TaskStatus } from '../protocol/types.js'
import type { TaskChange } from './types.js'

export interface EventPage {
  events: TaskEvent[]
  /** Cursor to resume after this page: the last entry's seq, or the given cursor. */
  cursor: number
  /** Oldest seq still kept (0 = empty log). */
  oldest: number
  /** Entries between the cursor and `oldest` were trimmed away before they were read. */
  gap: boolean
  /** More entries wait after this page. */
  more: boolean
}

export const DEFAULT_EVENTS_MAX = 100_000

/**
 * Oldest and newest seq. Two subqueries, not `SELECT min(seq), max(seq)`: SQLite answers
 * a lone min() or max() of the rowid from one end of the b-tree, but both in one SELECT
 * scan the whole log (100,000 rows by default: ~10–20 ms, on every status and events read).
 */
export const EVENT_BOUNDS_SQL = 'SELECT (SELECT min(seq) FROM task_events) AS lo, (SELECT max(seq) FROM task_events) AS hi'

export class EventLog {
  /** 0 = recording is off. */
  readonly max: number
  private readonly s
  private readonly now: () => number

  constructor (db: DatabaseSync, max: number, now: () => number) {
    this.max = Math.max(0, Math.trunc(max))
    this.now = now
    this.s = {
      insert: db.prepare('INSERT INTO task_events (at, task_id, kind, status, task_type, data) VALUES (?, ?, ?, ?, ?, ?)'),
      after: returnArrays(db.prepare(`SELECT seq, at, kind, task_id, task_type, status, data FROM task_events
        WHERE seq > ? ORDER BY seq LIMIT ?`)),
      bounds: db.prepare(EVENT_BOUNDS_SQL),
      trim: db.prepare('DELETE FROM task_events WHERE seq < ?')
    }
  }

  get enabled (): boolean {
    return this.max > 0
  }

  /** Appends `changes` (inside the caller's write transaction). */
  record (changes: readonly TaskChange[]): void {
    if (this.max === 0 || changes.length === 0) return
    const at = this.now()
    for (const c of changes) {
      this.s.insert.run(at, c.task_id, c.kind, c.status, c.task_type, c.detail === undefined ? null : JSON.stringify(c.detail))
    }
  }

  /** Entries after `cursor`, oldest first, at most `limit`. */
  read (cursor: number, limit: number): EventPage {
    const { lo, hi } = this.bounds()
    const rows = this.s.after.all(cursor, limit + 1) as unknown as SQLOutputValue[][]
    return eventPage(rows.map(r => taskEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6])), cursor, limit, lo, hi)
  }

  /** Newest seq (0 = empty). */
  newest (): number {
    return this.bounds().hi
  }

  /** Drops all but the newest `max` entries; returns how many went. */
  trim (): number {
    const { hi } = this.bounds()
    const keepFrom = hi - Math.max(1, this.max) + 1
    if (keepFrom <= 1) return 0
    return Number(this.s.trim.run(keepFrom).changes)
  }

  private bounds (): { lo: number, hi: number } {
    const r = this.s.bounds.get()
    return { lo: Number(r?.lo ?? 0), hi: Number(r?.hi ?? 0) }
  }
}

/** A log entry from its stored columns (seq, at, kind, task_id, task_type, status, data), on either backend. */
export function taskEvent (seq: unknown, at: unknown, kind: unknown, taskId: unknown, taskType: unknown, status: unknown, data: unknown): TaskEvent {
  const detail = data == null ? {} : JSON.parse(String(data)) as JsonObject
  return {
    ...detail,
    seq: Number(seq),
    at: Number(at),
    kind: String(kind) as TaskEventKind,
    task_id: String(taskId),
    task_type: String(taskType),
    status: String(status) as TaskStatus
  }
}

/** A page from up to `limit + 1` entries after `cursor`, with the log's bounds (lo, hi: 0 = empty). */
export function eventPage (entries: TaskEvent[], cursor: number, limit: number, lo: number, hi: number): EventPage {
  const events = entries.slice(0, limit)
  return {
    events,
    cursor: events.length > 0 ? events[events.length - 1].seq : Math.min(cursor, hi),
    oldest: lo,
    gap: lo > 0 && cursor < lo - 1,
    more: entries.length > limit
  }
}
