/**
 * Turns the store's committed-change events into wake-ups for `wait`, worker-routed
 * tool calls and long-poll claims, so nothing in the service sleeps and re-reads.
 *
 * Writes made by another process sharing the SQLite file (a local `worker --queue`)
 * raise no in-process event; while anybody is waiting we watch `PRAGMA data_version`
 * (a cheap counter read) and wake every waiter when it moves.
 *
 * Both reads a park would need are kept out of the park itself, because an idle
 * worker and a waiting client park once per task each: every standalone SQLite read
 * opens and closes a WAL read transaction (measured ~10 µs in a tight loop, ~30 µs
 * under the round-trip bench). The watch outlives its last waiter by
 * EXTERNAL_LINGER_TICKS, so back-to-back parks neither restart it nor re-read its
 * baseline (an older baseline can only wake more, never miss), and the earliest
 * delayed task is remembered and advanced from the store's own change events.
 */
import type { TaskStore } from '../store/task-store.js'
import type { Task } from '../protocol/types.js'
import type { TaskChange } from '../store/types.js'
import { TERMINAL_STATUSES } from '../protocol/types.js'

/** Ends a park; a task's waiters may be handed the task as committed. */
type Wake = (task?: Task) => void

const EXTERNAL_CHECK_MS = 100
/** Terminal task ids remembered for consumeTerminal (only what raced a read matters). */
const RECENT_TERMINAL_MAX = 4096
/** Watch ticks without a waiter before the data_version watch stops (2 s). */
export const EXTERNAL_LINGER_TICKS = 20

export class TaskEvents {
  private readonly store: TaskStore
  private readonly byTask = new Map<string, Set<Wake>>()
  private readonly workWaiters = new Set<Wake>()
  /** ★ `events` long-polls: woken by any change at all. */
  private readonly changeWaiters = new Set<Wake>()
  private externalTimer: NodeJS.Timeout | undefined
  private lastDataVersion = 0
  /** Watch ticks in a row that found nobody waiting. */
  private idleTicks = 0
  /**
   * Earliest future next_attempt_at of a queued task (epoch s), null for none,
   * undefined when unknown. It may be too early (that task was claimed or cancelled
   * since): a waiter then wakes once for nothing and the value is read again.
   */
  private delayedAt: number | null | undefined = undefined
  private isClosed = false
  /** Changes heard so far: a reader that awaited its read compares before parking (changeCount). */
  private changes = 0
  /**
   * Tasks whose terminal change was heard, kept only for an asynchronous store
   * (PostgreSQL): a waiter that read the task while its completion was being
   * announced would otherwise park after the wake-up it needed (consumeTerminal).
   */
  private readonly recentTerminal: Set<string> | null
  private readonly onChange = (change: TaskChange): void => {
    this.changes++
    if (this.changeWaiters.size > 0) for (const wake of [...this.changeWaiters]) wake()
    if (change.kind === 'pruned') return
    if (change.status === 'queued') {
      this.noteQueued(change.next_attempt_at)
      this.wakeWork()
    }
    if (TERMINAL_STATUSES.has(change.status)) {
      if (this.recentTerminal !== null) this.rememberTerminal(change.task_id)
      const set = this.byTask.get(change.task_id)
      if (set !== undefined) for (const wake of [...set]) wake(change.task)
    }
  }

  constructor (store: TaskStore) {
    this.store = store
    this.recentTerminal = store.backend === 'sqlite' ? null : new Set()
    store.on('change', this.onChange)
    store.on('resumed', this.onResumed)
    store.watchesTask = (taskId) => this.byTask.has(taskId)
  }

  /** How many changes were heard so far (compare before and after an awaited read). */
  get changeCount (): number {
    return this.changes
  }

  /**
   * True once for a task whose terminal change was heard since the last call: a
   * waiter whose (awaited) read still showed it unfinished looks again instead of
   * parking. Always false on SQLite, whose reads do not yield.
   */
  consumeTerminal (taskId: string): boolean {
    return this.recentTerminal?.delete(taskId) === true
  }

  private rememberTerminal (taskId: string): void {
    const recent = this.recentTerminal
    if (recent === null) return
    recent.add(taskId)
    if (recent.size > RECENT_TERMINAL_MAX) {
      const oldest = recent.values().next().value
      if (oldest !== undefined) recent.delete(oldest)
    }
  }

  /** A resumed queue or type: parked claimers look again. */
  private readonly onResumed = (): void => { this.wakeWork() }

  /** After close every wait returns at once; loops must stop re-parking. */
  get closed (): boolean {
    return this.isClosed
  }

  close (): void {
    this.isClosed = true
    this.store.off('change', this.onChange)
    this.store.off('resumed', this.onResumed)
    this.store.watchesTask = null
    if (this.externalTimer !== undefined) clearInterval(this.externalTimer)
    this.externalTimer = undefined
    this.wakeAll()
  }

