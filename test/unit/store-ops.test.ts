/**
 * Operating the queue in the store (★ README "Protocol additions"): retries with
 * backoff and their error history, the retry op, pause/resume, purge, retention
 * pruning and the event log.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { retryDelayS, RETRY_JITTER } from '../../src/store/retry-policy.js'
import { MAX_TASK_ERRORS } from '../../src/store/queue-util.js'
import { QueueStore, openDatabase, type TaskChange } from '../../src/store/index.js'
import { claimIn, fixture, sub } from '../helpers/store-fixture.js'

const fail = (id: string, worker: string, retry: boolean, error = 'boom'): ReturnType<ReturnType<typeof fixture>['q']['complete']> =>
  fixtureQ.complete({ task_id: id, status: 'failed', result: null, error, worker_id: worker, retry })
let fixtureQ: ReturnType<typeof fixture>['q']

test('retryDelayS: fixed is exact; exponential doubles from delay_s, capped, jittered upwards only', () => {
  assert.equal(retryDelayS({ type: 'fixed', delay_s: 2 }, 5, 3600), 2)
  for (const r of [0, 0.5, 0.999]) {
    const d1 = retryDelayS({ type: 'exponential', delay_s: 1 }, 1, 3600, () => r)
    const d3 = retryDelayS({ type: 'exponential', delay_s: 1 }, 3, 3600, () => r)
    assert.ok(d1 >= 1 && d1 <= 1 + RETRY_JITTER, String(d1))
    assert.ok(d3 >= 4 && d3 <= 4 * (1 + RETRY_JITTER), String(d3))
  }
  assert.ok(retryDelayS({ type: 'exponential', delay_s: 10 }, 30, 60, () => 0) === 60)
})

test('a retried failure requeues after its backoff with the error recorded; the last attempt fails for good', () => {
  const f = fixture({ retry: { backoff: { type: 'exponential', delay_s: 10 }, maxDelayS: 3600 } })
  fixtureQ = f.q
  try {
    const id = f.q.submit(sub({ max_attempts: 3, backoff: { type: 'fixed', delay_s: 5 } })).task_id
    f.q.claim(claimIn('w1'))
    const r1 = fail(id, 'w1', true, 'first')
    assert.equal(r1.retry_at, f.clock.t + 5)
    let t = f.q.get(id)
    assert.equal(t?.status, 'queued')
    assert.equal(t?.next_attempt_at, f.clock.t + 5)
    assert.deepEqual(t?.errors, [{ attempt: 1, at: f.clock.t, error: 'first', worker_id: 'w1' }])
    // Resending the same failure (a lost reply) is a replay, not a second failure.
    assert.equal(fail(id, 'w1', true, 'first').replayed, true)
    assert.deepEqual(f.q.claim(claimIn('w2')), [], 'not claimable during the backoff')
    f.clock.advance(5)
    assert.equal(f.q.claim(claimIn('w2'))[0]?.attempt, 2)
    fail(id, 'w2', true, 'second')
    f.clock.advance(5)
    assert.equal(f.q.claim(claimIn('w3'))[0]?.attempt, 3)
    const last = fail(id, 'w3', true, 'third')
    assert.equal(last.retry_at, undefined)
    t = f.q.get(id)
    assert.equal(t?.status, 'failed')
    assert.equal(t?.error, 'third')
    assert.deepEqual(t?.errors.map(e => [e.attempt, e.error, e.worker_id]), [[1, 'first', 'w1'], [2, 'second', 'w2'], [3, 'third', 'w3']])
  } finally { f.close() }
})

test('a failure without retry (final errors, original workers) fails at once; errors stay bounded', () => {
  const f = fixture()
  fixtureQ = f.q
  try {
    const id = f.q.submit(sub({ max_attempts: 3 })).task_id
    f.q.claim(claimIn('w'))
    fail(id, 'w', false, 'final')
    assert.equal(f.q.get(id)?.status, 'failed')
    const many = f.q.submit(sub({ max_attempts: 0, backoff: { type: 'fixed', delay_s: 0 } })).task_id
    for (let i = 0; i < MAX_TASK_ERRORS + 5; i++) {
      assert.equal(f.q.claim(claimIn('w'))[0]?.task_id, many)
      fail(many, 'w', true, `e${i}`)
    }
    const errors = f.q.get(many)?.errors ?? []
    assert.equal(errors.length, MAX_TASK_ERRORS)
    assert.equal(errors[errors.length - 1].error, `e${MAX_TASK_ERRORS + 4}`)
  } finally { f.close() }
})

test('retry op: by ids (skipping what is not failed) and by filter, with fresh attempts', () => {
  const f = fixture()
  fixtureQ = f.q
  try {
    const a = f.q.submit(sub({ task_type: 'x', max_attempts: 1 })).task_id
    const b = f.q.submit(sub({ task_type: 'y', max_attempts: 1 })).task_id
    const queued = f.q.submit(sub({ task_type: 'x' })).task_id
    f.q.claim(claimIn('w', { task_types: ['x'] }))
    fail(a, 'w', true)
    f.q.claim(claimIn('w', { task_types: ['y'] }))
    fail(b, 'w', true)
    assert.equal(f.q.get(a)?.status, 'failed')
    const byId = f.q.retryTasks({ task_ids: [a, queued, 'nope'], statuses: ['failed'], task_types: null, since: null, until: null, limit: 10, delay_s: 0 })
    assert.deepEqual(byId.task_ids, [a])
    assert.deepEqual(byId.skipped, [{ task_id: queued, status: 'queued' }, { task_id: 'nope', status: 'not_found' }])
    const t = f.q.get(a)
    assert.equal(t?.status, 'queued')
    assert.equal(t?.attempt, 0)
    assert.equal(t?.error, null)
    assert.equal(t?.errors.length, 1, 'the history stays')
    const again = f.q.retryTasks({ task_ids: [a], statuses: ['failed'], task_types: null, since: null, until: null, limit: 10, delay_s: 0 })
    assert.deepEqual(again.task_ids, [], 'repeating changes nothing')
    const byFilter = f.q.retryTasks({ task_ids: null, statuses: ['failed'], task_types: ['y'], since: null, until: null, limit: 10, delay_s: 0 })
    assert.deepEqual(byFilter.task_ids, [b])
  } finally { f.close() }
})

test('pause stops claims (whole queue or per type) and survives reopening; resume restores them', () => {
  const f = fixture()
  try {
    const x = f.q.submit(sub({ task_type: 'x' })).task_id
    const y = f.q.submit(sub({ task_type: 'y' })).task_id
    f.q.pause(['X'])
    assert.deepEqual(f.q.paused(), { all: false, task_types: ['x'] })
    assert.equal(f.q.mayClaim(claimIn('w', { task_types: ['x'] })), false)
    assert.deepEqual(f.q.claim(claimIn('w', { task_types: ['x'] })), [])
    assert.deepEqual(f.q.claim(claimIn('w', { max_tasks: 10 })).map(t => t.task_id), [y], 'other types still go')
    f.q.pause(null)
    const z = f.q.submit(sub({ task_type: 'z' })).task_id
    assert.ok(f.q.get(z) !== null, 'submits are accepted while paused')
    assert.deepEqual(f.q.claim(claimIn('w', { max_tasks: 10 })), [])
    let resumed = 0
    f.q.on('resumed', () => { resumed++ })
    f.q.resume(null)
    assert.equal(resumed, 1)
    assert.deepEqual(f.q.paused(), { all: false, task_types: [] })
    assert.deepEqual(f.q.claim(claimIn('w', { max_tasks: 10 })).map(t => t.task_id).sort(), [x, z].sort())
    f.q.pause(['y'])
    const other = new QueueStore({ db: openDatabase(f.path), leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
    try {
      assert.deepEqual(other.paused(), { all: false, task_types: ['y'] }, 'another connection (a restart, a local worker) sees it')
    } finally { other.db.close() }
  } finally { f.close() }
})

test('purge removes what it names and never a running task', () => {
  const f = fixture()
  fixtureQ = f.q
  try {
    const running = f.q.submit(sub({ task_type: 'x' })).task_id
    f.q.claim(claimIn('w'))
    const q1 = f.q.submit(sub({ task_type: 'x' })).task_id
    const q2 = f.q.submit(sub({ task_type: 'y' })).task_id
    const done = f.q.submit(sub({ task_type: 'x', max_attempts: 1 })).task_id
    f.q.claim(claimIn('w', { task_types: ['x'] }))
    assert.equal(f.q.get(q1)?.status, 'running')
    f.q.complete({ task_id: q1, status: 'completed', result: null, error: '', worker_id: 'w' })
    void done
    assert.equal(f.q.purge({ statuses: ['queued'], task_types: ['x'], before: null, limit: 100 }), 1)
    assert.equal(f.q.get(done), null)
    assert.ok(f.q.get(q2) !== null)
    assert.equal(f.q.purge({ statuses: ['completed'], task_types: null, before: null, limit: 100 }), 1)
    assert.equal(f.q.get(q1), null)
    assert.equal(f.q.get(running)?.status, 'running')
  } finally { f.close() }
})

test('retention: finished tasks go after their age (per status, keep_s) and beyond the count bound; watched ones stay', () => {
  const f = fixture({ retention: { completedS: 60, failedS: 600, maxFinished: 3 } })
  fixtureQ = f.q
  try {
    const finish = (status: 'completed' | 'failed', over = {}): string => {
      const id = f.q.submit(sub({ max_attempts: 1, ...over })).task_id
      f.q.claim(claimIn('w'))
      f.q.complete({ task_id: id, status, result: null, error: status === 'failed' ? 'x' : '', worker_id: 'w' })
      return id
    }
    const c = finish('completed')
    const fl = finish('failed')
    const kept = finish('completed', { keep_s: 10_000 })
    f.clock.advance(61)
    const watched = new Set<string>()
    f.q.watchesTask = (id) => watched.has(id)
    assert.equal(f.q.prune().pruned, 1)
    assert.equal(f.q.get(c), null)
    assert.ok(f.q.get(fl) !== null && f.q.get(kept) !== null)
    f.clock.advance(600)
    watched.add(fl)
    assert.equal(f.q.prune().pruned, 0, 'a task somebody waits on is not pruned')
    watched.clear()
    assert.equal(f.q.prune().pruned, 1)
    // Count bound: 5 more finished tasks with long retention; only the newest 3 stay.
    const ids = Array.from({ length: 5 }, () => finish('completed', { keep_s: 10_000 }))
    let total = 0
    for (let i = 0; i < 5; i++) total += f.q.prune(2).pruned
    assert.equal(total, 3)
    assert.equal(f.q.get(kept), null, 'the oldest go first')
    assert.deepEqual(ids.map(id => f.q.get(id) !== null), [false, false, true, true, true])
    assert.equal(f.q.prunedTotal(), 5)
  } finally { f.close() }
})

test('event log: every change of a task in order, resumable by cursor, trimmed to its bound', () => {
  const f = fixture({ eventsMax: 1000 })
  fixtureQ = f.q
  try {
    const seen: TaskChange[] = []
    f.q.on('change', (c) => seen.push(c))
    const id = f.q.submit(sub({ max_attempts: 2, backoff: { type: 'fixed', delay_s: 0 } })).task_id
    f.q.claim(claimIn('w'))
    f.q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 60, progress: { pct: 50 } })
    fail(id, 'w', true)
    f.q.claim(claimIn('w'))
    f.q.complete({ task_id: id, status: 'completed', result: { ok: 1 }, error: '', worker_id: 'w' })
    const page = f.q.events.read(0, 100)
    assert.deepEqual(page.events.map(e => e.kind), ['submitted', 'claimed', 'progress', 'retried', 'claimed', 'completed'])
    assert.deepEqual(seen.map(c => c.kind), page.events.map(e => e.kind))
    assert.equal(page.events[2].progress !== undefined, true)
    assert.equal(page.events[3].attempt, 1)
    const rest = f.q.events.read(page.events[2].seq, 100)
    assert.deepEqual(rest.events.map(e => e.kind), ['retried', 'claimed', 'completed'])
    assert.equal(rest.gap, false)
    for (let i = 0; i < 600; i++) f.q.submit(sub())
    assert.equal(f.q.events.trim(), 606 - 1000 < 0 ? 0 : 606 - 1000)
    for (let i = 0; i < 600; i++) f.q.submit(sub())
    assert.equal(f.q.events.trim(), 206)
    const after = f.q.events.read(0, 10)
    assert.equal(after.gap, true, 'a cursor older than the log says so')
    assert.equal(after.events[0].seq, 207)
  } finally { f.close() }
})
