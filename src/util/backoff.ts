/**
 * The one capped exponential backoff: attempt n (from 0) waits under a ceiling of
 * initial·2ⁿ, capped at max, spread by a jitter so that peers retrying the same
 * thing drift apart. Every retry loop (client requests, worker claims and completes,
 * relay reservations, rendezvous registrations, bootstrap and DHT re-tries) and the
 * queue's task retries (`store/retry-policy.ts`, in seconds) use it.
 */

/**
 * How a delay is drawn from its ceiling c: exactly c (`none`), in [c/2, c) (`half`,
 * the spec's "jittered backoff"), in [0, c) (`full`, config.md's client retries), or
 * in [c, c·(1 + STRETCH_JITTER)) (`stretch`, a failed task's wait: never shorter than
 * its backoff, so `delay_s` stays a floor a handler can rely on).
 */
export type Jitter = 'none' | 'half' | 'full' | 'stretch'

/** How far `stretch` may lengthen a wait: tasks failing together spread over 20 % of it. */
export const STRETCH_JITTER = 0.2

export interface BackoffPolicy {
  readonly initialMs: number
  readonly maxMs: number
  readonly jitter: Jitter
}

/**
 * Past this many doublings every realistic ceiling is capped already (even a task's
 * delay_s of a millisecond against a week's cap), and 2ⁿ stays finite.
 */
const MAX_DOUBLINGS = 40

/** initial·2^attempt, at most max, in the caller's unit (ms for timers, s for task retries). */
export function cappedDoubling (attempt: number, initial: number, max: number): number {
  return Math.min(max, initial * 2 ** Math.min(Math.max(0, attempt), MAX_DOUBLINGS))
}

/** A delay drawn from `ceiling` as `jitter` says. */
export function jittered (ceiling: number, jitter: Jitter, random: () => number = Math.random): number {
  switch (jitter) {
    case 'none': return ceiling
    case 'half': return ceiling / 2 + random() * ceiling / 2
    case 'full': return random() * ceiling
    case 'stretch': return ceiling * (1 + STRETCH_JITTER * random())
  }
}

/** The ceiling of attempt `attempt` (0 = the first retry). */
export function backoffCeiling (attempt: number, policy: BackoffPolicy): number {
  return cappedDoubling(attempt, policy.initialMs, policy.maxMs)
}

/** The delay before retry `attempt` (0 = the first). */
export function backoffDelay (attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return jittered(backoffCeiling(attempt, policy), policy.jitter, random)
}

/** The retry state of one target: how many failures since it last worked. */
export class Backoff {
  private attempt = 0

  constructor (readonly policy: BackoffPolicy) {}

  /** The delay before the next try; each call counts one more failure. */
  next (): number {
    return backoffDelay(this.attempt++, this.policy)
  }

  /** It worked: the next failure starts from the initial delay again. */
  reset (): void {
    this.attempt = 0
  }

  /** The ceiling the next delay is drawn under. */
  get ceilingMs (): number {
    return backoffCeiling(this.attempt, this.policy)
  }
}
