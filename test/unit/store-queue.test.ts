import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  openDatabase, QueueStore, expandTaskTypes, schedulerScore as scoreOf, LEASE_EXPIRED_ERROR,
  type TaskChange
} from '../../src/store/index.js'
import type { TaskQueueError } from '../../src/protocol/errors.js'
import { claimIn, fixture, sub } from '../helpers/store-fixture.js'


function code (fn: () => unknown): string {
  try { fn() } catch (err) { return (err as TaskQueueError).code }
  return 'no error'
}

test('claims follow priority desc, then age, then task_id', () => {
  const f = fixture()
  try {
    const low = f.q.submit(sub({ priority: 1 })).task_id
    const a = f.q.submit(sub({ priority: 5 })).task_id
    f.clock.advance(1)
    const hi = f.q.submit(sub({ priority: 9 })).task_id
    const b = f.q.submit(sub({ priority: 5 })).task_id // same clock tick as hi: still after a
    const got = f.q.claim(claimIn('w', { max_tasks: 10 })).map(t => t.task_id)
    assert.deepEqual(got, [hi, a, b, low])
    const t = f.q.get(hi)
    assert.equal(t?.status, 'running')
    assert.equal(t?.attempt, 1)
    assert.equal(t?.assigned_worker, 'w')
    assert.equal(t?.lease_until, f.clock.t + 3600)
    assert.match(hi, /^[0-9a-f]{32}$/)
  } finally { f.close() }
})

test('same-millisecond submits keep FIFO order across 500 tasks', () => {
  const f = fixture()
  try {
    const ids = Array.from({ length: 500 }, () => f.q.submit(sub()).task_id)
    const got = f.q.claim(claimIn('w', { max_tasks: 500 })).map(t => t.task_id)
    assert.deepEqual(got, ids)
  } finally { f.close() }
})

test('claimed task shape and max_reply_bytes cap', () => {
  const f = fixture()
  try {
    for (let i = 0; i < 5; i++) f.q.submit(sub({ payload: { blob: 'x'.repeat(1000), i } }))
    const one = f.q.claim(claimIn('w', { max_tasks: 1 }))
    assert.deepEqual(Object.keys(one[0]).sort(), ['assigned_worker', 'attempt', 'created_at', 'lease_s', 'lease_until', 'max_attempts', 'model_name', 'payload', 'priority', 'status', 'task_id', 'task_type'])
    const size1 = Buffer.byteLength(JSON.stringify(one))
    // Room for exactly two more tasks of the same size.
    const cap = 2 * size1 + 40 // later tasks carry longer (nudged) created_at numbers
    const two = f.q.claim(claimIn('w', { max_tasks: 10, max_reply_bytes: cap }))
    assert.equal(two.length, 2)
    assert.ok(Buffer.byteLength(JSON.stringify(two)) <= cap)
    // A single task larger than the cap still goes out, or it could never be claimed.
    assert.equal(f.q.claim(claimIn('w', { max_tasks: 10, max_reply_bytes: 10 })).length, 1)
  } finally { f.close() }
})

test('two stores on the same file never hand out the same task', () => {
  const f = fixture()
  const db2 = openDatabase(f.path)
  const q2 = new QueueStore({ db: db2, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false, now: f.clock.now })
  try {
    const n = 300
    for (let i = 0; i < n; i++) f.q.submit(sub())
    const seen = new Set<string>()
    for (let i = 0; ; i++) {
      const got = (i % 2 === 0 ? f.q : q2).claim(claimIn(`w${i % 2}`, { max_tasks: 7 }))
      if (got.length === 0) break
      for (const t of got) {
        assert.ok(!seen.has(t.task_id), 'task claimed twice')
        seen.add(t.task_id)
      }
    }
    assert.equal(seen.size, n)
    const before = q2.dataVersion()
    f.q.submit(sub())
    assert.notEqual(q2.dataVersion(), before, 'data_version changes on another connection\'s commit')
  } finally { db2.close(); f.close() }
})

