/**
 * Turns the store's committed-change events into wake-ups for `wait`, worker-routed
 * tool calls and long-poll claims, so nothing in the service sleeps and re-reads.
 *
 * Writes made by another process sharing the SQLite file (a local `worker --queue`)
 * raise no in-process event; while anybody is waiting we watch `PRAGMA data_version`
 * (a cheap counter read) and wake every waiter when it moves.
 */
import type { QueueStore } from '../store/queue.js'
import type { TaskChange } from '../store/types.js'
import { TERMINAL_STATUSES } from '../store/types.js'

type Wake = () => void

const EXTERNAL_CHECK_MS = 100

export class TaskEvents {
  private readonly store: QueueStore
  private readonly byTask = new Map<string, Set<Wake>>()
  private readonly workWaiters = new Set<Wake>()
  private externalTimer: NodeJS.Timeout | undefined
  private lastDataVersion = 0
  private isClosed = false
  private readonly onChange = (change: TaskChange): void => {
    if (change.status === 'queued') this.wakeWork()
    if (TERMINAL_STATUSES.has(change.status)) {
      const set = this.byTask.get(change.task_id)
      if (set !== undefined) for (const wake of [...set]) wake()
    }
  }

  constructor (store: QueueStore) {
    this.store = store
    store.on('change', this.onChange)
  }

  /** After close every wait returns at once; loops must stop re-parking. */
  get closed (): boolean {
    return this.isClosed
  }

  close (): void {
    this.isClosed = true
    this.store.off('change', this.onChange)
    if (this.externalTimer !== undefined) clearInterval(this.externalTimer)
    this.externalTimer = undefined
    this.wakeAll()
  }

  /** Resolves when `taskId` reaches a terminal status, the timeout passes, or the signal fires. */
  untilTerminal (taskId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.park(timeoutMs, signal, (wake) => {
      let set = this.byTask.get(taskId)
      if (set === undefined) {
        set = new Set()
        this.byTask.set(taskId, set)
      }
      set.add(wake)
      return () => {
        set.delete(wake)
        if (set.size === 0) this.byTask.delete(taskId)
      }
    })
  }

  /**
   * Resolves when work may have become claimable: a task was queued, a delayed task
   * reached its next_attempt_at, or `recheckMs` passed (deterministic-scheduler steals).
   * `onPark` receives a function that ends this wait at once (a work handoff).
   */
  untilWork (timeoutMs: number, signal?: AbortSignal, opts: { recheckMs?: number, onPark?: (wake: () => void) => void } = {}): Promise<void> {
    const nextAt = this.store.nextEligibleAt()
    let ms = Math.min(timeoutMs, opts.recheckMs ?? 1000)
    if (nextAt !== null) ms = Math.min(ms, Math.max(0, nextAt * 1000 - Date.now()) + 5)
    return this.park(ms, signal, (wake) => {
      this.workWaiters.add(wake)
      opts.onPark?.(wake)
      return () => this.workWaiters.delete(wake)
    })
  }

  private wakeWork (): void {
    for (const wake of [...this.workWaiters]) wake()
  }

  private wakeAll (): void {
    this.wakeWork()
    for (const set of [...this.byTask.values()]) for (const wake of [...set]) wake()
  }

  /**
   * Plain functions, not async ones, down to here: the waiter's `await` is then the
   * only step between a wake-up and its code running, so a woken claimer's reply is
   * queued before the replies of the ops that woke it.
   */
  private park (timeoutMs: number, signal: AbortSignal | undefined, subscribe: (wake: Wake) => () => void): Promise<void> {
    if (this.isClosed || signal?.aborted === true || timeoutMs <= 0) return Promise.resolve()
    return new Promise<void>((resolve) => {
      let unsubscribe: () => void = () => {}
      let settled = false
      const done = (): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        unsubscribe()
        this.updateExternalWatch()
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      signal?.addEventListener('abort', done, { once: true })
      unsubscribe = subscribe(done)
      this.updateExternalWatch()
    })
  }

  /** Runs the data_version watch only while somebody is parked. */
  private updateExternalWatch (): void {
    const waiting = this.workWaiters.size > 0 || this.byTask.size > 0
    if (waiting && this.externalTimer === undefined) {
      this.lastDataVersion = this.store.dataVersion()
      this.externalTimer = setInterval(() => {
        const v = this.store.dataVersion()
        if (v !== this.lastDataVersion) {
          this.lastDataVersion = v
          this.wakeAll()
        }
      }, EXTERNAL_CHECK_MS)
      this.externalTimer.unref()
    } else if (!waiting && this.externalTimer !== undefined) {
      clearInterval(this.externalTimer)
      this.externalTimer = undefined
    }
  }
}
