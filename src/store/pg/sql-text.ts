/**
 * Values written into SQL text as literals, so several statements travel in one
 * simple-protocol query (one round trip): node-postgres sends one query at a time and
 * waits for its reply, and a parameterized query cannot carry a second statement.
 * Strings go through the driver's `escapeLiteral` (which also handles backslashes);
 * numbers are written in full precision, so a float8 column reads back the same double.
 */
import pg from 'pg'
import { TaskQueueError } from '../../protocol/errors.js'

/** PostgreSQL cannot store a NUL in text: refused as bad input before anything is sent. */
function nulError (): Error {
  return new TaskQueueError('invalid_params', 'text with a NUL character (\\u0000) cannot be stored on PostgreSQL')
}

function text (v: string): string {
  if (v.includes('\u0000')) throw nulError()
  return pg.escapeLiteral(v)
}

function numeric (v: number): string {
  if (!Number.isFinite(v)) return `'${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity'}'::float8`
  const s = String(v)
  return v < 0 ? `(${s})` : s
}

/**
 * One value as an SQL literal: strings and numbers untyped (resolved by context like a
 * parameter), arrays as ARRAY[…] (text elements typed text[], so `= ANY(…)` and casts
 * resolve; an empty one as '{}'), null and undefined as NULL.
 */
export function sqlLiteral (v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  if (typeof v === 'string') return text(v)
  if (typeof v === 'number') return numeric(v)
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE'
  if (Array.isArray(v)) {
    if (v.length === 0) return '\'{}\''
    const items = v.map(sqlLiteral)
    return v.every((x) => typeof x === 'number') ? `ARRAY[${items.join(', ')}]` : `ARRAY[${items.join(', ')}]::text[]`
  }
  return text(JSON.stringify(v))
}

/**
 * `sql` with its `$1…$n` placeholders replaced by `params` as literals. The statements
 * of this store have no `$` inside their own string literals, which this relies on.
 */
export function inlineParams (sql: string, params: readonly unknown[] = []): string {
  if (params.length === 0) return sql
  return sql.replace(/\$(\d+)/g, (whole, d: string) => {
    const i = Number(d) - 1
    if (i < 0 || i >= params.length) throw new Error(`no parameter ${whole} in a statement of ${params.length}`)
    return sqlLiteral(params[i])
  })
}

/** The result of the last statement of a multi-statement simple query (the driver returns an array then). */
export function lastResult<R extends pg.QueryResultRow> (r: pg.QueryResult<R> | Array<pg.QueryResult<R>>): pg.QueryResult<R> {
  return Array.isArray(r) ? r[r.length - 1] : r
}

/**
 * The connection of a write transaction whose `BEGIN` travels with its first statement
 * (that statement written as text, one round trip instead of two); later statements go
 * as usual. `begun` says whether the transaction was opened (and needs COMMIT/ROLLBACK).
 */
export class OpeningTransaction {
  begun = false
  constructor (private readonly client: pg.PoolClient) {}

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    if (this.begun) return await this.client.query<R>(sql, params)
    const text = `BEGIN;\n${inlineParams(sql, params)}`
    this.begun = true
    return lastResult(await this.client.query<R>(text) as pg.QueryResult<R> | Array<pg.QueryResult<R>>)
  }
}
