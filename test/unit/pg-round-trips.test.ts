/**
 * Round trips to PostgreSQL per queue op: every `query` a pooled connection sends is one
 * round trip (node-postgres waits for each reply before sending the next), counted here
 * by wrapping `pg.Client.prototype.query` around each op. The bounds are the write path's
 * shape (store/pg/queue.ts, store/pg/group-commit.ts), not a speed: a change that
 * puts a round trip back into a write fails here.
 */
import { after, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { claimIn, sub } from '../helpers/store-fixture.js'
import { postgresBackend } from '../helpers/store-backends.js'

const backend = postgresBackend()
after(async () => { await backend.shutdown() })

/** Runs `fn` and returns how many queries (round trips) it sent to the database. */
async function roundTrips (fn: () => Promise<unknown>): Promise<number> {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }
  const original = proto.query
  let count = 0
  proto.query = function (this: unknown, ...args: unknown[]) {
    count++
    return original.apply(this, args)
  }
  try {
    await fn()
  } finally {
    proto.query = original
  }
  return count
}

test('postgres: round trips per op', async (t: TestContext) => {
  if (!backend.available(t)) return
  // Per-peer bounds on, as serve runs by default: a remote submit is checked against them.
  const f = await backend.open({ submitterLimits: { maxTasks: 100_000, maxBytes: 1 << 30 } })
  const { q } = f
  try {
    const figures: Record<string, number> = {}
    // Warm: the first claim also reads whether a lease is due.
    await q.claim(claimIn('w'))
    figures.submit = await roundTrips(async () => await q.submit(sub({ idempotency_key: 'k-one' })))
    figures['submit (replayed key)'] = await roundTrips(async () => await q.submit(sub({ idempotency_key: 'k-one' })))
    figures['submit (remote peer, bounded)'] = await roundTrips(async () => await q.submit(sub({ idempotency_key: 'k-peer', submitter: 'peer-a' })))
    await q.claim(claimIn('w'))
    let id = ''
    figures.claim = await roundTrips(async () => { id = (await q.claim(claimIn('w')))[0].task_id })
    figures.heartbeat = await roundTrips(async () => await q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 60, progress: null }))
    figures.complete = await roundTrips(async () => await q.complete({ task_id: id, status: 'completed', result: { ok: 1 }, error: '', worker_id: 'w' }))
    // A task whose progress is stored: the group's one-statement UPDATE leaves it to the full path.
    await q.submit(sub())
    id = (await q.claim(claimIn('w')))[0].task_id
    figures['heartbeat with progress'] = await roundTrips(async () => await q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 60, progress: { p: 1 } }))
    figures['complete after progress'] = await roundTrips(async () => await q.complete({ task_id: id, status: 'completed', result: { ok: 1 }, error: '', worker_id: 'w' }))
    const many = 250
    let ids: string[] = []
    // submit_many / complete_many call the store once per item, all in the same tick.
    figures[`${many} submits at once`] = await roundTrips(async () => {
      ids = (await Promise.all(Array.from({ length: many }, async (_, i) => await q.submit(sub({ idempotency_key: `k${i}`, submitter: 'peer-b' }))))).map((r) => r.task_id)
    })
    const claimed = await q.claim(claimIn('w', { max_tasks: many }))
    assert.equal(claimed.length, many)
    figures[`${many} completes at once`] = await roundTrips(async () => {
      await Promise.all(ids.map(async (task) => await q.complete({ task_id: task, status: 'completed', result: null, error: '', worker_id: 'w' })))
    })
    t.diagnostic(`round trips: ${JSON.stringify(figures)}`)
    // The write path's shape: BEGIN travels with the first statement; the event log,
    // pg_notify and COMMIT are one query; items arriving together share one transaction.
    assert.deepEqual(figures, {
      submit: 2,
      'submit (replayed key)': 3,
      'submit (remote peer, bounded)': 2,
      claim: 2,
      heartbeat: 1,
      complete: 2,
      'heartbeat with progress': 3,
      'complete after progress': 5,
      [`${many} submits at once`]: 2,
      [`${many} completes at once`]: 2
    })
  } finally {
    await f.close()
  }
})
