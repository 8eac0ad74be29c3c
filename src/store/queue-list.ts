/**
 * `list` (wire-protocol.md §6.1, B10): tasks in (created_at, task_id) order, which is
 * seq order (queue-sql.ts), with an opaque cursor and a byte cap. Each status is read
 * through an index that already holds it in seq order, so a page costs a few seeks
 * however long the history is.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { normalizeTaskType } from './aliases.js'
import { DEFAULT_MAX_REPLY_BYTES, listSql, type ListKind } from './queue-sql.js'
import { type Row, clampInt, decodeCursor, encodeCursor, mergeSorted, num, rowToTask } from './queue-util.js'
import type { Task } from '../protocol/types.js'
import type { ListInput, ListResult } from './types.js'

/** Submit clamps priority to 1..10; queued tasks are read per priority and merged. */
const PRIORITIES = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]

export class TaskLister {
  private readonly db: DatabaseSync
  /** Statements by shape; several per shape because merged scans run side by side. */
  private readonly stmts = new Map<string, StatementSync[]>()

  constructor (db: DatabaseSync) {
    this.db = db
  }

  list (input: ListInput): ListResult {
    const cursor = input.cursor !== null && input.cursor !== '' ? decodeCursor(input.cursor) : null
    const desc = input.order === 'desc'
    const types = input.task_types === null ? [] : [...new Set(input.task_types.map(normalizeTaskType).filter(t => t !== ''))]
    const limit = clampInt(input.limit, 1, 100_000, 50)
    const maxBytes = input.max_bytes > 0 ? input.max_bytes : DEFAULT_MAX_REPLY_BYTES
    const kind = kindOf(input.status)
    if (kind === null) return { tasks: [], next_cursor: null, truncated: false }

    const params: Record<string, string | number> = { limit: limit + 1 }
    if (kind === 'done' && input.status !== null) params.status = input.status
    if (cursor !== null) {
      params.c_seq = cursor.seq
      if (!desc) params.c_created = cursor.created_at
    }
    if (types.length > 0) params.types = JSON.stringify(types)
    const shape = (slot: number): StatementSync => this.stmt(kind, desc, cursor !== null, types.length > 0, slot)
    const its: Array<Iterator<Row>> = kind === 'queued'
      ? PRIORITIES.map((p, i) => shape(i).iterate({ ...params, priority: p }))
      : [shape(0).iterate(params)]
    const rows = mergeSorted(its, desc ? (a, b) => num(a.seq) > num(b.seq) : (a, b) => num(a.seq) < num(b.seq))

    return listPage(rows, rowToTask, limit, maxBytes)
  }

  private stmt (kind: ListKind, desc: boolean, byCursor: boolean, byTypes: boolean, slot: number): StatementSync {
    const key = `${kind}:${+desc}${+byCursor}${+byTypes}`
    let pool = this.stmts.get(key)
    if (pool === undefined) {
      pool = []
      this.stmts.set(key, pool)
    }
    while (pool.length <= slot) pool.push(this.db.prepare(listSql(kind, desc, byCursor, byTypes)))
    return pool[slot]
  }
}

function kindOf (status: string | null): ListKind | null {
  switch (status) {
    case null: return 'all'
    case 'queued': return 'queued'
    case 'running': return 'running'
    case 'completed': case 'failed': case 'cancelled': return 'done'
    default: return null // no task can have it
  }
}

/**
 * A list page from rows in list order (at least `limit + 1` when more follow): at most
 * `limit` tasks within `maxBytes` of JSON, and the cursor after the last. Both backends.
 */
export function listPage<R extends { seq?: unknown }> (rows: Iterable<R>, toTask: (r: R) => Task, limit: number, maxBytes: number): ListResult {
  const tasks: Task[] = []
  let lastSeq = 0
  let bytes = 2
  let truncated = false
  let more = false
  for (const r of rows) {
    if (tasks.length >= limit) { more = true; break }
    const task = toTask(r)
    const size = Buffer.byteLength(JSON.stringify(task)) + (tasks.length > 0 ? 1 : 0)
    // At least one row per page, or an oversized task would stall pagination forever.
    if (tasks.length > 0 && bytes + size > maxBytes) { truncated = true; more = true; break }
    tasks.push(task)
    lastSeq = num(r.seq as number)
    bytes += size
  }
  const last = tasks[tasks.length - 1]
  return {
    tasks,
    truncated,
    next_cursor: more && last !== undefined ? encodeCursor({ seq: lastSeq, created_at: last.created_at }) : null
  }
}