  /**
   * Resolves when `taskId` reaches a terminal status, the timeout passes, or the
   * signal fires: with the task as committed when its change carried it, else null
   * (look it up).
   */
  untilTerminal (taskId: string, timeoutMs: number, signal?: AbortSignal): Promise<Task | null> {
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
   * Resolves with null (nothing to hand over; the caller claims).
   */
  untilWork (timeoutMs: number, signal?: AbortSignal, opts: { recheckMs?: number, onPark?: (wake: () => void) => void } = {}): Promise<Task | null> {
    const nextAt = this.nextDelayedAt()
    let ms = Math.min(timeoutMs, opts.recheckMs ?? 1000)
    if (nextAt !== null) ms = Math.min(ms, Math.max(0, nextAt * 1000 - Date.now()) + 5)
    return this.park(ms, signal, (wake) => {
      this.workWaiters.add(wake)
      opts.onPark?.(wake)
      return () => this.workWaiters.delete(wake)
    })
  }

  /** Resolves at the next change of any task (★ events), the timeout, or the signal. */
  untilChange (timeoutMs: number, signal?: AbortSignal): Promise<Task | null> {
    return this.park(timeoutMs, signal, (wake) => {
      this.changeWaiters.add(wake)
      return () => this.changeWaiters.delete(wake)
    })
  }

  /** The cached earliest delayed task, read again when unknown or already due. */
  private nextDelayedAt (): number | null {
    const known = this.delayedAt
    if (known === undefined || (known !== null && known * 1000 <= Date.now())) {
      this.delayedAt = this.store.nextEligibleAt()
      return this.delayedAt
    }
    return known
  }

  private noteQueued (nextAttemptAt: number | undefined): void {
    if (nextAttemptAt === undefined) {
      this.delayedAt = undefined
      return
    }
    const known = this.delayedAt
    // Due now: the wake-up that follows covers it; the cache holds only future times.
    if (known === undefined || nextAttemptAt * 1000 <= Date.now()) return
    this.delayedAt = known === null ? nextAttemptAt : Math.min(known, nextAttemptAt)
  }

  private wakeWork (): void {
    for (const wake of [...this.workWaiters]) wake()
  }

  private wakeAll (): void {
    this.wakeWork()
    for (const wake of [...this.changeWaiters]) wake()
    for (const set of [...this.byTask.values()]) for (const wake of [...set]) wake()
  }

  /**
   * Plain functions, not async ones, down to here: the waiter's `await` is then the
   * only step between a wake-up and its code running, so a woken claimer's reply is
   * queued before the replies of the ops that woke it.
   */
  private park (timeoutMs: number, signal: AbortSignal | undefined, subscribe: (wake: Wake) => () => void): Promise<Task | null> {
    if (this.isClosed || signal?.aborted === true || timeoutMs <= 0) return Promise.resolve(null)
    return new Promise<Task | null>((resolve) => {
      let unsubscribe: () => void = () => {}
      let settled = false
      const done = (task?: Task): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onEnd)
        unsubscribe()
        resolve(task ?? null)
      }
      // Timer and abort end the park without a task (the listener would pass an Event).
      const onEnd = (): void => { done() }
      const timer = setTimeout(onEnd, timeoutMs)
      signal?.addEventListener('abort', onEnd, { once: true })
      unsubscribe = subscribe(done)
      this.updateExternalWatch()
    })
  }

  private get waiting (): boolean {
    return this.workWaiters.size > 0 || this.byTask.size > 0 || this.changeWaiters.size > 0
  }

  /**
   * Whether the data_version watch runs. While it does, every commit another process
   * makes from now on wakes every waiter, so a new waiter need not look first.
   */
  get watchingExternal (): boolean {
    return this.externalTimer !== undefined
  }

  /** Starts the data_version watch for a new waiter; it stops itself once nobody waits. */
  private updateExternalWatch (): void {
    if (!this.waiting || this.externalTimer !== undefined || this.isClosed) return
    this.lastDataVersion = this.store.dataVersion()
    this.idleTicks = 0
    this.externalTimer = setInterval(this.checkExternal, EXTERNAL_CHECK_MS)
    this.externalTimer.unref()
  }

  private readonly checkExternal = (): void => {
    const v = this.store.dataVersion()
    if (v !== this.lastDataVersion) {
      this.lastDataVersion = v
      // Another process wrote: what it queued raised no change event here.
      this.delayedAt = undefined
      this.wakeAll()
    }
    if (this.waiting) {
      this.idleTicks = 0
    } else if (++this.idleTicks >= EXTERNAL_LINGER_TICKS) {
      clearInterval(this.externalTimer)
      this.externalTimer = undefined
    }
  }
}
