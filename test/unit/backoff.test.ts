/** The one capped backoff: ceilings double from the initial delay to the cap, each jitter stays in its band, and reset starts over. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Backoff, STRETCH_JITTER, backoffCeiling, backoffDelay, jittered } from '../../src/util/backoff.js'
import { retryDelayS } from '../../src/store/retry-policy.js'

test('ceilings double from initialMs and stop at maxMs', () => {
  const policy = { initialMs: 1000, maxMs: 60_000, jitter: 'none' } as const
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffCeiling(n, policy)), [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000])
  assert.equal(backoffCeiling(10_000, policy), 60_000, 'huge attempt counts stay finite and capped')
  assert.equal(backoffDelay(3, policy), 8000, 'no jitter: exactly the ceiling')
})

test('half jitter lands in [c/2, c), full jitter in [0, c)', () => {
  const half = { initialMs: 1000, maxMs: 60_000, jitter: 'half' } as const
  const full = { initialMs: 50, maxMs: 5000, jitter: 'full' } as const
  assert.equal(backoffDelay(2, half, () => 0), 2000)
  assert.equal(backoffDelay(2, half, () => 0.999), 3998)
  assert.equal(backoffDelay(2, full, () => 0), 0)
  for (let i = 0; i < 200; i++) {
    const h = backoffDelay(0, half)
    assert.ok(h >= 500 && h < 1000)
    const f = backoffDelay(20, full)
    assert.ok(f >= 0 && f < 5000)
  }
})

test('a Backoff counts failures until reset', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 350, jitter: 'none' })
  assert.equal(b.ceilingMs, 100)
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [100, 200, 350, 350])
  b.reset()
  assert.equal(b.next(), 100)
  assert.equal(b.ceilingMs, 200, 'the ceiling the next delay is drawn under')
})

test('stretch jitter lands in [c, 1.2c): a task never waits less than its backoff', () => {
  assert.equal(jittered(10, 'stretch', () => 0), 10)
  assert.equal(jittered(10, 'stretch', () => 0.5), 11)
  for (let i = 0; i < 200; i++) {
    const d = jittered(4, 'stretch')
    assert.ok(d >= 4 && d < 4 * (1 + STRETCH_JITTER))
  }
})

test('task retries are the one backoff in seconds: delay_s·2^(attempt−1), capped, stretched; fixed is exact', () => {
  // The rule as README "Operating the queue" states it, checked over a grid of settings.
  const rule = (delayS: number, attempt: number, maxS: number, r: number): number =>
    Math.min(maxS, delayS * 2 ** Math.min(Math.max(1, attempt) - 1, 40)) * (1 + 0.2 * r)
  for (const delayS of [0, 0.0005, 0.25, 1, 7, 86400]) {
    for (const attempt of [0, 1, 2, 3, 10, 33, 45, 1000]) {
      for (const maxS of [0, 1, 3600, 86400 * 7]) {
        for (const r of [0, 0.37, 0.999]) {
          assert.equal(retryDelayS({ type: 'exponential', delay_s: delayS }, attempt, maxS, () => r), rule(delayS, attempt, maxS, r), `${delayS} ${attempt} ${maxS} ${r}`)
          assert.equal(retryDelayS({ type: 'fixed', delay_s: delayS }, attempt, maxS, () => r), Math.min(delayS, maxS))
        }
      }
    }
  }
})
