/**
 * The one capped exponential backoff: attempt n (from 0) waits under a ceiling of
 * initialMs·2ⁿ, capped at maxMs, spread by a jitter so that peers retrying the same
 * thing drift apart. Every retry loop (client requests, worker claims and completes,
 * relay reservations, rendezvous registrations, bootstrap and DHT re-tries) uses it.
 */

/**
 * How a delay is drawn under its ceiling c: exactly c (`none`), in [c/2, c) (`half`,
 * the spec's "jittered backoff"), or in [0, c) (`full`, config.md's client retries).
 */
export type Jitter = 'none' | 'half' | 'full'

export interface BackoffPolicy {
  readonly initialMs: number
  readonly maxMs: number
  readonly jitter: Jitter
}

/** Past this many doublings every realistic ceiling is capped already (and 2ⁿ stays finite). */
const MAX_DOUBLINGS = 30

/** The ceiling of attempt `attempt` (0 = the first retry). */
export function backoffCeiling (attempt: number, policy: BackoffPolicy): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(0, attempt), MAX_DOUBLINGS))
}

/** The delay before retry `attempt` (0 = the first). */
export function backoffDelay (attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(attempt, policy)
  switch (policy.jitter) {
    case 'none': return ceiling
    case 'half': return ceiling / 2 + random() * ceiling / 2
    case 'full': return random() * ceiling
  }
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
