/**
 * The owner and status rules of complete, release and heartbeat (wire-protocol.md
 * §7.1, B5), as pure decisions over a task's stored fields, so both backends apply
 * exactly the same ones.
 */
import { TaskQueueError } from '../protocol/errors.js'
import { isJsonObject } from '../protocol/json.js'
import type { CompleteInput } from './types.js'

/** Whether the task's latest recorded failure (`errors` JSON text) is `worker`'s, of attempt `attempt`. */
export function lastFailureBy (errorsText: unknown, attempt: number, worker: string): boolean {
  if (worker === '' || errorsText == null) return false
  const list = JSON.parse(String(errorsText)) as unknown
  const last = Array.isArray(list) ? list[list.length - 1] as unknown : undefined
  return isJsonObject(last) && last.worker_id === worker && last.attempt === attempt
}

/** Release and heartbeat: the task must be running and owned by `worker`. */
export function assertOwnedRunning (id: string, owner: string | null, status: string, worker: string): void {
  if (owner !== null && owner !== worker) throw new TaskQueueError('not_owner', `task ${id} is assigned to another worker`)
  if (status !== 'running') throw new TaskQueueError('task_not_running', `task ${id} is ${status}`)
  if (owner !== worker) throw new TaskQueueError('not_owner', `task ${id} is assigned to another worker`)
}

/**
 * The guarded path of complete: `run` (apply it to the running task), `replayed` (a
 * resent complete that already took effect), `cancel` (a cancelled-status complete on
 * a queued task acts as cancel), or a typed refusal.
 */
export function completeGuard (id: string, input: CompleteInput, owner: string | null, status: string, lastFailureIsCallers: () => boolean): 'run' | 'replayed' | 'cancel' {
  if (input.worker_id !== '' && owner !== null && owner !== input.worker_id) {
    throw new TaskQueueError('not_owner', `task ${id} is assigned to another worker`)
  }
  if (status === 'running') return 'run'
  // A resent failure that was already retried (the task waits for its next attempt).
  if (input.status === 'failed' && status === 'queued' && lastFailureIsCallers()) return 'replayed'
  if (input.status === 'cancelled' && status === 'queued') return 'cancel'
  if (status === input.status) return 'replayed'
  throw new TaskQueueError('task_not_running', `task ${id} is ${status}`)
}
