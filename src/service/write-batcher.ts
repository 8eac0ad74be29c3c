/**
 * Group commit for the service (store/group-commit.ts): queue writes that arrive in
 * the same event-loop turn — from any stream or connection — run as one SQLite
 * transaction at the end of the turn (`setImmediate`, i.e. right after the poll
 * phase that delivered them), and each caller's promise settles only after the
 * COMMIT. Under load a batch holds dozens of ops; an isolated request waits only for
 * the rest of its own turn.
 */
import type { QueueStore } from '../store/queue.js'

interface PendingWrite {
  run: () => unknown
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

/** A batch is cut here so one transaction (and the replies waiting on it) stays short. */
const MAX_BATCH = 512

export class WriteBatcher {
  private readonly store: QueueStore
  private pending: PendingWrite[] = []
  private scheduled = false
  /** Ops in the transactions run so far, and how many transactions: for status detail and tests. */
  readonly counters = { ops: 0, commits: 0 }

  constructor (store: QueueStore) {
    this.store = store
  }

  /** Runs `op` (synchronous store calls) in the next group transaction; resolves after its COMMIT. */
  async write<T>(op: () => T): Promise<T> {
    return await new Promise<T>((resolve, reject) => {
      this.pending.push({ run: op, resolve: resolve as (value: unknown) => void, reject })
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(this.flush)
      }
    })
  }

  private readonly flush = (): void => {
    this.scheduled = false
    while (this.pending.length > 0) {
      const batch = this.pending.length > MAX_BATCH ? this.pending.splice(0, MAX_BATCH) : this.pending
      if (batch === this.pending) this.pending = []
      const outcomes = this.store.group(batch.map((p) => p.run))
      this.counters.ops += batch.length
      this.counters.commits++
      for (let i = 0; i < batch.length; i++) {
        const o = outcomes[i]
        if (o.ok) batch[i].resolve(o.value)
        else batch[i].reject(o.error)
      }
    }
  }
}
