/**
 * Group commit (store/group-commit.ts, service/write-batcher.ts): ops run in order in
 * one transaction, a failing op is rolled back alone, change events only follow the
 * COMMIT; plus the write-avoiding paths (time-ordered task ids, read-only empty
 * claims, deferred cache recency) keep their observable behaviour.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DatabaseSync } from 'node:sqlite'
import { TaskQueueError } from '../../src/protocol/errors.js'
import { WriteBatcher } from '../../src/service/write-batcher.js'
import { SqliteCacheStore } from '../../src/store/cache.js'
import { newTaskId } from '../../src/store/queue-util.js'
import type { TaskChange } from '../../src/store/types.js'
import { claimIn, fixture, sub } from '../helpers/store-fixture.js'

test('group runs ops in order in one transaction; a failing op is rolled back alone', () => {
  const f = fixture()
  try {
    const other = new DatabaseSync(f.path)
    const seen: TaskChange[] = []
    const visibleElsewhere: boolean[] = []
    f.q.on('change', (c) => {
      seen.push(c)
      // Another connection only sees committed rows.
      visibleElsewhere.push(other.prepare('SELECT 1 AS x FROM tasks WHERE task_id = ?').get(c.task_id) !== undefined)
    })
    const first = f.q.submit(sub({ idempotency_key: 'k1', payload: { n: 1 } }))
    try {
      const outcomes = f.q.group([
        () => f.q.submit(sub({ idempotency_key: 'k2', payload: { n: 2 } })),
        () => f.q.submit(sub({ idempotency_key: 'k1', payload: { n: 'different' } })),
        () => f.q.submit(sub({ idempotency_key: 'k2', payload: { n: 2 } })),
        () => { throw new Error('not a store error') }
      ])
      assert.deepEqual(visibleElsewhere, [true, true], 'change events only after the COMMIT')
      assert.equal(outcomes.length, 4)
      assert.ok(outcomes[0].ok)
      assert.ok(!outcomes[1].ok && outcomes[1].error instanceof TaskQueueError && outcomes[1].error.code === 'idempotency_conflict')
      assert.ok(outcomes[2].ok && outcomes[2].value.replayed, 'a later op sees an earlier op of the same group')
      assert.ok(outcomes[2].ok && outcomes[0].ok && outcomes[2].value.task_id === outcomes[0].value.task_id)
      assert.ok(!outcomes[3].ok)
      // Committed: another connection sees both tasks.
      const n = other.prepare('SELECT count(*) AS n FROM tasks').get()?.n
      assert.equal(Number(n), 2)
    } finally {
      other.close()
    }
    assert.deepEqual(seen.map((c) => c.status), ['queued', 'queued'])
    assert.equal(f.q.get(first.task_id)?.status, 'queued')
  } finally { f.close() }
})

test('WriteBatcher: writes of one turn share a commit and each caller gets its own outcome', async () => {
  const f = fixture()
  try {
    const w = new WriteBatcher(f.q)
    const a = w.write(() => f.q.submit(sub({ payload: { a: 1 } })))
    const b = w.write(() => f.q.complete({ task_id: 'f'.repeat(32), status: 'completed', result: null, error: '', worker_id: '' }))
    const c = w.write(() => f.q.submit(sub({ payload: { c: 1 } })))
    const [ra, rb, rc] = await Promise.allSettled([a, b, c])
    assert.equal(ra.status, 'fulfilled')
    assert.equal(rc.status, 'fulfilled')
    assert.ok(rb.status === 'rejected' && (rb.reason as TaskQueueError).code === 'task_not_found')
    assert.deepEqual(w.counters, { ops: 3, commits: 1, handoffs: 0 })
  } finally { f.close() }
})

test('task ids are 32 hex characters, unique, and ordered by creation time', () => {
  const ids = Array.from({ length: 2000 }, (_, i) => newTaskId(1_700_000_000_000 + Math.floor(i / 100)))
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/)
  assert.equal(new Set(ids).size, ids.length)
  const prefixes = ids.map((id) => id.slice(0, 12))
  assert.deepEqual(prefixes, [...prefixes].sort())
})

test('a claim with nothing to take answers without a write transaction, and still expires leases', () => {
  const f = fixture()
  try {
    const other = new DatabaseSync(f.path)
    const version = (): number => Number(other.prepare('PRAGMA data_version').get()?.data_version)
    try {
      const before = version()
      assert.deepEqual(f.q.claim(claimIn('w1', { task_types: ['echo'] })), [])
      assert.deepEqual(f.q.claim(claimIn('w1')), [])
      assert.equal(version(), before, 'no commit for an empty claim')
      const t = f.q.submit(sub({ task_type: 'echo' }))
      assert.deepEqual(f.q.claim(claimIn('w1', { task_types: ['other'] })), [], 'type mismatch: nothing')
      assert.equal(f.q.claim(claimIn('w1', { task_types: ['echo'], lease_s: 10 }))[0]?.task_id, t.task_id)
      // The lease lapses; an idle claimer of another type still applies the expiry.
      f.clock.advance(11)
      assert.deepEqual(f.q.claim(claimIn('w2', { task_types: ['other'] })), [])
      assert.equal(f.q.get(t.task_id)?.status, 'queued')
    } finally {
      other.close()
    }
  } finally { f.close() }
})

test('cache recency from hits is flushed before an eviction decides', () => {
  const f = fixture()
  try {
    const cache = new SqliteCacheStore({ db: f.db, maxEntries: 2, now: f.clock.now })
    cache.set({ key: 'a', value: 1 })
    cache.set({ key: 'b', value: 2 })
    assert.equal(cache.get('a').hit, true) // recorded in memory only
    cache.set({ key: 'c', value: 3 }) // evicts the least recently used: b
    assert.equal(cache.has('a'), true)
    assert.equal(cache.has('b'), false)
    cache.get('c')
    cache.flushTouches()
    const lru = f.db.prepare('SELECT key FROM cache ORDER BY lru').all().map((r) => r.key)
    assert.deepEqual(lru, ['a', 'c'])
  } finally { f.close() }
})