test('idempotency: replay returns the same id, other work conflicts', () => {
  const f = fixture()
  try {
    const a = f.q.submit(sub({ payload: { x: 1, y: [1, { b: 2, a: 1 }] }, idempotency_key: 'k1' }))
    assert.equal(a.replayed, false)
    const b = f.q.submit(sub({ payload: { y: [1, { a: 1, b: 2 }], x: 1 }, idempotency_key: 'k1' }))
    assert.deepEqual(b, { task_id: a.task_id, replayed: true })
    assert.equal(code(() => f.q.submit(sub({ payload: { x: 2 }, idempotency_key: 'k1' }))), 'idempotency_conflict')
    assert.equal(code(() => f.q.submit(sub({ model_name: 'other', payload: { x: 1, y: [1, { b: 2, a: 1 }] }, idempotency_key: 'k1' }))), 'idempotency_conflict')
    assert.equal(f.q.counts().queued, 1)
    assert.equal(f.q.get(a.task_id)?.idempotency_key, 'k1')
  } finally { f.close() }
})

test('complete guards (B4)', () => {
  const f = fixture()
  try {
    assert.equal(code(() => f.q.complete({ task_id: 'nope', status: 'completed', result: null, error: '', worker_id: '' })), 'task_not_found')
    const id = f.q.submit(sub()).task_id
    // Queued: completing is not allowed, cancelling is.
    assert.equal(code(() => f.q.complete({ task_id: id, status: 'completed', result: null, error: '', worker_id: 'w' })), 'task_not_running')
    f.q.claim(claimIn('w'))
    assert.equal(code(() => f.q.complete({ task_id: id, status: 'completed', result: null, error: '', worker_id: 'other' })), 'not_owner')
    f.q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 60, progress: { pct: 50 } })
    f.q.complete({ task_id: id, status: 'completed', result: { out: 'hi' }, error: '', worker_id: 'w' })
    const t = f.q.get(id)
    assert.equal(t?.status, 'completed')
    assert.deepEqual(t?.result, { progress: { pct: 50 }, out: 'hi' })
    assert.equal(t?.lease_until, null)
    assert.equal(t?.assigned_worker, 'w')
    // Replays: same status, same or no owner.
    assert.deepEqual(f.q.complete({ task_id: id, status: 'completed', result: { out: 'changed' }, error: '', worker_id: 'w' }), { task_id: id, replayed: true })
    assert.deepEqual(f.q.complete({ task_id: id, status: 'completed', result: null, error: '', worker_id: '' }), { task_id: id, replayed: true })
    assert.deepEqual(f.q.get(id)?.result, { progress: { pct: 50 }, out: 'hi' })
    assert.equal(code(() => f.q.complete({ task_id: id, status: 'completed', result: null, error: '', worker_id: 'other' })), 'not_owner')
    assert.equal(code(() => f.q.complete({ task_id: id, status: 'failed', result: null, error: 'x', worker_id: 'w' })), 'task_not_running')

    // A cancelled-status complete on a queued task acts as cancel.
    const id2 = f.q.submit(sub()).task_id
    const changes: TaskChange[] = []
    f.q.on('change', c => changes.push(c))
    assert.deepEqual(f.q.complete({ task_id: id2, status: 'cancelled', result: null, error: 'nope', worker_id: 'w' }), { task_id: id2, replayed: false, cancelled: true })
    const t2 = f.q.get(id2)
    assert.equal(t2?.status, 'cancelled')
    assert.equal((t2?.result as { progress: { cancel_reason: string } }).progress.cancel_reason, 'nope')
    assert.deepEqual(changes, [{ task_id: id2, status: 'cancelled', task_type: 'text-generation', kind: 'cancelled', detail: { reason: 'nope' } }])
    assert.deepEqual(f.q.complete({ task_id: id2, status: 'cancelled', result: null, error: '', worker_id: '' }), { task_id: id2, replayed: true })

    // Failure keeps the error; a later empty error does not erase it.
    const id3 = f.q.submit(sub()).task_id
    f.q.claim(claimIn('w'))
    f.q.complete({ task_id: id3, status: 'failed', result: null, error: 'boom', worker_id: '' })
    assert.equal(f.q.get(id3)?.error, 'boom')
    assert.equal(f.q.get(id3)?.status, 'failed')
  } finally { f.close() }
})

