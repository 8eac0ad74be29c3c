/**
 * The queue store's contract, as the service and the conformance suite use it, with
 * two backends: `QueueStore` (embedded SQLite, the default: synchronous, every
 * method returns its value) and `PgQueueStore` (PostgreSQL, `TASK_QUEUE_URL`:
 * asynchronous, methods return promises). Results are `MaybePromise`, so the
 * SQLite path keeps its synchronous calls (and its group commit, which runs store
 * calls inside one transaction) while callers that serve both `await` the result.
 *
 * Semantics are the same on both (test/unit/store-conformance.test.ts runs one suite
 * against each): priority-then-age claims, leases renewed by heartbeat, owner guards,
 * idempotency keys, retries with backoff, delays, pause, retention and the event log.
 */
import type { EventEmitter } from 'node:events'
import type { ClaimedTask, Task } from '../protocol/types.js'
import type { PeerRegistry, PeerTouch } from './peers.js'
import type {
  ClaimInput, CompleteInput, CompleteResult, ListInput, ListResult, PeerEntry, QueueCounts, ReleaseInput,
  SubmitInput, SubmitResult, SweepResult, TaskChange, TaskHeartbeatInput, TaskHeartbeatResult
} from './types.js'
import type { EventPage } from './event-log.js'
import type { SubmitterUsage } from './submitter-usage.js'
import type { StatusTypeCount } from './queue-stats.js'
import type { PausedState, PruneResult, PurgeInput, RetryInput, RetryResult } from './queue-admin.js'

export type MaybePromise<T> = T | Promise<T>

/** Which backend a store is (status, metrics, logs). */
export type StoreBackend = 'sqlite' | 'postgres'

/** A type alias, not an interface: EventEmitter's event map must be index-compatible. */
export type QueueStoreEvents = { change: [TaskChange], resumed: [] }

/** The ★ events op's log (event-log.ts for SQLite). */
export interface TaskEventLog {
  /** Entries kept; 0 = no log. */
  readonly max: number
  readonly enabled: boolean
  read: (cursor: number, limit: number) => MaybePromise<EventPage>
  /** Newest seq (0 = empty). */
  newest: () => MaybePromise<number>
  /** Drops all but the newest `max` entries; returns how many went. */
  trim: () => MaybePromise<number>
}

export interface TaskStore extends Pick<EventEmitter<QueueStoreEvents>, 'on' | 'off' | 'once' | 'emit'> {
  readonly backend: StoreBackend
  /** The claimers this coordinator has seen (in memory; scheduler profiles). */
  readonly registry: PeerRegistry
  readonly leaseS: number
  /** Epoch seconds with fraction; injectable for tests. */
  readonly now: () => number
  readonly events: TaskEventLog
  /** Leases that ran out since this store opened (metrics). */
  leaseExpiries: number
  /**
   * Set by whoever waits on single tasks: true for a task somebody waits on, whose
   * terminal change then carries the committed row (`TaskChange.task`).
   */
  watchesTask: ((taskId: string) => boolean) | null

  submit: (input: SubmitInput) => MaybePromise<SubmitResult>
  /** False only when a claim for `input` surely finds nothing now; records the claimer as live. */
  mayClaim: (input: ClaimInput) => MaybePromise<boolean>
  claim: (input: ClaimInput) => MaybePromise<ClaimedTask[]>
  complete: (input: CompleteInput) => MaybePromise<CompleteResult>
  release: (input: ReleaseInput) => MaybePromise<{ task_id: string }>
  heartbeatTask: (input: TaskHeartbeatInput) => MaybePromise<TaskHeartbeatResult>
  cancel: (taskId: string, reason?: string) => MaybePromise<{ cancelled: boolean }>
  get: (taskId: string) => MaybePromise<Task | null>
  delete: (taskId: string) => MaybePromise<boolean>
  list: (input: ListInput) => MaybePromise<ListResult>
  counts: () => MaybePromise<QueueCounts>
  /** Expired leases (§7.2) and queued tasks with no attempts left (B6). Safe on every coordinator at once. */
  sweep: () => MaybePromise<SweepResult>
  retryTasks: (input: RetryInput) => MaybePromise<RetryResult>
  purge: (input: PurgeInput) => MaybePromise<number>
  pause: (types: readonly string[] | null) => MaybePromise<PausedState>
  resume: (types: readonly string[] | null) => MaybePromise<PausedState>
  paused: () => MaybePromise<PausedState>
  /** One retention batch; never a task `watchesTask` names. */
  prune: (batch?: number) => MaybePromise<PruneResult>
  prunedTotal: () => MaybePromise<number>
  /**
   * Earliest future next_attempt_at of a queued task. Synchronous on both backends:
   * PostgreSQL answers from what its sweeps and change notifications told it (it may
   * be early, never late by more than a sweep).
   */
  nextEligibleAt: () => number | null
  /** Earliest lease expiry of a running task, when known (PostgreSQL: null; its sweep expires leases). */
  nextLeaseExpiryAt: () => number | null
  /** Task counts by status and type (metrics, dashboard; never per request). */
  statusTypeCounts: () => MaybePromise<StatusTypeCount[]>
  /** Seconds the oldest claimable queued task has waited; 0 when none waits. */
  oldestQueuedAgeS: () => MaybePromise<number>
  /** Moves when another process or coordinator committed a change (a wake-up for waiters). */
  dataVersion: () => number
  touchPeer: (t: PeerTouch) => PeerEntry
  /** ★ The unfinished tasks and payload bytes a remote submitter keeps (PEER_MAX_TASKS, PEER_MAX_TASK_BYTES). */
  submitterUsage: (submitter: string) => MaybePromise<SubmitterUsage>
  /** Tells `fn` the duration of every write transaction (metrics); returns the undo. */
  observeCommits: (fn: (seconds: number) => void) => () => void
}
