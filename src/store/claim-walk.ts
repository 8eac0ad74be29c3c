/**
 * The claim walk (wire-protocol.md §7.3): a claimer's eligible tasks in claim order
 * (priority, then age), read lazily in keyset batches from the claim indexes and
 * merged across type spellings, plus the cheap check that lets an idle long-poll
 * claimer answer without a write transaction. QueueStore.claim decides which of the
 * walked tasks to take.
 */
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite'
import { expandTaskTypes } from './aliases.js'
import { returnArrays } from './db.js'
import {
  QUEUED_TYPES_CAP, type QueueStatements, type WalkPart, type WalkRow, type WalkShape, WALK_BATCHES,
  claimsBefore, walkArgs, walkRow, walkSql
} from './queue-sql.js'
import { mergeSorted, str } from './queue-util.js'

/** Up to this many type spellings are merged from the per-type index; more use one filtered scan. */
const MAX_MERGED_TYPES = 24

/** What a claim walk filters on (`typeArg`: one type, a JSON list of types, or null). */
interface WalkParams {
  now: number
  worker: string
  session: string
  typeArg: string | null
}

export class ClaimWalk {
  private readonly db: DatabaseSync
  private readonly s: QueueStatements
  private readonly walkStmts = new Map<string, StatementSync>()

  constructor (db: DatabaseSync, s: QueueStatements) {
    this.db = db
    this.s = s
  }

  /** The requester's eligible tasks in claim order, lazily (the caller stops early). */
  * walk (types: readonly string[] | null, worker: string, session: string, now: number, batch: number): Generator<WalkRow> {
    let wanted = types === null ? [] : expandTaskTypes(types)
    if (wanted.length > 1) {
      // Most spellings in an expanded list have nothing queued; skipping them saves a
      // seek each, and an idle claimer (long-poll) costs one statement. (For a single
      // type the walk's own first seek is that check.)
      const queued = this.queuedTypes()
      if (queued !== null) {
        wanted = wanted.filter(t => queued.has(t))
        if (wanted.length === 0) return
      }
    }
    if (wanted.length === 0) {
      yield * this.keysetWalk('all', { now, worker, session, typeArg: null }, batch)
    } else if (wanted.length > MAX_MERGED_TYPES) {
      yield * this.keysetWalk('in', { now, worker, session, typeArg: JSON.stringify(wanted) }, batch)
    } else {
      // k-way merge of per-type index ranges: each is already in claim order, so no
      // sort and no reading of other types' rows however many of those are queued.
      yield * mergeSorted(wanted.map(type => this.keysetWalk('type', { now, worker, session, typeArg: type }, batch)), claimsBefore)
    }
  }

  /**
   * Reads a walk in keyset batches with `.all()` (node:sqlite's per-row `iterate()`
   * costs about three times more per row). A batch resumes after the last row seen,
   * (priority p, seq s): first the rest of priority p, then lower priorities; both
   * are index ranges, so no row is read twice. Batches start at the size the caller
   * expects to need and double, up to 1024 rows, while a walk goes on.
   */
  private * keysetWalk (shape: WalkShape, params: WalkParams, first: number): Generator<WalkRow> {
    const { now, worker, session, typeArg } = params
    let p = Number.MAX_SAFE_INTEGER
    let s = 0
    let i = WALK_BATCHES.findIndex(b => b >= first)
    if (i < 0) i = WALK_BATCHES.length - 1
    for (;;) {
      const n = WALK_BATCHES[i]
      let rows = p === Number.MAX_SAFE_INTEGER
        ? []
        : this.walkStmt(shape, 'same', n).all(...walkArgs(shape, 'same', now, worker, session, typeArg, p, s)) as unknown as SQLOutputValue[][]
      if (rows.length < n) {
        const lower = this.walkStmt(shape, 'lower', n).all(...walkArgs(shape, 'lower', now, worker, session, typeArg, p, s)) as unknown as SQLOutputValue[][]
        rows = rows.concat(lower.slice(0, n - rows.length))
      }
      let last: WalkRow | undefined
      for (const r of rows) {
        last = walkRow(r)
        yield last
      }
      if (last === undefined || rows.length < n) return
      p = last.priority
      s = last.seq
      i = Math.min(i + 1, WALK_BATCHES.length - 1)
    }
  }

  private walkStmt (shape: WalkShape, part: WalkPart, limit: number): StatementSync {
    const key = `${shape}:${part}:${limit}`
    let st = this.walkStmts.get(key)
    if (st === undefined) {
      st = returnArrays(this.db.prepare(walkSql(shape, part, limit)))
      this.walkStmts.set(key, st)
    }
    return st
  }

  /** False only when a claim for `types` surely finds nothing and has no expired lease to apply. */
  mayHaveWork (types: readonly string[] | null, now: number): boolean {
    const wanted = types === null ? [] : expandTaskTypes(types)
    // Two index seeks in one statement, where listing the queued types is a recursive query.
    if (wanted.length === 1) return this.s.mayClaimType.get(now, wanted[0])?.x === 1
    // A lease due to expire is work too: the claim applies the expiry.
    const lease = this.s.nextLease.get()?.t
    if (typeof lease === 'number' && lease <= now) return true
    const queued = this.queuedTypes()
    if (queued === null) return true
    if (wanted.length === 0) return queued.size > 0
    return wanted.some(t => queued.has(t))
  }

  /** Distinct types of queued tasks, or null when there are too many to be worth it. */
  queuedTypes (): Set<string> | null {
    const rows = this.s.queuedTypes.all()
    if (rows.length > QUEUED_TYPES_CAP) return null
    return new Set(rows.map(r => str(r.v)))
  }
}