test('release gives the attempt back and backs off; heartbeat and release guards', () => {
  const f = fixture()
  try {
    const id = f.q.submit(sub()).task_id
    assert.equal(code(() => f.q.release({ task_id: id, worker_id: 'w', reason: 'x', delay_s: 0 })), 'task_not_running')
    assert.equal(code(() => f.q.release({ task_id: 'missing', worker_id: 'w', reason: 'x', delay_s: 0 })), 'task_not_found')
    f.q.claim(claimIn('w'))
    assert.equal(code(() => f.q.release({ task_id: id, worker_id: 'v', reason: 'x', delay_s: 0 })), 'not_owner')
    assert.equal(code(() => f.q.heartbeatTask({ task_id: id, worker_id: 'v', lease_s: 30, progress: null })), 'not_owner')
    assert.equal(code(() => f.q.heartbeatTask({ task_id: id, worker_id: '', lease_s: 30, progress: null })), 'not_owner')
    f.clock.advance(5)
    const hb = f.q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 120, progress: { step: 1 } })
    assert.deepEqual(hb, { task_id: id, lease_until: f.clock.t + 120, heartbeat_at: f.clock.t })
    f.q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 120, progress: { pct: 9 } })
    f.q.release({ task_id: id, worker_id: 'w', reason: 'busy', delay_s: 10 })
    let t = f.q.get(id)
    assert.equal(t?.status, 'queued')
    assert.equal(t?.attempt, 0)
    assert.equal(t?.assigned_worker, null)
    assert.equal(t?.lease_until, null)
    assert.equal(t?.next_attempt_at, f.clock.t + 10)
    assert.deepEqual(t?.result, { progress: { step: 1, pct: 9, release_count: 1, last_release_reason: 'busy', last_release_ts: f.clock.t } })
    assert.equal(f.q.nextEligibleAt(), f.clock.t + 10)
    assert.equal(f.q.claim(claimIn('w')).length, 0, 'backoff respected')
    f.clock.advance(10)
    assert.equal(f.q.nextEligibleAt(), null)
    assert.equal(f.q.claim(claimIn('w'))[0].attempt, 1)
    f.q.release({ task_id: id, worker_id: 'w', reason: 'again', delay_s: 0 })
    t = f.q.get(id)
    assert.equal((t?.result as { progress: { release_count: number } }).progress.release_count, 2)
    assert.equal(code(() => f.q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 30, progress: null })), 'task_not_running')
  } finally { f.close() }
})

