/**
 * Deterministic scheduler primitives (wire-protocol.md §7.4). Pure: every service
 * that sees the same live peers picks the same owner for a task, so workers polling
 * different services (or the same one) do not fight over tasks.
 */
import { createHash } from 'node:crypto'

/**
 * Kept only for the reply shape of `peer.heartbeat`/`status`. `merkle_root` is the
 * SHA-256 of the UTF-8 text `[["taskqueue-service", 0]]`, i.e. Python's
 * `json.dumps([["taskqueue-service", 0]])` with its default `", "` item separator
 * (the compact `[["taskqueue-service",0]]` hashes differently). See the scheduler test.
 */
export const SCHEDULER_CLOCK = Object.freeze({
  node_id: 'taskqueue-service',
  vector: Object.freeze({ 'taskqueue-service': 0 }),
  merkle_root: 'd83964234cb3f7451644cb8dfbd8a97cb70571490208c3ffcb5b346c43c380fa'
}) as {
  readonly node_id: 'taskqueue-service'
  readonly vector: { readonly 'taskqueue-service': 0 }
  readonly merkle_root: string
}

/** First 8 bytes of SHA-256(UTF-8 `taskId + "\n" + peerKey`), big-endian u64. */
export function schedulerScore (taskId: string, peerKey: string): bigint {
  return createHash('sha256').update(`${taskId}\n${peerKey}`, 'utf8').digest().readBigUInt64BE(0)
}

/** True when candidate `a` (score `sa`) beats `b` (score `sb`): higher score, tie → smaller identity. */
export function beats (sa: bigint, a: string, sb: bigint, b: string): boolean {
  if (sa !== sb) return sa > sb
  return a < b
}

/** The owner of `taskId` among `candidates`; null when there are none. */
export function pickOwner (taskId: string, candidates: readonly string[]): string | null {
  // A sole candidate wins whatever its score: no hash needed (the usual single-worker case).
  if (candidates.length <= 1) return candidates[0] ?? null
  let best: string | null = null
  let bestScore = 0n
  for (const c of candidates) {
    const s = schedulerScore(taskId, c)
    if (best === null || beats(s, c, bestScore, best)) {
      best = c
      bestScore = s
    }
  }
  return best
}

/**
 * Whether `self` owns `taskId` against `others` (which may include `self`). Stops at
 * the first candidate that beats `self`, so the common "not mine" answer costs about
 * two hashes instead of one per candidate.
 */
export function isOwner (taskId: string, self: string, others: Iterable<string>): boolean {
  const mine = schedulerScore(taskId, self)
  for (const c of others) {
    if (c === self) continue
    if (beats(schedulerScore(taskId, c), c, mine, self)) return false
  }
  return true
}
