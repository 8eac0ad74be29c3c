/**
 * The store's cheaper statement paths keep the observable behaviour of the general
 * ones: one-row and many-row claims, the one-statement complete, submit's
 * insert-or-nothing idempotency, the reply byte budget's bound, array rows.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { returnArrays } from '../../src/store/db.js'
import { ReplySize, claimedSize, type WalkRow } from '../../src/store/queue-sql.js'
import type { TaskChange } from '../../src/store/types.js'
import { TaskQueueError } from '../../src/protocol/errors.js'
import { claimIn, fixture, sub } from '../helpers/store-fixture.js'

test('claims of one task and of many store and return the same fields', () => {
  const f = fixture()
  try {
    const changes: TaskChange[] = []
    f.q.on('change', (c) => changes.push(c))
    const ids = [0, 1, 2, 3].map((i) => f.q.submit(sub({ task_type: 'echo', payload: { i } })).task_id)
    const one = f.q.claim(claimIn('w', { max_tasks: 1, lease_s: 60 }))
    const many = f.q.claim(claimIn('w', { max_tasks: 8, lease_s: 60 }))
    assert.deepEqual([...one, ...many].map((t) => t.task_id), ids)
    for (const [i, t] of [...one, ...many].entries()) {
      assert.deepEqual(t.payload, { i })
      assert.equal(t.attempt, 1)
      assert.equal(t.status, 'running')
      const stored = f.q.get(t.task_id)
      assert.equal(stored?.status, 'running')
      assert.equal(stored?.attempt, 1)
      assert.equal(stored?.assigned_worker, 'w')
      assert.equal(stored?.lease_until, t.lease_until)
    }
    assert.deepEqual(changes.filter((c) => c.status === 'running').map((c) => c.task_id), ids)
    assert.ok(changes.every((c) => c.task_type === 'echo'))
    // A reclaimed task counts its attempts on from the stored value.
    f.clock.advance(61)
    assert.equal(f.q.claim(claimIn('w2', { max_tasks: 1, lease_s: 60 }))[0].attempt, 2)
  } finally { f.close() }
})

test('complete without a stored result (one statement) keeps errors and reports the task type', () => {
  const f = fixture()
  try {
    const changes: TaskChange[] = []
    const id = f.q.submit(sub({ task_type: 'echo', max_attempts: 5 })).task_id
    f.q.claim(claimIn('w', { lease_s: 10 }))
    f.q.complete({ task_id: id, status: 'failed', result: null, error: 'first', worker_id: 'w' })
    // Simulate a lapsed earlier attempt: requeued with its error, then claimed again.
    f.db.prepare("UPDATE tasks SET status = 'queued', assigned_worker = NULL WHERE task_id = ?").run(id)
    f.q.claim(claimIn('w2', { lease_s: 10 }))
    f.q.on('change', (c) => changes.push(c))
    assert.deepEqual(f.q.complete({ task_id: id, status: 'completed', result: { ok: 1 }, error: '', worker_id: 'w2' }), { task_id: id, replayed: false })
    const t = f.q.get(id)
    assert.equal(t?.status, 'completed')
    assert.equal(t?.error, 'first', 'an empty error keeps the stored one')
    assert.deepEqual(t?.result, { ok: 1 })
    assert.equal(t?.lease_until, null)
    assert.deepEqual(changes, [{ task_id: id, status: 'completed', task_type: 'echo', kind: 'completed' }])
    // Another worker's complete takes the guarded path and is refused.
    const id2 = f.q.submit(sub()).task_id
    f.q.claim(claimIn('w'))
    assert.throws(() => f.q.complete({ task_id: id2, status: 'completed', result: null, error: '', worker_id: 'x' }),
      (e: unknown) => e instanceof TaskQueueError && e.code === 'not_owner')
    assert.equal(f.q.get(id2)?.status, 'running')
  } finally { f.close() }
})

test('submit: an existing idempotency key inserts nothing and replays or conflicts', () => {
  const f = fixture()
  try {
    const count = (): number => Number(f.db.prepare('SELECT count(*) AS n FROM tasks').get()?.n)
    const a = f.q.submit(sub({ idempotency_key: 'k', payload: { x: 1, y: [1, 2] } }))
    assert.equal(a.replayed, false)
    const again = f.q.submit(sub({ idempotency_key: 'k', payload: { y: [1, 2], x: 1 } }))
    assert.deepEqual(again, { task_id: a.task_id, replayed: true }, 'key order does not matter')
    assert.throws(() => f.q.submit(sub({ idempotency_key: 'k', payload: { x: 2 } })),
      (e: unknown) => e instanceof TaskQueueError && e.code === 'idempotency_conflict')
    assert.equal(count(), 1)
    // Inside a group the refused submit is rolled back alone, the others commit.
    const out = f.q.group([
      () => f.q.submit(sub({ idempotency_key: 'k', payload: { x: 3 } })),
      () => f.q.submit(sub({ idempotency_key: 'k2' }))
    ])
    assert.equal(out[0].ok, false)
    assert.equal(out[1].ok, true)
    assert.equal(count(), 2)
  } finally { f.close() }
})

test('reply budget: the cheap bound admits exactly the tasks an exact count admits', () => {
  const row = (i: number, payloadBytes: number, type = 'echo'): WalkRow => ({
    seq: i, task_id: i.toString(16).padStart(32, '0'), task_type: type, type_norm: type, model_name: 'm',
    priority: 5, created_at: 1_700_000_000.123456 + i, next_attempt_at: 0, attempt: 0, max_attempts: 3,
    req_session: '', sticky_worker: '', payload_bytes: payloadBytes
  })
  const lease = 1_700_000_300.5
  for (const budget of [50, 400, 1000, 3000, 5000, 20_000]) {
    for (const payload of [2, 90, 700, 2500]) {
      const rows = Array.from({ length: 30 }, (_, i) => row(i + 1, payload + (i % 7) * 13, i % 3 === 0 ? 'é"\u0001' : 'echo'))
      const size = new ReplySize('worker-1', lease, 300, budget)
      const picked: WalkRow[] = []
      for (const r of rows) {
        if (!size.take(r, picked)) break
        picked.push(r)
      }
      // The reference: exact sizes, first task always taken.
      let bytes = 2
      let n = 0
      for (const r of rows) {
        const s = claimedSize(r, 'worker-1', lease, 300) + (n > 0 ? 1 : 0)
        if (n > 0 && bytes + s > budget) break
        bytes += s
        n++
      }
      assert.equal(picked.length, n, `budget ${budget}, payload ${payload}`)
    }
  }
})

test('returnArrays: rows come back as arrays in column order, also where node:sqlite cannot do it', () => {
  const db = new DatabaseSync(':memory:')
  try {
    db.exec("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y')")
    const native = returnArrays(db.prepare('SELECT a, b FROM t ORDER BY a'))
    assert.deepEqual(native.all(), [[1, 'x'], [2, 'y']])
    // An older Node 22 without setReturnArrays.
    const plain = db.prepare('SELECT b, a FROM t WHERE a = ?')
    const old = new Proxy(plain, { get: (t, p) => p === 'setReturnArrays' ? undefined : (Reflect.get(t, p) as (...a: unknown[]) => unknown).bind(t) }) as StatementSync
    const shim = returnArrays(old)
    assert.deepEqual(shim.get(2), ['y', 2])
    assert.equal(shim.get(9), undefined)
    assert.deepEqual(shim.all(1), [['x', 1]])
  } finally { db.close() }
})