test('lease expiry requeues, then fails after max attempts (injected clock)', () => {
  const f = fixture()
  try {
    const id = f.q.submit(sub({ max_attempts: 2 })).task_id
    const changes: TaskChange[] = []
    f.q.on('change', c => changes.push(c))
    f.q.claim(claimIn('w', { lease_s: 10 }))
    assert.equal(f.q.nextLeaseExpiryAt(), f.clock.t + 10)
    f.clock.advance(9)
    assert.deepEqual(f.q.sweep(), { requeued: 0, failed: 0 })
    f.clock.advance(1)
    assert.deepEqual(f.q.sweep(), { requeued: 1, failed: 0 })
    let t = f.q.get(id)
    assert.equal(t?.status, 'queued')
    assert.equal(t?.next_attempt_at, f.clock.t)
    assert.equal(t?.attempt, 1)
    // Second claim; its lease expiry is applied by the next claim itself.
    assert.equal(f.q.claim(claimIn('w2', { lease_s: 10 }))[0].attempt, 2)
    f.q.heartbeatTask({ task_id: id, worker_id: 'w2', lease_s: 10, progress: null })
    f.clock.advance(11)
    assert.equal(f.q.claim(claimIn('w3')).length, 0)
    t = f.q.get(id)
    assert.equal(t?.status, 'failed')
    assert.equal(t?.error, LEASE_EXPIRED_ERROR)
    assert.equal(t?.lease_until, null)
    assert.deepEqual(changes.map(c => c.status), ['running', 'queued', 'running', 'failed'])

    // Unlimited attempts never fail by expiry; an existing error gets the message appended.
    const u = f.q.submit(sub({ max_attempts: 0 })).task_id
    for (let i = 0; i < 5; i++) {
      assert.equal(f.q.claim(claimIn('w', { lease_s: 10 })).length, 1)
      f.clock.advance(11)
      f.q.sweep()
    }
    assert.equal(f.q.get(u)?.status, 'queued')
    assert.equal(f.q.get(u)?.attempt, 5)
  } finally { f.close() }
})

test('sweep fails queued tasks whose attempts are exhausted (B6), appending to errors', () => {
  const f = fixture()
  try {
    const id = f.q.submit(sub({ max_attempts: 1 })).task_id
    // Simulate a zombie left by an older writer: queued with no attempts left.
    f.db.prepare("UPDATE tasks SET attempt = 1, error = 'earlier' WHERE task_id = ?").run(id)
    assert.equal(f.q.claim(claimIn('w')).length, 0, 'exhausted task is not eligible')
    assert.deepEqual(f.q.sweep(), { requeued: 0, failed: 1 })
    assert.equal(f.q.get(id)?.status, 'failed')
    assert.match(f.q.get(id)?.error ?? '', /^earlier; /)
    const id2 = f.q.submit(sub({ max_attempts: 1 })).task_id
    f.q.claim(claimIn('w', { lease_s: 10 }))
    f.db.prepare("UPDATE tasks SET error = 'oops' WHERE task_id = ?").run(id2)
    f.clock.advance(10)
    assert.deepEqual(f.q.sweep(), { requeued: 0, failed: 1 })
    assert.equal(f.q.get(id2)?.error, `oops; ${LEASE_EXPIRED_ERROR}`)
  } finally { f.close() }
})

test('session, sticky worker and type filter eligibility', () => {
  const f = fixture()
  try {
    const s1 = f.q.submit(sub({ payload: { session_id: 's1' } })).task_id
    const s2 = f.q.submit(sub({ payload: { p2p_session: 's2' } })).task_id
    const sticky = f.q.submit(sub({ payload: { sticky_worker_id: 'wb' } })).task_id
    const tts = f.q.submit(sub({ task_type: 'TTS' })).task_id
    const plain = f.q.submit(sub({ task_type: 'Text_Generation' })).task_id
    // No session: never a session-bound task; not the other worker's sticky task.
    const a = f.q.claim(claimIn('wa', { max_tasks: 10, task_types: expandTaskTypes(['text-generation']) })).map(t => t.task_id)
    assert.deepEqual(a, [plain])
    const b = f.q.claim(claimIn('wb', { max_tasks: 10, session: 's1', task_types: expandTaskTypes(['voice.tts', 'generation']) })).map(t => t.task_id).sort()
    assert.deepEqual(b, [s1, sticky, tts].sort())
    const c = f.q.claim(claimIn('wc', { max_tasks: 10, session: 's2' })).map(t => t.task_id)
    assert.deepEqual(c, [s2])
  } finally { f.close() }
})

