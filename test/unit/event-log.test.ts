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

test('a group commit records its changes in order, as single writes would, with created_at strictly increasing', () => {
  const f = fixture()
  try {
    const odd = 'odd\uD800type'
    // A group of submits and a lone submit; one op of the group fails and records nothing.
    const out = f.q.group([
      () => f.q.submit(sub({ task_type: 'a', payload: { i: 1 } })),
      () => f.q.submit(sub({ task_type: 'b', payload: { i: 2 }, next_attempt_at: 4e9 })),
      () => { throw new Error('this op fails alone') },
      () => f.q.submit(sub({ task_type: 'c', payload: { i: 3 } }))
    ])
    assert.deepEqual(out.map((o) => o.ok), [true, true, false, true])
    f.q.submit(sub({ task_type: 'd' }))
    // A type with an unpaired surrogate is stored as SQLite stores a bound string.
    f.q.group([() => f.q.submit(sub({ task_type: odd })), () => f.q.submit(sub({ task_type: 'e' }))])
    const events = f.q.events.read(0, 100).events
    assert.deepEqual(events.map((e) => [e.seq, e.kind, e.task_type]),
      [[1, 'submitted', 'a'], [2, 'submitted', 'b'], [3, 'submitted', 'c'], [4, 'submitted', 'd'], [5, 'submitted', 'odd\uFFFDtype'], [6, 'submitted', 'e']])
    assert.equal(events[1].next_attempt_at, 4e9, 'a change\'s detail is kept')
    const ids = out.filter((o) => o.ok).map((o) => (o as { value: { task_id: string } }).value.task_id)
    assert.deepEqual(events.slice(0, 3).map((e) => e.task_id), ids)
    const stored = f.db.prepare('SELECT task_type FROM tasks ORDER BY seq').all().map((r) => String(r.task_type))
    assert.equal(stored[4], events[4].task_type, 'the log and the tasks table agree on the type')
    // created_at strictly increases with seq across the group and the lone submits.
    const created = f.db.prepare('SELECT created_at FROM tasks ORDER BY seq').all().map((r) => Number(r.created_at))
    for (let i = 1; i < created.length; i++) assert.ok(created[i] > created[i - 1], `created_at ${i}`)
  } finally {
    f.close()
  }
})
