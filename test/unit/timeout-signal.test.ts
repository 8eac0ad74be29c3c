import { test } from 'node:test'
import assert from 'node:assert/strict'
import { timeoutSignal } from '../../src/util/timeout-signal.js'

test('computed delays that AbortSignal.timeout refuses still give a signal that fires', async () => {
  for (const ms of [1.5, 0.2, -40, Number.NaN]) {
    assert.throws(() => AbortSignal.timeout(ms), { code: 'ERR_OUT_OF_RANGE' }, `node accepts ${ms} now; the helper may be unneeded`)
    const signal = timeoutSignal(ms)
    await new Promise((resolve) => setTimeout(resolve, 10))
    assert.equal(signal.aborted, true, `signal for ${ms} ms fired`)
    assert.equal((signal.reason as Error).name, 'TimeoutError')
  }
})

test('a long delay does not fire early, and one past the timer range is capped instead of refused', () => {
  assert.equal(timeoutSignal(60_000).aborted, false)
  assert.equal(timeoutSignal(Number.POSITIVE_INFINITY).aborted, false)
})
