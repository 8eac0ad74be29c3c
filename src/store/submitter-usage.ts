/**
 * ★ What one remote peer keeps unfinished in the queue (README "Security", per-peer
 * limits): its queued and running tasks and their payload bytes, bounded by
 * PEER_MAX_TASKS and PEER_MAX_TASK_BYTES. Each task records its submitter (the
 * transport peer id authenticated by Noise); the backends keep a running total per
 * submitter with triggers (db.ts migration 3 → 4, pg/schema.ts migration 2 → 3), so a
 * submit reads one small row instead of counting the queue. Local submits (the
 * library, the embedded worker, the dashboard) carry no submitter and are exempt.
 */
import { TaskQueueError } from '../protocol/errors.js'

export interface SubmitterLimits {
  /** Unfinished (queued + running) tasks one remote peer may have; 0 = no bound. */
  readonly maxTasks: number
  /** UTF-8 bytes of those tasks' payloads; 0 = no bound. */
  readonly maxBytes: number
}

export const NO_SUBMITTER_LIMITS: SubmitterLimits = Object.freeze({ maxTasks: 0, maxBytes: 0 })

export interface SubmitterUsage {
  tasks: number
  bytes: number
}

/** The setting a refusal names, in the reply's `limit` field. */
export type SubmitterLimitName = 'PEER_MAX_TASKS' | 'PEER_MAX_TASK_BYTES'

export function limitsOn (limits: SubmitterLimits): boolean {
  return limits.maxTasks > 0 || limits.maxBytes > 0
}

/** Which bound one more task of `payloadBytes` would pass, or null when it fits. */
export function exceededLimit (usage: SubmitterUsage, payloadBytes: number, limits: SubmitterLimits): SubmitterLimitName | null {
  if (limits.maxTasks > 0 && usage.tasks + 1 > limits.maxTasks) return 'PEER_MAX_TASKS'
  if (limits.maxBytes > 0 && usage.bytes + payloadBytes > limits.maxBytes) return 'PEER_MAX_TASK_BYTES'
  return null
}

/**
 * The refusal: `rate_limited`, retryable (the peer may submit again once some of its
 * tasks finish), with `limit` naming the setting. Counted as reason `quota`.
 */
export function quotaRefusal (limit: SubmitterLimitName, usage: SubmitterUsage, limits: SubmitterLimits): TaskQueueError {
  const detail = limit === 'PEER_MAX_TASKS'
    ? `this peer already has ${usage.tasks} unfinished tasks (${limit}=${limits.maxTasks}); submit again when some finish`
    : `this peer's unfinished tasks already hold ${usage.bytes} payload bytes (${limit}=${limits.maxBytes}); submit again when some finish`
  return new TaskQueueError('rate_limited', detail, { limit })
}

/** The settings a quota refusal may name: dispatch counts those as reason `quota`. */
export const QUOTA_LIMITS: ReadonlySet<string> = new Set<string>(['PEER_MAX_TASKS', 'PEER_MAX_TASK_BYTES', 'PEER_MAX_CACHE_BYTES'])
