/**
 * What a submit and a ★ `submit_many` carry on the wire, shared by RemoteQueue and
 * `p2p-rpc task-submit-many` (no libp2p here, so the CLI can use it before it loads one).
 */
import { MAX_BATCH_ITEMS, uuidV7 } from '../protocol/ids.js'
import type { Backoff, JsonObject } from '../protocol/types.js'
import { ProtocolError } from './errors.js'

export interface SubmitRequest {
  task_type: string
  model_name?: string
  payload?: JsonObject
  priority?: number
  idempotency_key?: string
  max_attempts?: number
  /** ★ Claimable this many seconds after the service receives it. */
  delay_s?: number
  /** ★ Claimable from this time (epoch seconds). */
  run_at?: number
  /** ★ Retry backoff of this task (default: the service's). */
  backoff?: Backoff
  /** ★ Seconds the task is kept once finished (default: the service's retention). */
  keep_s?: number
}

/**
 * A submit's wire fields; the queue keys travel in the payload, as the original reads
 * them. The idempotency key is made here, once, so every retry carries the same (B8).
 */
export function submitFields (task: SubmitRequest): Record<string, unknown> {
  const payload: JsonObject = { ...(task.payload ?? {}) }
  payload.idempotency_key = task.idempotency_key ?? (typeof payload.idempotency_key === 'string' && payload.idempotency_key !== '' ? payload.idempotency_key : `auto-${uuidV7()}`)
  if (task.priority !== undefined) payload.priority = task.priority
  if (task.max_attempts !== undefined) payload.max_attempts = task.max_attempts
  const fields: Record<string, unknown> = { task_type: task.task_type, model_name: task.model_name ?? '', payload }
  // ★ keys are top-level (an original service ignores them); absent ones are not sent.
  for (const k of ['delay_s', 'run_at', 'backoff', 'keep_s'] as const) if (task[k] !== undefined) fields[k] = task[k]
  return fields
}

/** One item's outcome of a `submit_many`, in the order of the items sent. */
export type SubmitManyResult =
  | { ok: true, task_id: string, replayed: boolean }
  | { ok: false, error: string, detail?: string, retryable: boolean, limit?: string }

/** JSON bytes of one `submit_many` request's items, kept well under the 1 MiB frame. */
const SUBMIT_MANY_BYTE_BUDGET = 960 * 1024

/**
 * Cuts submit wire fields into `submit_many` requests of at most MAX_BATCH_ITEMS items
 * and about SUBMIT_MANY_BYTE_BUDGET bytes each (an item larger than that goes alone,
 * and the service answers it as it answers any oversized frame).
 */
export function submitManyChunks (items: Array<Record<string, unknown>>): Array<Array<Record<string, unknown>>> {
  const chunks: Array<Array<Record<string, unknown>>> = []
  let chunk: Array<Record<string, unknown>> = []
  let bytes = 0
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1
    if (chunk.length > 0 && (chunk.length >= MAX_BATCH_ITEMS || bytes + size > SUBMIT_MANY_BYTE_BUDGET)) {
      chunks.push(chunk)
      chunk = []
      bytes = 0
    }
    chunk.push(item)
    bytes += size
  }
  if (chunk.length > 0) chunks.push(chunk)
  return chunks
}

/** One outcome from a `submit_many` reply item or a `submit` reply. */
export function submitManyResult (r: unknown): SubmitManyResult {
  if (typeof r !== 'object' || r === null) throw new ProtocolError('submit_many reply item is not an object')
  const o = r as Record<string, unknown>
  if (o.ok === true && typeof o.task_id === 'string') return { ok: true, task_id: o.task_id, replayed: o.replayed === true }
  const out: SubmitManyResult = { ok: false, error: typeof o.error === 'string' && o.error !== '' ? o.error : 'remote_error', retryable: o.retryable === true }
  if (typeof o.detail === 'string') out.detail = o.detail
  // ★ The per-peer bound a `rate_limited` item hit (PEER_MAX_TASKS, PEER_MAX_TASK_BYTES).
  if (typeof o.limit === 'string') out.limit = o.limit
  return out
}

/** The per-item results of an ok `submit_many` reply to `sent` items. */
export function submitManyResults (reply: Record<string, unknown>, sent: number): SubmitManyResult[] {
  if (!Array.isArray(reply.results) || reply.results.length !== sent) throw new ProtocolError('submit_many reply does not match the request')
  return reply.results.map(submitManyResult)
}
