/**
 * `AbortSignal.timeout` for a computed delay. Node rejects a delay that is not a
 * non-negative integer (`ERR_OUT_OF_RANGE`), and delays computed as a share of a budget
 * (`timeoutMs / 2`), a user's fractional `--timeout 2.5` or a deadline already passed are
 * none of those: a CLI call then died as an internal error instead of timing out.
 */
/** The longest delay setTimeout and AbortSignal.timeout take (~24.8 days); past it Node fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1

export function timeoutSignal (ms: number): AbortSignal {
  const delay = Number.isNaN(ms) ? 0 : Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(ms)))
  return AbortSignal.timeout(delay)
}
