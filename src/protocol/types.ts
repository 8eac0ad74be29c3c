/**
 * The values that cross the wire: JSON, and the task records replies carry. Field names
 * are the wire names (snake_case) so objects can be sent as they are (wire-protocol.md
 * §7.1). The store, the service, the client, the worker and tools all speak these.
 */

export type TaskStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled'
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'cancelled'])

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

/** Full task, as `get`, `list` and `wait` return it. */
export interface Task {
  task_id: string
  task_type: string
  model_name: string
  payload: JsonObject
  status: TaskStatus
  assigned_worker: string | null
  created_at: number
  updated_at: number
  result: JsonValue | null
  error: string | null
  priority: number
  attempt: number
  max_attempts: number
  next_attempt_at: number
  lease_until: number | null
  heartbeat_at: number | null
  idempotency_key: string | null
  /** ★ Each failed attempt, oldest first (at most MAX_TASK_ERRORS). */
  errors: TaskError[]
  /** ★ Retry backoff given at submit; null = the service's default. */
  backoff: Backoff | null
  /** ★ Seconds the task is kept once finished; null = the service's retention. */
  keep_s: number | null
}

export type BackoffType = 'fixed' | 'exponential'
export interface Backoff {
  type: BackoffType
  /** Fixed: every wait; exponential: the first wait, doubled per further attempt. */
  delay_s: number
}

/** What happened to a task; the `kind` of an ★ `events` entry. */
export type TaskEventKind = 'submitted' | 'claimed' | 'progress' | 'released' | 'retried' | 'requeued' |
  'completed' | 'failed' | 'cancelled' | 'pruned'

/** One entry of the ★ `events` reply: the change, then its kind's details (attempt, worker_id, error, …). */
export interface TaskEvent {
  /** The cursor position of this entry. */
  seq: number
  at: number
  kind: TaskEventKind
  task_id: string
  task_type: string
  /** The task's status after the change (for `pruned`: before it). */
  status: TaskStatus
  [detail: string]: unknown
}

/** One failed attempt of a task (★ `errors`). */
export interface TaskError {
  attempt: number
  at: number
  error: string
  worker_id: string | null
}

/** What a claimer receives (wire-protocol.md §7.1 "Claimed task"). */
export interface ClaimedTask {
  task_id: string
  task_type: string
  model_name: string
  payload: JsonObject
  created_at: number
  status: 'running'
  assigned_worker: string
  lease_until: number
  /** ★ The lease granted (seconds): what the worker renews on, whatever it asked for. */
  lease_s?: number
  attempt: number
  max_attempts: number
  priority: number
}
