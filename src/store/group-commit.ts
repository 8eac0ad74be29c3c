/**
 * Write transactions of the queue store, alone or grouped.
 *
 * A commit costs far more than the statements of a typical op (measured on the
 * bench VM: ~150 µs of a submit's ~200 µs went to BEGIN/COMMIT and the WAL page
 * writes), so the service runs the writes that arrive together as one transaction:
 * `group(ops)` executes them in order, each inside its own SAVEPOINT (a failing op
 * rolls back only itself and reports its own error), then commits once. Results are
 * handed back only after the COMMIT, so an acknowledged write is as durable as with
 * one transaction per op, and change events still go out only for committed work.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { immediate, prepareTx, type TxStatements } from './db.js'
import type { TaskChange } from './types.js'

export type GroupOutcome<T> = { ok: true, value: T } | { ok: false, error: unknown }

export class Transactor {
  private readonly s: TxStatements & { savepoint: StatementSync, release: StatementSync, rollbackTo: StatementSync }
  private readonly emit: (change: TaskChange) => void
  /** Called inside every write transaction, before its COMMIT, with the changes it made. */
  private readonly record: (changes: readonly TaskChange[]) => void
  /** Told the duration of every top-level write transaction, COMMIT included (metrics). */
  onCommit: ((seconds: number) => void) | null = null
  /** Changes of the open group transaction; null outside `group`. */
  private groupChanges: TaskChange[] | null = null
  /** Numbers this store's write transactions (see `transaction`). */
  private serial = 0

  constructor (db: DatabaseSync, emit: (change: TaskChange) => void, record: (changes: readonly TaskChange[]) => void = () => {}) {
    this.s = {
      ...prepareTx(db),
      savepoint: db.prepare('SAVEPOINT op'),
      release: db.prepare('RELEASE op'),
      rollbackTo: db.prepare('ROLLBACK TO op')
    }
    this.emit = emit
    this.record = record
  }

  /**
   * The number of the write transaction open now (or last opened): a value read inside
   * one transaction may be reused in it while this stays the same, since the write lock
   * keeps every other connection out until its COMMIT.
   */
  get transaction (): number {
    return this.serial
  }

  /** Whether a group transaction is open (its write lock held). */
  get inGroup (): boolean {
    return this.groupChanges !== null
  }

  /**
   * One write transaction (a savepoint inside an open group); events after the commit.
   *
   * `singleWrite`: `fn` makes at most one write statement and nothing can throw after
   * it. SQLite undoes a failed statement by itself, so a throwing `fn` has changed
   * nothing and, inside a group, needs no savepoint (two statements saved per op:
   * submits and completes are most of a busy group).
   */
  run<T>(fn: (changes: TaskChange[]) => T, singleWrite = false): T {
    const group = this.groupChanges
    const changes: TaskChange[] = []
    if (group !== null && singleWrite) {
      const out = fn(changes)
      for (const c of changes) group.push(c)
      return out
    }
    if (group !== null) {
      this.s.savepoint.run()
      let out: T
      try {
        out = fn(changes)
      } catch (err) {
        try {
          this.s.rollbackTo.run()
          this.s.release.run()
        } catch { /* the group's COMMIT/ROLLBACK settles it */ }
        throw err
      }
      this.s.release.run()
      for (const c of changes) group.push(c)
      return out
    }
    const started = this.onCommit !== null ? performance.now() : 0
    this.serial++
    const out = immediate(this.s, () => {
      const value = fn(changes)
      this.record(changes)
      return value
    })
    if (this.onCommit !== null) this.onCommit((performance.now() - started) / 1000)
    this.publish(changes)
    return out
  }

  /**
   * Runs `ops` in order in one transaction. A throwing op is rolled back alone and
   * gets its error; when the transaction itself cannot start or commit (busy, I/O),
   * nothing is applied and every op gets that error.
   *
   * `more`, called once the ops ran and before the COMMIT with the changes they made,
   * may return further ops for the same transaction (their outcomes follow those of
   * `ops`): a service hands work queued by this transaction to waiting claimers
   * without a second commit. When the transaction never started, `more` is not called
   * and only `ops.length` outcomes come back.
   */
  group<T>(ops: ReadonlyArray<() => T>, more?: (changes: readonly TaskChange[]) => ReadonlyArray<() => T>): Array<GroupOutcome<T>> {
    if (this.groupChanges !== null) throw new Error('group transactions do not nest')
    const changes: TaskChange[] = []
    const outcomes: Array<GroupOutcome<T>> = []
    const run = (list: ReadonlyArray<() => T>): void => {
      for (const op of list) {
        try {
          outcomes.push({ ok: true, value: op() })
        } catch (error) {
          outcomes.push({ ok: false, error })
        }
      }
    }
    let extra = 0
    const started = this.onCommit !== null ? performance.now() : 0
    this.groupChanges = changes
    this.serial++
    try {
      immediate(this.s, () => {
        run(ops)
        if (more !== undefined) {
          const list = more(changes)
          extra = list.length
          run(list)
        }
        this.record(changes)
      })
    } catch (error) {
      return Array.from({ length: ops.length + extra }, () => ({ ok: false, error }))
    } finally {
      this.groupChanges = null
    }
    if (this.onCommit !== null) this.onCommit((performance.now() - started) / 1000)
    this.publish(changes)
    return outcomes
  }

  private publish (changes: TaskChange[]): void {
    for (const c of changes) {
      try {
        this.emit(c)
      } catch (err) {
        // The change is committed; a faulty listener must not make the op look failed.
        process.emitWarning(`task change listener failed: ${(err as Error).message}`)
      }
    }
  }
}
