/**
 * The queue store's inputs and results, as the service op handlers pass them.
 * Field names are the wire names (snake_case) so objects can be sent as they are
 * (wire-protocol.md §7.1).
 */

import type { Backoff, JsonObject, JsonValue, Task, TaskEventKind, TaskStatus } from '../protocol/types.js'

export interface SubmitInput {
  task_type: string
  model_name: string
  payload: JsonObject
  /** Already coerced and clamped by the caller: 1..10. */
  priority: number
  /** 0 = unlimited, else 1..1000. */
  max_attempts: number
  next_attempt_at: number
  idempotency_key: string | null
  /** ★ null/absent = the service's default. */
  backoff?: Backoff | null
  /** ★ null/absent = the service's retention. */
  keep_s?: number | null
  /**
   * ★ The remote peer id that submits (the transport's, authenticated by Noise), which
   * PEER_MAX_TASKS / PEER_MAX_TASK_BYTES bound; null/absent = a local submit (exempt).
   */
  submitter?: string | null
}

export interface SubmitResult {
  task_id: string
  /** true when the idempotency key named an identical earlier submit. */
  replayed: boolean
}

export interface ClaimInput {
  worker_id: string
  /** Scheduler identity (wire-protocol.md §7.4: peer | peer_id | worker_id | transport peer). */
  peer_key: string
  /** '' = claimer has no session. */
  session: string
  /** Alias-expanded, lower-cased task types; null or empty = any. */
  task_types: readonly string[] | null
  lease_s: number
  max_tasks: number
  same_task_type: boolean
  transport_peer_id: string
  peer_hint: string
  /** Claimed tasks whose serialized JSON would pass this many bytes are left queued. */
  max_reply_bytes?: number
}

export interface CompleteInput {
  task_id: string
  status: 'completed' | 'failed' | 'cancelled'
  result: JsonObject | null
  error: string
  /** '' = not given (no owner check). */
  worker_id: string
  /**
   * ★ A `failed` complete with retry true requeues the task with backoff while
   * attempts remain; false or absent fails it for good (the original's behaviour).
   */
  retry?: boolean
}

export interface CompleteResult {
  task_id: string
  replayed: boolean
  /** 'cancel' when a cancelled-status complete on a queued task acted as cancel. */
  cancelled?: boolean
  /** ★ A retried failure: the task is queued again, claimable from this time. */
  retry_at?: number
}

export interface ReleaseInput {
  task_id: string
  worker_id: string
  reason: string
  delay_s: number
}

export interface TaskHeartbeatInput {
  task_id: string
  worker_id: string
  lease_s: number
  progress: JsonObject | null
}

export interface TaskHeartbeatResult {
  task_id: string
  lease_until: number
  heartbeat_at: number
}

export interface ListInput {
  /** null = all statuses. */
  status: string | null
  limit: number
  /** Lower-cased types to match (already alias-expanded when requested); null = any. */
  task_types: readonly string[] | null
  cursor: string | null
  order: 'asc' | 'desc'
  /** Byte budget for the serialized task array. */
  max_bytes: number
}

export interface ListResult {
  tasks: Task[]
  next_cursor: string | null
  truncated: boolean
}

export interface QueueCounts {
  queued: number
  running: number
  queued_by_type: Record<string, number>
  running_by_type: Record<string, number>
}

export interface SweepResult {
  requeued: number
  failed: number
}

/** A scheduler registry entry (wire-protocol.md §7.4 / §8 known_peers). */
export interface PeerEntry {
  peer_id: string
  worker_id: string
  /** Alias-expanded lower-cased types; empty = any. */
  supported_task_types: string[]
  session_id: string
  last_seen: number
  transport_peer_id: string
  peer_hint: string
}

/** Emitted by the store after a committed change, so waiters never poll. */
export interface TaskChange {
  task_id: string
  status: TaskStatus
  task_type: string
  kind: TaskEventKind
  /** Details recorded with the event (attempt, worker_id, error, progress, reason, …). */
  detail?: JsonObject
  /**
   * On a `queued` change: when the task becomes claimable (epoch s). Absent means
   * unknown, and a listener that tracks delayed work must look again.
   */
  next_attempt_at?: number
  /**
   * On a terminal change: the task as committed, read inside the transaction, when
   * `QueueStore.watchesTask` asked for it (a waiter then needs no read of its own).
   */
  task?: Task
}

export interface CacheEntry {
  key: string
  hit: boolean
  value: JsonValue | null
  expires_at: number | null
}
