/**
 * How ops write on the PostgreSQL store: each write is its own transaction (the store
 * makes one per call), run as soon as it arrives, many at once over the store's pool.
 * There is no handoff of new work to parked claimers inside the submitting transaction
 * as on SQLite (write-batcher.ts): a parked claimer is woken by the change event (this
 * coordinator's, or another's through LISTEN/NOTIFY, task-events.ts) and claims with
 * SKIP LOCKED like everybody else.
 *
 * One race is closed here: work queued while a claim was running (its snapshot did not
 * see it, and its change event arrived before the claimer parked) would wake nobody.
 * Every queued change bumps `generation`; a claim that found nothing (or a long-poll
 * claimer whose `mayClaim` read said there is nothing) parks only when no change arrived
 * while it ran, and otherwise looks again.
 */
import type { ClaimedTask } from '../protocol/types.js'
import type { TaskStore } from '../store/task-store.js'
import type { TaskChange } from '../store/types.js'
import type { ParkedClaim, QueueWrites } from './write-batcher.js'

export class PgWrites implements QueueWrites {
  readonly counters = { ops: 0, commits: 0, handoffs: 0 }
  private readonly parked = new Set<ParkedClaim>()
  private generation = 0
  private readonly store: TaskStore
  private readonly onChange = (c: TaskChange): void => {
    if (c.status === 'queued' && c.kind !== 'pruned') this.generation++
  }

  private readonly onResumed = (): void => { this.generation++ }

  constructor (store: TaskStore) {
    this.store = store
    store.on('change', this.onChange)
    store.on('resumed', this.onResumed)
  }

  close (): void {
    this.store.off('change', this.onChange)
    this.store.off('resumed', this.onResumed)
  }

  async write<T>(op: () => T): Promise<Awaited<T>> {
    this.counters.ops++
    this.counters.commits++
    return await op()
  }

  async claim (claimer: ParkedClaim, park: boolean): Promise<ClaimedTask[]> {
    for (;;) {
      const seen = this.generation
      // A long-poll claimer with surely nothing to take (an idle worker's claim after each
      // complete) parks after one read instead of a claim transaction that writes nothing:
      // on the round trip that was one transaction of four, two database round trips.
      if (park && !await claimer.mayClaim()) {
        if (seen === this.generation) {
          this.parked.add(claimer)
          return []
        }
        continue
      }
      this.counters.ops++
      this.counters.commits++
      const tasks = await claimer.claim()
      if (tasks.length > 0 || !park) return tasks
      if (seen === this.generation) {
        this.parked.add(claimer)
        return []
      }
    }
  }

  unpark (claimer: ParkedClaim): void {
    this.parked.delete(claimer)
  }

  get parkedClaims (): number {
    return this.parked.size
  }
}