test('type-filtered claims merge per-type scans in claim order; same_task_type', () => {
  const f = fixture()
  try {
    const types = ['embedding', 'embeddings', 'text_embedding', 'other']
    const ids: string[] = []
    for (let i = 0; i < 40; i++) {
      ids.push(f.q.submit(sub({ task_type: types[i % 4], priority: 1 + (i % 3) })).task_id)
      f.clock.advance(0.01)
    }
    const all = f.q.claim(claimIn('probe', { max_tasks: 100, task_types: expandTaskTypes(['embedding', 'other']) }))
    const expected = all.slice().sort((x, y) => y.priority - x.priority || x.created_at - y.created_at)
    assert.deepEqual(all.map(t => t.task_id), expected.map(t => t.task_id))
    assert.equal(all.length, 40)
    for (const t of all) f.q.release({ task_id: t.task_id, worker_id: 'probe', reason: '', delay_s: 0 })
    const same = f.q.claim(claimIn('w', { max_tasks: 100, same_task_type: true }))
    assert.ok(same.length === 10 && same.every(t => t.task_type === same[0].task_type))
  } finally { f.close() }
})

test('deterministic scheduler: owners split tasks; neglected tasks are stolen', () => {
  const f = fixture({ deterministic: true, stealAfterS: 30 })
  try {
    f.q.touchPeer({ peer_id: 'peerA', worker_id: 'wa', active: true })
    f.q.touchPeer({ peer_id: 'peerB', worker_id: 'wb', active: true })
    f.q.touchPeer({ peer_id: 'status-poller' }) // no worker_id: never an owner
    const ids = Array.from({ length: 40 }, () => f.q.submit(sub()).task_id)
    const byA = f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).map(t => t.task_id)
    const byB = f.q.claim(claimIn('wb', { peer_key: 'peerB', max_tasks: 100 })).map(t => t.task_id)
    assert.ok(byA.length > 0 && byB.length > 0)
    assert.equal(byA.length + byB.length, 40)
    for (const id of byA) assert.equal(ownerOf(id), 'peerA')
    for (const id of byB) assert.equal(ownerOf(id), 'peerB')
    assert.deepEqual([...byA, ...byB].sort(), ids.slice().sort())

    // B goes quiet but stays live; A takes B's tasks only after the steal window.
    const later = Array.from({ length: 20 }, () => f.q.submit(sub()).task_id)
    const first = f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).map(t => t.task_id)
    const bOwned = later.filter(id => ownerOf(id) === 'peerB')
    assert.equal(first.length, 20 - bOwned.length)
    f.clock.advance(30)
    assert.equal(f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).length, 0, 'not yet: exactly 30 s')
    f.clock.advance(0.5)
    const stolen = f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).map(t => t.task_id)
    assert.deepEqual(stolen.sort(), bOwned.slice().sort())

    // Once B is no longer live, A owns everything at once.
    f.clock.advance(301)
    const more = Array.from({ length: 5 }, () => f.q.submit(sub()).task_id)
    assert.equal(f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).length, more.length)
  } finally { f.close() }

  function ownerOf (id: string): string {
    return ['peerA', 'peerB'].map(p => [p, scoreOf(id, p)] as const)
      .sort((x, y) => (x[1] === y[1] ? (x[0] < y[0] ? -1 : 1) : x[1] > y[1] ? -1 : 1))[0][0]
  }
})

test('deterministic scheduler: candidates respect type, session and stickiness; stealing can be disabled', () => {
  const f = fixture({ deterministic: true, stealAfterS: 0 })
  try {
    // peerB only does tts: it is not a candidate for text-generation work.
    f.q.touchPeer({ peer_id: 'peerB', worker_id: 'wb', supported_task_types: expandTaskTypes(['tts']), active: true })
    for (let i = 0; i < 10; i++) f.q.submit(sub())
    assert.equal(f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).length, 10)
    // Pinned to wa: B is no candidate even though it supports everything.
    f.q.touchPeer({ peer_id: 'peerC', worker_id: 'wc', active: true })
    for (let i = 0; i < 10; i++) f.q.submit(sub({ payload: { sticky_worker: 'wa' } }))
    assert.equal(f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).length, 10)
    // Unpinned work is split with C, and with stealing off C's share waits forever.
    for (let i = 0; i < 30; i++) f.q.submit(sub())
    const a = f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).length
    assert.ok(a > 0 && a < 30)
    f.clock.advance(250)
    f.q.touchPeer({ peer_id: 'peerC', worker_id: 'wc', active: true })
    assert.equal(f.q.claim(claimIn('wa', { peer_key: 'peerA', max_tasks: 100 })).length, 0)
  } finally { f.close() }
})

