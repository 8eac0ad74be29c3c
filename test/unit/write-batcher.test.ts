/**
 * The service's group commit (service/write-batcher.ts): adaptive batching (an idle
 * service commits a write at once, a busy one batches the poll phase), every write
 * acknowledged only after its COMMIT, and the handoff of queued work to parked
 * long-poll claimers inside the transaction that queued it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DatabaseSync } from 'node:sqlite'
import { WriteBatcher, type ParkedClaim } from '../../src/service/write-batcher.js'
import type { ClaimedTask } from '../../src/protocol/types.js'
import { claimIn, fixture, sub } from '../helpers/store-fixture.js'

/** The task's status as another connection (another process) sees it: committed state only. */
function committedStatus (path: string, taskId: string): string | undefined {
  const db = new DatabaseSync(path)
  try {
    const row = db.prepare('SELECT status FROM tasks WHERE task_id = ?').get(taskId)
    return row === undefined ? undefined : String(row.status)
  } finally {
    db.close()
  }
}

function claimer (q: ReturnType<typeof fixture>['q'], worker: string, types: string[] | null): ParkedClaim & { got: ClaimedTask[][] } {
  const got: ClaimedTask[][] = []
  const input = claimIn(worker, { task_types: types, max_tasks: 8 })
  return { got, types: types === null ? null : new Set(types), claim: () => q.claim(input), deliver: (t) => { got.push(t) }, mayClaim: () => q.mayClaim(input) }
}

test('idle: a write commits before the poll phase ends, and resolves only once committed', async () => {
  const f = fixture()
  try {
    const w = new WriteBatcher(f.q)
    let immediateRan = false
    setImmediate(() => { immediateRan = true })
    const { task_id: id } = await w.write(() => f.q.submit(sub()))
    assert.equal(immediateRan, false, 'no wait for the end of the poll phase when idle')
    assert.equal(committedStatus(f.path, id), 'queued', 'acknowledged only after the COMMIT')
    assert.deepEqual(w.counters, { ops: 1, commits: 1, handoffs: 0 })
  } finally { f.close() }
})

test('busy: writes wait for the end of the poll phase and share one commit', async () => {
  const f = fixture()
  try {
    // Every write counts as arriving while the service is busy.
    const w = new WriteBatcher(f.q, { busyGapMs: Infinity })
    await w.write(() => f.q.submit(sub()))
    let immediateRan = false
    setImmediate(() => { immediateRan = true })
    const ids = await Promise.all([w.write(() => f.q.submit(sub())), w.write(() => f.q.submit(sub()))])
    assert.equal(immediateRan, true, 'the batch was cut in the check phase')
    assert.equal(w.counters.commits, 2)
    for (const r of ids) assert.equal(committedStatus(f.path, r.task_id), 'queued')
  } finally { f.close() }
})

test('handoff: a parked claimer gets a new task in the transaction that queued it, before the submit is acknowledged', async () => {
  const f = fixture()
  try {
    const w = new WriteBatcher(f.q)
    const c = claimer(f.q, 'w1', ['echo'])
    assert.deepEqual(await w.claim(c, true), [], 'nothing to take: parked')
    assert.equal(w.parkedClaims, 1)
    const commitsBefore = w.counters.commits
    let deliveredFirst = false
    const submitted = await w.write(() => {
      return f.q.submit(sub({ task_type: 'echo' }))
    }).then((r) => { deliveredFirst = c.got.length === 1; return r })
    assert.equal(deliveredFirst, true, 'the claimer hears first: the worker has more to do')
    assert.equal(w.counters.commits, commitsBefore + 1, 'submit and claim in one commit')
    assert.equal(w.counters.handoffs, 1)
    assert.equal(c.got[0][0].task_id, submitted.task_id)
    assert.equal(c.got[0][0].status, 'running')
    assert.equal(committedStatus(f.path, submitted.task_id), 'running', 'delivered only once committed')
    assert.equal(w.parkedClaims, 0, 'a claimer is delivered once')
  } finally { f.close() }
})

test('handoff: a claim and a submit of the same batch, claim first, still meet (no lost wake-up)', async () => {
  const f = fixture()
  try {
    const w = new WriteBatcher(f.q)
    const c = claimer(f.q, 'w1', null)
    // Same tick: one batch, the claim runs before the submit inserts anything.
    const [claimed, submitted] = await Promise.all([w.claim(c, true), w.write(() => f.q.submit(sub()))])
    assert.deepEqual(claimed, [])
    assert.equal(w.counters.commits, 1)
    assert.equal(c.got.length, 1, 'parked inside the transaction, then handed the task queued after it')
    assert.equal(c.got[0][0].task_id, submitted.task_id)
  } finally { f.close() }
})

test('handoff respects type filters and hands out no more than was queued', async () => {
  const f = fixture()
  try {
    const w = new WriteBatcher(f.q)
    const wantsB = claimer(f.q, 'wb', ['b'])
    const first = claimer(f.q, 'w1', ['a'])
    const second = claimer(f.q, 'w2', ['a'])
    for (const c of [wantsB, first, second]) await w.claim(c, true)
    await w.write(() => f.q.submit(sub({ task_type: 'a' })))
    assert.equal(wantsB.got.length, 0, 'not offered another type')
    assert.equal(first.got.length, 1, 'the longest-waiting claimer first')
    assert.equal(second.got.length, 0)
    assert.equal(w.parkedClaims, 2)
    w.unpark(wantsB)
    w.unpark(second)
    assert.equal(w.parkedClaims, 0)
  } finally { f.close() }
})

test('a claim without park that finds nothing is not parked', async () => {
  const f = fixture()
  try {
    const w = new WriteBatcher(f.q)
    const c = claimer(f.q, 'w1', null)
    assert.deepEqual(await w.claim(c, false), [])
    await w.write(() => f.q.submit(sub()))
    assert.equal(c.got.length, 0)
    assert.equal(w.parkedClaims, 0)
  } finally { f.close() }
})

test('an idle claimer parks without a transaction; one with work waiting claims it in one', async () => {
  const f = fixture()
  try {
    const w = new WriteBatcher(f.q)
    const idle = claimer(f.q, 'w1', ['a'])
    assert.deepEqual(await w.claim(idle, true), [])
    assert.equal(w.counters.commits, 0, 'nothing to take: no write transaction')
    assert.equal(w.parkedClaims, 1)
    assert.notEqual(f.q.registry.get('w1'), undefined, 'asking to claim is a sign of life')
    w.unpark(idle)
    // Work of another type does not count; work of its type does.
    await w.write(() => f.q.submit(sub({ task_type: 'b' })))
    const again = claimer(f.q, 'w1', ['a'])
    assert.deepEqual(await w.claim(again, true), [])
    assert.equal(w.counters.commits, 1, 'only the submit committed')
    w.unpark(again)
    const queued = await w.write(() => f.q.submit(sub({ task_type: 'a' })))
    const busy = claimer(f.q, 'w2', ['a'])
    const commits = w.counters.commits
    const got = await w.claim(busy, true)
    assert.equal(got[0]?.task_id, queued.task_id)
    assert.equal(w.counters.commits, commits + 1)
    assert.equal(w.parkedClaims, 0)
  } finally { f.close() }
})
