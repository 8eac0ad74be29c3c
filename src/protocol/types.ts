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
  attempt: number
  max_attempts: number
  priority: number
}