test('list: order, cursor pagination, byte cap, filters, invalid cursor', () => {
  const f = fixture()
  try {
    const ids: string[] = []
    for (let i = 0; i < 25; i++) {
      ids.push(f.q.submit(sub({ task_type: i % 2 === 0 ? 'embedding' : 'Embeddings', payload: { i, pad: 'p'.repeat(200) } })).task_id)
      f.clock.advance(1)
    }
    const walk = (order: 'asc' | 'desc', limit: number, maxBytes: number): { pages: number, seen: string[], truncated: number } => {
      let cursor: string | null = null
      const seen: string[] = []
      let pages = 0
      let truncated = 0
      do {
        const r = f.q.list({ status: null, limit, task_types: null, cursor, order, max_bytes: maxBytes })
        assert.ok(r.tasks.length > 0)
        if (r.truncated) truncated++
        assert.ok(Buffer.byteLength(JSON.stringify(r.tasks)) <= maxBytes || r.tasks.length === 1)
        seen.push(...r.tasks.map(t => t.task_id))
        cursor = r.next_cursor
        pages++
      } while (cursor !== null)
      return { pages, seen, truncated }
    }
    const asc = walk('asc', 10, 1 << 20)
    assert.deepEqual(asc.seen, ids)
    assert.equal(asc.pages, 3)
    assert.equal(asc.truncated, 0)
    const desc = walk('desc', 7, 1 << 20)
    assert.deepEqual(desc.seen, ids.slice().reverse())
    const capped = walk('asc', 1000, 1500)
    assert.deepEqual(capped.seen, ids)
    assert.ok(capped.truncated > 0)
    const exact = f.q.list({ status: 'queued', limit: 100, task_types: ['embeddings'], cursor: null, order: 'asc', max_bytes: 1 << 20 })
    assert.equal(exact.tasks.length, 12)
    assert.equal(exact.next_cursor, null)
    const expanded = f.q.list({ status: 'queued', limit: 100, task_types: expandTaskTypes(['embedding']), cursor: null, order: 'asc', max_bytes: 1 << 20 })
    assert.equal(expanded.tasks.length, 25)
    assert.equal(f.q.list({ status: 'running', limit: 100, task_types: null, cursor: null, order: 'asc', max_bytes: 1 << 20 }).tasks.length, 0)
    assert.equal(code(() => f.q.list({ status: null, limit: 5, task_types: null, cursor: 'not a cursor!', order: 'asc', max_bytes: 1000 })), 'invalid_params')
    assert.equal(code(() => f.q.list({ status: null, limit: 5, task_types: null, cursor: Buffer.from('abc').toString('base64url'), order: 'asc', max_bytes: 1000 })), 'invalid_params')
  } finally { f.close() }
})

