/**
 * When a failed attempt runs again (★ retries) and how long finished tasks are kept
 * (★ retention): the queue's policies, pure functions of their settings so every
 * backend (service, local worker) applies the same ones.
 */
import { TaskQueueError } from '../protocol/errors.js'
import type { Backoff, TaskStatus } from '../protocol/types.js'
import { isPlainObject } from '../protocol/json.js'
import { STRETCH_JITTER, cappedDoubling, jittered } from '../util/backoff.js'

export interface RetryPolicy {
  /** The backoff of tasks submitted without one. */
  backoff: Backoff
  /** No wait is longer than this (seconds). */
  maxDelayS: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { backoff: { type: 'exponential', delay_s: 1 }, maxDelayS: 3600 }

/** Exponential waits are stretched by up to this fraction (util/backoff.ts `stretch`), so tasks failing together spread out. */
export const RETRY_JITTER = STRETCH_JITTER

/**
 * Seconds to wait before attempt `failedAttempt + 1`. Fixed: exactly `delay_s`.
 * Exponential: the one capped backoff (util/backoff.ts) in seconds, `delay_s * 2^(failedAttempt - 1)`
 * capped at `maxDelayS`, stretched by up to RETRY_JITTER; never shorter than the un-jittered wait.
 */
export function retryDelayS (backoff: Backoff, failedAttempt: number, maxDelayS: number, random: () => number = Math.random): number {
  const base = Math.max(0, backoff.delay_s)
  if (backoff.type === 'fixed') return Math.min(base, maxDelayS)
  const n = Math.max(1, Math.trunc(failedAttempt))
  return jittered(cappedDoubling(n - 1, base, maxDelayS), 'stretch', random)
}

/** A `backoff` from the wire: `{type: fixed|exponential, delay_s ≥ 0}`; typed error otherwise. */
export function parseBackoff (v: unknown): Backoff {
  const bad = (why: string): TaskQueueError => new TaskQueueError('invalid_params', `backoff ${why}`)
  if (!isPlainObject(v)) throw bad('must be an object {type, delay_s}')
  const type = v.type ?? 'exponential'
  if (type !== 'fixed' && type !== 'exponential') throw bad('type must be "fixed" or "exponential"')
  const delay = v.delay_s ?? v.delay ?? DEFAULT_RETRY_POLICY.backoff.delay_s
  if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0 || delay > 86400) throw bad('delay_s must be a number of seconds in 0..86400')
  return { type, delay_s: delay }
}

/** How long finished tasks are kept. 0 = by age never; maxFinished 0 = no count bound. */
export interface RetentionPolicy {
  completedS: number
  /** Failed and cancelled tasks. */
  failedS: number
  maxFinished: number
}

/** A week, and a bound on the file: 100,000 finished tasks. */
export const DEFAULT_RETENTION: RetentionPolicy = { completedS: 7 * 86400, failedS: 7 * 86400, maxFinished: 100_000 }

/** The retention (seconds) of a task finishing with `status`; null = kept (unless it has keep_s). */
export function retentionOf (policy: RetentionPolicy, status: TaskStatus): number | null {
  const s = status === 'completed' ? policy.completedS : policy.failedS
  return s > 0 ? s : null
}
