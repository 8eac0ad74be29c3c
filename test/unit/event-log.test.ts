import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fixture, sub } from '../helpers/store-fixture.js'
import { EVENT_BOUNDS_SQL } from '../../src/store/event-log.js'

test('the event log\'s bounds follow appends and trims, and are read from the ends of the log, not by a scan', () => {
  const f = fixture({ eventsMax: 5 })
  try {
    const log = f.q.events
    assert.equal(log.newest(), 0, 'empty log')
    for (let i = 0; i < 8; i++) f.q.submit(sub({ payload: { i } }))
    assert.equal(log.newest(), 8)
    assert.equal(log.trim(), 3, 'trimmed to the newest five')
    const page = log.read(0, 10)
    assert.equal(page.oldest, 4)
    assert.equal(page.gap, true, 'a cursor before the oldest entry is told it missed some')
    assert.deepEqual(page.events.map((e) => e.seq), [4, 5, 6, 7, 8])
    assert.equal(log.read(8, 10).cursor, 8, 'reading at the end stays at the end')

    // status and every events read ask for the bounds; a scan of a 100,000-entry log
    // measured ~10–20 ms per call, stalling every request behind it.
    const plan = f.db.prepare(`EXPLAIN QUERY PLAN ${EVENT_BOUNDS_SQL}`).all().map((r) => String(r.detail))
    assert.ok(plan.some((d) => d.startsWith('SEARCH task_events')), plan.join(' | '))
    assert.ok(plan.every((d) => !d.startsWith('SCAN task_events')), plan.join(' | '))
  } finally {
    f.close()
  }
})
