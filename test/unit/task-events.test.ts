import { test } from 'node:test'
import assert from 'node:assert/strict'
import { openDatabase, QueueStore, type TaskChange } from '../../src/store/index.js'
import { TaskEvents } from '../../src/service/task-events.js'
import { claimIn, fixture, sub } from '../helpers/store-fixture.js'

const realClock = { now: (): number => Date.now() / 1000 }

test('a waiter is handed the task as its complete committed it; nobody else pays for the row', async () => {
  const f = fixture(realClock)
  const events = new TaskEvents(f.q)
  const seen: TaskChange[] = []
  f.q.on('change', (c) => seen.push(c))
  try {
    const watched = f.q.submit(sub({ payload: { n: 1 } })).task_id
    const unwatched = f.q.submit(sub({ payload: { n: 2 } })).task_id
    assert.equal(f.q.claim(claimIn('w', { max_tasks: 2 })).length, 2)
    assert.equal(f.q.watchesTask?.(watched), false, 'nobody waits yet')

    const woke = events.untilTerminal(watched, 5000)
    assert.equal(f.q.watchesTask?.(watched), true)
    f.q.complete({ task_id: unwatched, status: 'completed', result: { r: 2 }, error: '', worker_id: 'w' })
    f.q.complete({ task_id: watched, status: 'completed', result: { r: 1 }, error: '', worker_id: 'w' })

    const task = await woke
    assert.ok(task !== null, 'the wake carries the task')
    assert.equal(task.task_id, watched)
    assert.equal(task.status, 'completed')
    assert.deepEqual(task.result, { r: 1 })
    assert.deepEqual(task.payload, { n: 1 })
    assert.deepEqual(task, f.q.get(watched), 'exactly what a read after the commit returns')
    assert.equal(f.q.watchesTask?.(watched), false, 'the waiter is gone')

    const byId = new Map(seen.filter((c) => c.status === 'completed').map((c) => [c.task_id, c]))
    assert.equal(byId.get(unwatched)?.task, undefined, 'a task nobody waits on is not read in full')
    assert.equal(byId.get(unwatched)?.task_type, 'text-generation')
    assert.equal(byId.get(watched)?.task?.task_id, watched)
  } finally {
    events.close()
    f.close()
  }
  assert.equal(f.q.watchesTask, null, 'close detaches the hook')
})

test('a park ended by its timeout or its signal resolves null, not an event', async () => {
  const f = fixture(realClock)
  const events = new TaskEvents(f.q)
  try {
    const id = f.q.submit(sub()).task_id
    assert.equal(await events.untilTerminal(id, 20), null)
    const ac = new AbortController()
    const parked = events.untilTerminal(id, 5000, ac.signal)
    ac.abort()
    assert.equal(await parked, null)
    assert.equal(await events.untilWork(20), null)
  } finally {
    events.close()
    f.close()
  }
})

test('another connection\'s commit wakes waiters, and the watch outlives back-to-back parks', async () => {
  const f = fixture(realClock)
  const db2 = openDatabase(f.path)
  const other = new QueueStore({ db: db2, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false, ...realClock })
  const events = new TaskEvents(f.q)
  try {
    assert.equal(events.watchingExternal, false, 'no watch before anybody waits')
    const id = f.q.submit(sub()).task_id
    assert.equal(await events.untilTerminal(id, 10), null)
    assert.equal(events.watchingExternal, true, 'the watch lingers after its waiter left')

    const parked = events.untilTerminal(id, 10_000)
    const started = Date.now()
    other.claim(claimIn('w'))
    other.complete({ task_id: id, status: 'completed', result: null, error: '', worker_id: 'w' })
    // The other process's change raises no event here: the data_version watch (100 ms) wakes us.
    assert.equal(await parked, null)
    assert.ok(Date.now() - started < 5000, 'woken by the watch, not by the timeout')
    assert.equal(f.q.get(id)?.status, 'completed')
  } finally {
    events.close()
    db2.close()
    f.close()
  }
  assert.equal(events.watchingExternal, false, 'close stops the watch')
})

test('a delayed task queued while a claimer waits bounds that claimer\'s next park', async () => {
  const f = fixture(realClock)
  const events = new TaskEvents(f.q)
  try {
    // Learn "no delayed work" first, as an idle claimer does.
    assert.equal(await events.untilWork(10), null)
    const first = events.untilWork(10_000)
    f.q.submit(sub({ next_attempt_at: Date.now() / 1000 + 0.4 }))
    await first // the queued change wakes it at once
    const started = Date.now()
    // The claimer found nothing eligible yet and parks again; with a 30 s budget and
    // recheckMs 10 s only the cached next_attempt_at can end this park in time.
    await events.untilWork(30_000, undefined, { recheckMs: 10_000 })
    const waited = Date.now() - started
    assert.ok(waited >= 300, `woke after ${waited} ms, before the task was due`)
    assert.ok(waited < 5000, `woke after ${waited} ms, not at the task's next_attempt_at`)
    assert.equal(f.q.claim(claimIn('w')).length, 1, 'due now')
    // The remembered time has passed: it is read again (nothing delayed is left), so
    // the next park lasts its full budget instead of waking at once over and over.
    const idle = Date.now()
    await events.untilWork(300, undefined, { recheckMs: 10_000 })
    assert.ok(Date.now() - idle >= 250, 'a due, already claimed task does not end later parks early')
  } finally {
    events.close()
    f.close()
  }
})