test('list by every status: each read in seq order through its own index', () => {
  const f = fixture()
  try {
    const ids = Array.from({ length: 12 }, (_, i) => f.q.submit(sub({ priority: 1 + (i % 4) })).task_id)
    const claimed = f.q.claim(claimIn('w', { max_tasks: 6 })).map(t => t.task_id)
    f.q.complete({ task_id: claimed[0], status: 'completed', result: null, error: '', worker_id: 'w' })
    f.q.complete({ task_id: claimed[1], status: 'failed', result: null, error: 'x', worker_id: 'w' })
    const queued = ids.filter(id => !claimed.includes(id))
    f.q.cancel(queued[0], '')
    const byStatus = (status: string | null, order: 'asc' | 'desc' = 'asc', limit = 100): string[] =>
      f.q.list({ status, limit, task_types: null, cursor: null, order, max_bytes: 1 << 20 }).tasks.map(t => t.task_id)
    const inOrder = (set: string[]): string[] => ids.filter(id => set.includes(id))
    assert.deepEqual(byStatus('queued'), inOrder(queued.slice(1)), 'queued: merged across priorities, in age order')
    assert.deepEqual(byStatus('queued', 'desc'), inOrder(queued.slice(1)).reverse())
    assert.deepEqual(byStatus('running'), inOrder(claimed.slice(2)))
    assert.deepEqual(byStatus('completed'), [claimed[0]])
    assert.deepEqual(byStatus('failed'), [claimed[1]])
    assert.deepEqual(byStatus('cancelled'), [queued[0]])
    assert.deepEqual(byStatus('bogus'), [])
    assert.deepEqual(byStatus(null), ids)
    // Paging through queued tasks with a cursor, two at a time.
    const pages: string[] = []
    let cursor: string | null = null
    do {
      const r = f.q.list({ status: 'queued', limit: 2, task_types: null, cursor, order: 'asc', max_bytes: 1 << 20 })
      pages.push(...r.tasks.map(t => t.task_id))
      cursor = r.next_cursor
    } while (cursor !== null)
    assert.deepEqual(pages, inOrder(queued.slice(1)))
  } finally { f.close() }
})

test('cancel, get, delete and counts', () => {
  const f = fixture()
  try {
    const a = f.q.submit(sub({ task_type: 'tts' })).task_id
    const b = f.q.submit(sub({ task_type: 'tts' })).task_id
    f.q.submit(sub({ task_type: 'Other' }))
    f.q.claim(claimIn('w'))
    assert.deepEqual(f.q.counts(), { queued: 2, running: 1, queued_by_type: { tts: 1, Other: 1 }, running_by_type: { tts: 1 } })
    assert.deepEqual(f.q.cancel(a, 'x'), { cancelled: false }, 'running tasks are not cancelled')
    assert.deepEqual(f.q.cancel(b, ''), { cancelled: true })
    const t = f.q.get(b)
    assert.equal(t?.status, 'cancelled')
    assert.deepEqual(t?.result, { progress: { cancelled_at: f.clock.t } })
    assert.deepEqual(f.q.cancel(b, ''), { cancelled: false })
    assert.deepEqual(f.q.cancel('missing', ''), { cancelled: false })
    assert.equal(f.q.get(''), null)
    assert.equal(f.q.get('missing'), null)
    assert.equal(f.q.delete(b), true)
    assert.equal(f.q.delete(b), false)
    assert.equal(f.q.get(b), null)
  } finally { f.close() }
})

test('change events, delayed submits and nextEligibleAt', () => {
  const f = fixture()
  try {
    const seen: TaskChange[] = []
    f.q.on('change', c => seen.push(c))
    const later = f.q.submit(sub({ task_type: 'Later', next_attempt_at: f.clock.t + 50 })).task_id
    const now = f.q.submit(sub()).task_id
    assert.equal(f.q.nextEligibleAt(), f.clock.t + 50)
    assert.equal(f.q.claim(claimIn('w', { max_tasks: 5 })).length, 1)
    f.q.complete({ task_id: now, status: 'completed', result: null, error: '', worker_id: 'w' })
    f.clock.advance(50)
    assert.equal(f.q.nextEligibleAt(), null)
    assert.equal(f.q.claim(claimIn('w', { max_tasks: 5 }))[0].task_id, later)
    assert.deepEqual(seen.map(c => `${c.task_type}:${c.status}`), [
      'Later:queued', 'text-generation:queued', 'text-generation:running', 'text-generation:completed', 'Later:running'
    ])
    // No event for a rejected op.
    assert.equal(code(() => f.q.complete({ task_id: later, status: 'completed', result: null, error: '', worker_id: 'x' })), 'not_owner')
    assert.equal(seen.length, 5)
  } finally { f.close() }
})
