/**
 * ONE conformance suite for the queue store, run against both backends: the embedded
 * SQLite `QueueStore` and the PostgreSQL `PgQueueStore` (a throwaway cluster started
 * by test/helpers/postgres.ts). Every case speaks only the `TaskStore` contract and
 * awaits every call, so the same assertions hold for the synchronous and the
 * asynchronous store. What is not covered here: the cache (its own suite on both
 * backends: cache-conformance.test.ts) and the deterministic scheduler (a single coordinator's view; tests in
 * store-scheduler.test.ts).
 */
import { after, describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { TaskChange, TaskStore } from '../../src/store/index.js'
import { TaskQueueError } from '../../src/protocol/errors.js'
import { claimIn, sub } from '../helpers/store-fixture.js'
import { postgresBackend, sqliteBackend, type Backend, type BackendFixture, type StoreOptions } from '../helpers/store-backends.js'

/** The typed error code `fn` fails with (SQLite throws synchronously, PostgreSQL rejects). */
async function code (fn: () => unknown): Promise<string> {
  try { await fn() } catch (err) { return err instanceof TaskQueueError ? err.code : `untyped: ${String(err)}` }
  return 'no error'
}

for (const backend of [sqliteBackend(), postgresBackend()]) {
  describe(`store conformance: ${backend.name}`, () => {
    after(async () => { await backend.shutdown() })
    conformance(backend)
  })
}

function conformance (backend: Backend): void {
  /** Runs `fn` with a fresh store of this backend, closed afterwards. */
  const withStore = (name: string, fn: (f: BackendFixture) => Promise<void>, opts?: StoreOptions): void => {
    test(name, async (t: TestContext) => {
      if (!backend.available(t)) return
      const f = await backend.open(opts)
      try { await fn(f) } finally { await f.close() }
    })
  }

  withStore('claims follow priority, then age', async ({ q, clock }) => {
    const low = (await q.submit(sub({ priority: 1 }))).task_id
    const a = (await q.submit(sub({ priority: 5 }))).task_id
    clock.advance(1)
    const hi = (await q.submit(sub({ priority: 9 }))).task_id
    const b = (await q.submit(sub({ priority: 5 }))).task_id
    const got = (await q.claim(claimIn('w', { max_tasks: 10 }))).map(t => t.task_id)
    assert.deepEqual(got, [hi, a, b, low])
    const t = await q.get(hi)
    assert.equal(t?.status, 'running')
    assert.equal(t?.attempt, 1)
    assert.equal(t?.assigned_worker, 'w')
    assert.equal(t?.lease_until, clock.t + 3600)
    assert.match(hi, /^[0-9a-f]{32}$/)
    assert.deepEqual(await q.claim(claimIn('w')), [])
  })

  withStore('claimed task shape, type filters, same_task_type and the reply byte cap', async ({ q }) => {
    await q.submit(sub({ task_type: 'echo', payload: { i: 1 } }))
    await q.submit(sub({ task_type: 'sleep' }))
    await q.submit(sub({ task_type: 'echo', payload: { i: 2 } }))
    const one = await q.claim(claimIn('w', { task_types: ['sleep'], lease_s: 60 }))
    assert.equal(one.length, 1)
    assert.deepEqual(Object.keys(one[0]).sort(), ['assigned_worker', 'attempt', 'created_at', 'lease_s', 'lease_until', 'max_attempts', 'model_name', 'payload', 'priority', 'status', 'task_id', 'task_type'])
    assert.equal(one[0].task_type, 'sleep')
    assert.equal(one[0].lease_s, 60)
    for (let i = 0; i < 4; i++) await q.submit(sub({ task_type: i % 2 === 0 ? 'sleep' : 'echo', payload: { blob: 'x'.repeat(1000) } }))
    const same = await q.claim(claimIn('w', { max_tasks: 10, same_task_type: true }))
    assert.ok(same.length >= 2)
    assert.ok(same.every(t => t.task_type === 'echo'), 'one type per same_task_type batch')
    const capped = await q.claim(claimIn('w', { max_tasks: 10, max_reply_bytes: 10 }))
    assert.equal(capped.length, 1, 'the first task goes out even past the cap')
    assert.ok((await q.claim(claimIn('w', { max_tasks: 10, max_reply_bytes: 1500 }))).length === 1)
    assert.equal((await q.counts()).queued, 0)
  })

  withStore('idempotency keys replay identical work and refuse different work', async ({ q }) => {
    const first = await q.submit(sub({ idempotency_key: 'k1', payload: { a: 1, b: [1, 2] } }))
    const again = await q.submit(sub({ idempotency_key: 'k1', payload: { b: [1, 2], a: 1 } }))
    assert.deepEqual(again, { task_id: first.task_id, replayed: true })
    assert.equal(await code(() => q.submit(sub({ idempotency_key: 'k1', payload: { a: 2 } }))), 'idempotency_conflict')
    assert.equal((await q.counts()).queued, 1)
  })

  withStore('leases: heartbeat renews, expiry requeues, the last attempt fails', async ({ q, clock }) => {
    const id = (await q.submit(sub({ max_attempts: 2 }))).task_id
    await q.claim(claimIn('w1', { lease_s: 30 }))
    clock.advance(20)
    const hb = await q.heartbeatTask({ task_id: id, worker_id: 'w1', lease_s: 30, progress: { pct: 50 } })
    assert.equal(hb.lease_until, clock.t + 30)
    clock.advance(20) // past the first lease, inside the renewed one
    assert.deepEqual(await q.claim(claimIn('w2')), [])
    assert.deepEqual((await q.get(id))?.result, { progress: { pct: 50 } })
    clock.advance(11)
    const second = await q.claim(claimIn('w2', { lease_s: 30 }))
    assert.equal(second[0]?.task_id, id, 'an expired lease is requeued and claimable')
    assert.equal(second[0].attempt, 2)
    const t = await q.get(id)
    assert.equal(t?.errors.length, 1)
    assert.equal(t?.errors[0].error, 'lease expired')
    clock.advance(31)
    const swept = await q.sweep()
    assert.deepEqual(swept, { requeued: 0, failed: 1 })
    const failed = await q.get(id)
    assert.equal(failed?.status, 'failed')
    assert.match(failed?.error ?? '', /lease expired after maximum attempts/)
    assert.ok(q.leaseExpiries >= 2)
  })

  withStore('owner guards on complete, heartbeat and release; replays', async ({ q }) => {
    const id = (await q.submit(sub())).task_id
    assert.equal(await code(() => q.complete({ task_id: 'nope', status: 'completed', result: null, error: '', worker_id: 'w' })), 'task_not_found')
    assert.equal(await code(() => q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 30, progress: null })), 'task_not_running')
    await q.claim(claimIn('w'))
    assert.equal(await code(() => q.complete({ task_id: id, status: 'completed', result: { x: 1 }, error: '', worker_id: 'other' })), 'not_owner')
    assert.equal(await code(() => q.heartbeatTask({ task_id: id, worker_id: 'other', lease_s: 30, progress: null })), 'not_owner')
    assert.equal(await code(() => q.release({ task_id: id, worker_id: 'other', reason: 'x', delay_s: 0 })), 'not_owner')
    assert.deepEqual(await q.complete({ task_id: id, status: 'completed', result: { x: 1 }, error: '', worker_id: 'w' }), { task_id: id, replayed: false })
    assert.deepEqual(await q.complete({ task_id: id, status: 'completed', result: { x: 1 }, error: '', worker_id: 'w' }), { task_id: id, replayed: true })
    assert.equal(await code(() => q.complete({ task_id: id, status: 'failed', result: null, error: 'e', worker_id: 'w' })), 'task_not_running')
    const t = await q.get(id)
    assert.equal(t?.status, 'completed')
    assert.deepEqual(t?.result, { x: 1 })
  })

  withStore('release requeues with a delay and gives the attempt back', async ({ q, clock }) => {
    const id = (await q.submit(sub())).task_id
    await q.claim(claimIn('w'))
    await q.release({ task_id: id, worker_id: 'w', reason: 'busy', delay_s: 10 })
    const t = await q.get(id)
    assert.equal(t?.status, 'queued')
    assert.equal(t?.attempt, 0)
    assert.equal((t?.result as { progress?: { release_count?: number } } | null)?.progress?.release_count, 1)
    assert.deepEqual(await q.claim(claimIn('w')), [])
    assert.equal(q.nextEligibleAt(), clock.t + 10)
    clock.advance(10)
    assert.equal((await q.claim(claimIn('w')))[0]?.task_id, id)
  })

  withStore('retries with backoff, then a final failure with every attempt\'s error', async ({ q, clock }) => {
    const id = (await q.submit(sub({ max_attempts: 2, backoff: { type: 'fixed', delay_s: 5 } }))).task_id
    await q.claim(claimIn('w'))
    const r1 = await q.complete({ task_id: id, status: 'failed', result: null, error: 'boom 1', worker_id: 'w', retry: true })
    assert.equal(r1.retry_at, clock.t + 5)
    // A resent failure of the same attempt is a replay, not a second failure.
    assert.equal((await q.complete({ task_id: id, status: 'failed', result: null, error: 'boom 1', worker_id: 'w', retry: true })).replayed, true)
    assert.deepEqual(await q.claim(claimIn('w')), [], 'not claimable during its backoff')
    clock.advance(5)
    assert.equal((await q.claim(claimIn('w')))[0]?.attempt, 2)
    const r2 = await q.complete({ task_id: id, status: 'failed', result: null, error: 'boom 2', worker_id: 'w', retry: true })
    assert.equal(r2.retry_at, undefined, 'no attempts left: failed for good')
    const t = await q.get(id)
    assert.equal(t?.status, 'failed')
    assert.deepEqual(t?.errors.map(e => [e.attempt, e.error, e.worker_id]), [[1, 'boom 1', 'w'], [2, 'boom 2', 'w']])
    assert.deepEqual(t?.backoff, { type: 'fixed', delay_s: 5 })
  })

  withStore('delayed tasks wait for next_attempt_at', async ({ q, clock }) => {
    const later = (await q.submit(sub({ next_attempt_at: clock.t + 60 }))).task_id
    assert.deepEqual(await q.claim(claimIn('w')), [])
    assert.equal(q.nextEligibleAt(), clock.t + 60)
    clock.advance(60)
    assert.equal((await q.claim(claimIn('w')))[0]?.task_id, later)
  })

  withStore('affinity: sticky workers and sessions', async ({ q }) => {
    const sticky = (await q.submit(sub({ payload: { sticky_worker_id: 'w2' } }))).task_id
    const session = (await q.submit(sub({ payload: { session_id: 's1' } }))).task_id
    assert.deepEqual(await q.claim(claimIn('w1', { max_tasks: 10 })), [])
    assert.deepEqual((await q.claim(claimIn('w1', { max_tasks: 10, session: 's1' }))).map(t => t.task_id), [session])
    assert.deepEqual((await q.claim(claimIn('w2', { max_tasks: 10 }))).map(t => t.task_id), [sticky])
  })

  withStore('pause and resume, by type and for the whole queue; submits still go in', async ({ q }) => {
    await q.submit(sub({ task_type: 'echo' }))
    await q.submit(sub({ task_type: 'sleep' }))
    assert.deepEqual(await q.pause(['echo']), { all: false, task_types: ['echo'] })
    assert.deepEqual((await q.claim(claimIn('w', { max_tasks: 10 }))).map(t => t.task_type), ['sleep'])
    assert.deepEqual(await q.claim(claimIn('w', { task_types: ['echo'] })), [])
    assert.equal(await q.mayClaim(claimIn('w', { task_types: ['echo'] })), false)
    let resumed = 0
    q.on('resumed', () => { resumed++ })
    await q.resume(['echo'])
    assert.ok(resumed >= 1)
    assert.equal(await q.mayClaim(claimIn('w', { task_types: ['echo'] })), true)
    await q.pause(null)
    assert.deepEqual(await q.paused(), { all: true, task_types: [] })
    await q.submit(sub({ task_type: 'echo' }))
    assert.deepEqual(await q.claim(claimIn('w', { max_tasks: 10 })), [])
    await q.resume(null)
    assert.equal((await q.claim(claimIn('w', { max_tasks: 10 }))).length, 2)
  })

  withStore('cancel: queued tasks only; complete(cancelled) on a queued task cancels it', async ({ q }) => {
    const a = (await q.submit(sub())).task_id
    const b = (await q.submit(sub())).task_id
    assert.deepEqual(await q.cancel(a, 'no longer needed'), { cancelled: true })
    assert.deepEqual(await q.cancel(a), { cancelled: false })
    const ta = await q.get(a)
    assert.equal(ta?.status, 'cancelled')
    assert.equal((ta?.result as { progress?: { cancel_reason?: string } }).progress?.cancel_reason, 'no longer needed')
    assert.equal((await q.complete({ task_id: b, status: 'cancelled', result: null, error: '', worker_id: '' })).cancelled, true)
    const c = (await q.submit(sub())).task_id
    await q.claim(claimIn('w'))
    assert.deepEqual(await q.cancel(c), { cancelled: false })
  })

  withStore('list pages in insertion order with a cursor and a status filter; counts', async ({ q }) => {
    const ids: string[] = []
    for (let i = 0; i < 7; i++) ids.push((await q.submit(sub({ task_type: i % 2 === 0 ? 'echo' : 'sleep', priority: 1 + i }))).task_id)
    const page1 = await q.list({ status: null, limit: 3, task_types: null, cursor: null, order: 'asc', max_bytes: 0 })
    assert.deepEqual(page1.tasks.map(t => t.task_id), ids.slice(0, 3))
    assert.notEqual(page1.next_cursor, null)
    const page2 = await q.list({ status: null, limit: 10, task_types: null, cursor: page1.next_cursor, order: 'asc', max_bytes: 0 })
    assert.deepEqual(page2.tasks.map(t => t.task_id), ids.slice(3))
    assert.equal(page2.next_cursor, null)
    const desc = await q.list({ status: 'queued', limit: 2, task_types: ['sleep'], cursor: null, order: 'desc', max_bytes: 0 })
    assert.deepEqual(desc.tasks.map(t => t.task_id), [ids[5], ids[3]])
    await q.claim(claimIn('w', { max_tasks: 2 }))
    const counts = await q.counts()
    assert.equal(counts.queued, 5)
    assert.equal(counts.running, 2)
    assert.equal((await q.list({ status: 'running', limit: 10, task_types: null, cursor: null, order: 'asc', max_bytes: 0 })).tasks.length, 2)
    assert.equal((await q.list({ status: 'bogus', limit: 10, task_types: null, cursor: null, order: 'asc', max_bytes: 0 })).tasks.length, 0)
  })

  withStore('retry requeues failed tasks with fresh attempts; purge deletes what is not running', async ({ q }) => {
    const a = (await q.submit(sub({ task_type: 'echo' }))).task_id
    const b = (await q.submit(sub({ task_type: 'echo' }))).task_id
    await q.claim(claimIn('w', { max_tasks: 2 }))
    await q.complete({ task_id: a, status: 'failed', result: null, error: 'x', worker_id: 'w' })
    const r = await q.retryTasks({ task_ids: [a, b, 'missing'], statuses: ['failed'], task_types: null, since: null, until: null, limit: 100, delay_s: 0 })
    assert.deepEqual(r.task_ids, [a])
    assert.deepEqual(r.skipped, [{ task_id: b, status: 'running' }, { task_id: 'missing', status: 'not_found' }])
    const ta = await q.get(a)
    assert.equal(ta?.status, 'queued')
    assert.equal(ta?.attempt, 0)
    assert.equal(ta?.errors.length, 1)
    assert.equal(await q.purge({ statuses: ['queued'], task_types: ['echo'], before: null, limit: 100 }), 1)
    assert.equal(await q.get(a), null)
    assert.equal((await q.get(b))?.status, 'running', 'running tasks are never purged')
  })

  withStore('retention prunes finished tasks by age and beyond the count bound, never a watched task', async ({ q, clock }) => {
    const done: string[] = []
    for (let i = 0; i < 4; i++) {
      const id = (await q.submit(sub({ keep_s: i === 0 ? 10 : null }))).task_id
      await q.claim(claimIn('w'))
      await q.complete({ task_id: id, status: 'completed', result: null, error: '', worker_id: 'w' })
      done.push(id)
    }
    q.watchesTask = (id) => id === done[1]
    clock.advance(11)
    const first = await q.prune()
    assert.equal(first.pruned, 1, 'keep_s expired one; the bound of 2 finished tasks would take the next oldest, but it is watched')
    assert.equal(await q.get(done[0]), null)
    assert.notEqual(await q.get(done[1]), null, 'a watched task stays')
    q.watchesTask = null
    assert.equal((await q.prune()).pruned, 1)
    assert.equal(await q.get(done[1]), null, 'the oldest finished task beyond the bound goes')
    assert.equal(await q.prunedTotal(), 2)
    q.watchesTask = null
  }, { retention: { completedS: 3600, failedS: 3600, maxFinished: 2 } })

  withStore('the event log: every change in commit order, resumable by cursor, trimmed to its bound', async ({ q }) => {
    const seen: TaskChange[] = []
    q.on('change', (c) => { seen.push(c) })
    const id = (await q.submit(sub())).task_id
    await q.claim(claimIn('w'))
    await q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 60, progress: { step: 1 } })
    await q.complete({ task_id: id, status: 'completed', result: { ok: 1 }, error: '', worker_id: 'w' })
    assert.deepEqual(seen.map(c => c.kind), ['submitted', 'claimed', 'progress', 'completed'])
    const page = await q.events.read(0, 2)
    assert.deepEqual(page.events.map(e => e.kind), ['submitted', 'claimed'])
    assert.equal(page.more, true)
    const rest = await q.events.read(page.cursor, 10)
    assert.deepEqual(rest.events.map(e => [e.kind, e.task_id]), [['progress', id], ['completed', id]])
    assert.deepEqual((rest.events[0] as unknown as { progress: unknown }).progress, { step: 1 })
    assert.equal(rest.more, false)
    for (let i = 0; i < 4; i++) await q.submit(sub())
    // Text that needs quoting reaches the log intact (PostgreSQL writes it as escaped literals).
    const odd = (await q.submit(sub({ task_type: "o'brien \\ \"x\"; --" }))).task_id
    const last = (await q.events.read(rest.cursor + 4, 10)).events
    assert.deepEqual(last.map(e => [e.task_id, e.task_type]), [[odd, "o'brien \\ \"x\"; --"]])
    assert.equal(await q.events.newest(), rest.cursor + 5)
    assert.equal(await q.events.trim(), 4 + 5 - 6)
    const after = await q.events.read(0, 100)
    assert.equal(after.gap, true)
    assert.equal(after.events.length, 6)
  }, { eventsMax: 6 })

  withStore('a second store on the same queue: no task claimed twice, changes seen across stores', async ({ q, another }) => {
    const other = await another()
    const ids = new Set<string>()
    for (let i = 0; i < 40; i++) ids.add((await q.submit(sub())).task_id)
    const claims = await Promise.all(Array.from({ length: 20 }, async (_, i) => await (i % 2 === 0 ? q : other).claim(claimIn(`w${i}`, { max_tasks: 3 }))))
    const got = claims.flat().map(t => t.task_id)
    assert.equal(new Set(got).size, got.length, 'no task handed out twice')
    assert.equal(got.length, 40)
    assert.deepEqual(new Set(got), ids)
    if (backend.name !== 'postgres') return
    // Across coordinators: a complete on one store reaches the other's listeners.
    const heard = new Promise<TaskChange>((resolve) => {
      q.on('change', (c) => { if (c.kind === 'completed') resolve(c) })
    })
    const t = claims.flat()[0]
    await other.complete({ task_id: t.task_id, status: 'completed', result: null, error: '', worker_id: t.assigned_worker })
    const c = await heard
    assert.equal(c.task_id, t.task_id)
    assert.ok(q.dataVersion() > 0)
  })

  withStore('change events only after the commit, carrying the task to a watcher', async ({ q }) => {
    const id = (await q.submit(sub())).task_id
    await q.claim(claimIn('w'))
    q.watchesTask = (x) => x === id
    let carried: TaskChange | undefined
    q.on('change', (c) => { if (c.kind === 'completed') carried = c })
    await q.complete({ task_id: id, status: 'completed', result: { r: 1 }, error: '', worker_id: 'w' })
    assert.equal(carried?.task?.status, 'completed')
    assert.deepEqual(carried?.task?.result, { r: 1 })
    q.watchesTask = null
  })

  // ★ PEER_MAX_TASKS / PEER_MAX_TASK_BYTES (README "Security"): the per-submitter totals
  // the triggers keep, through every way a task opens and finishes, and the refusal.
  withStore('per-submitter totals follow every transition; the bounds refuse typed, write nothing, let replays through', async ({ q, clock, another }) => {
    const A = 'peer-a'
    const B = 'peer-b'
    const usage = async (who: string): Promise<{ tasks: number, bytes: number }> => await q.submitterUsage(who)
    const refusal = async (fn: () => unknown): Promise<{ code: string, limit: unknown, retryable: boolean }> => {
      try { await fn() } catch (err) {
        if (err instanceof TaskQueueError) return { code: err.code, limit: err.extra?.limit, retryable: err.retryable }
        throw err
      }
      return { code: 'no error', limit: undefined, retryable: false }
    }
    const bytes = (payload: object): number => Buffer.byteLength(JSON.stringify(payload))
    const p = { text: 'naïve ☃' } // multi-byte: bytes, not characters
    const a1 = (await q.submit(sub({ submitter: A, payload: p }))).task_id
    const a2 = (await q.submit(sub({ submitter: A, payload: p, idempotency_key: 'k2' }))).task_id
    const a3 = (await q.submit(sub({ submitter: A, payload: p, max_attempts: 1 }))).task_id
    assert.deepEqual(await usage(A), { tasks: 3, bytes: 3 * bytes(p) })
    const before = (await q.counts()).queued
    assert.deepEqual(await refusal(() => q.submit(sub({ submitter: A, payload: p }))), { code: 'rate_limited', limit: 'PEER_MAX_TASKS', retryable: true })
    assert.equal((await q.counts()).queued, before, 'a refused submit writes nothing')
    assert.deepEqual(await usage(A), { tasks: 3, bytes: 3 * bytes(p) })
    // A resent submit (lost reply) at the bound is answered as the replay it is.
    assert.deepEqual(await q.submit(sub({ submitter: A, payload: p, idempotency_key: 'k2' })), { task_id: a2, replayed: true })
    // Local submits carry no submitter and are never bounded.
    await q.submit(sub({ payload: { big: 'x'.repeat(500) } }))
    // Another peer has its own totals; the byte bound counts payload bytes.
    assert.deepEqual(await refusal(() => q.submit(sub({ submitter: B, payload: { big: 'x'.repeat(200) } }))), { code: 'rate_limited', limit: 'PEER_MAX_TASK_BYTES', retryable: true })
    assert.deepEqual(await usage(B), { tasks: 0, bytes: 0 })
    await q.submit(sub({ submitter: B, payload: { n: 1 } }))
    assert.deepEqual(await usage(B), { tasks: 1, bytes: bytes({ n: 1 }) })
    // Another process or coordinator on the same queue reads the same totals (restarts too).
    const other = await another()
    assert.deepEqual(await other.submitterUsage(A), { tasks: 3, bytes: 3 * bytes(p) })

    // Running still counts; completing frees a place.
    const c1 = await q.claim(claimIn('w', { max_tasks: 10 }))
    assert.ok(c1.length >= 3)
    assert.equal((await usage(A)).tasks, 3)
    await q.complete({ task_id: a1, status: 'completed', result: null, error: '', worker_id: 'w' })
    assert.deepEqual(await usage(A), { tasks: 2, bytes: 2 * bytes(p) })
    // A failure retried later stays unfinished; one failed for good does not.
    await q.complete({ task_id: a2, status: 'failed', result: null, error: 'e', worker_id: 'w', retry: true })
    assert.equal((await usage(A)).tasks, 2)
    // A lease that runs out on the last attempt fails the task (sweep).
    clock.advance(7200)
    await q.sweep()
    assert.equal((await q.get(a3))?.status, 'failed')
    assert.deepEqual(await usage(A), { tasks: 1, bytes: bytes(p) })
    // Retried by an operator: unfinished again.
    await q.retryTasks({ task_ids: [a3], statuses: ['failed'], task_types: null, since: null, until: null, limit: 10, delay_s: 0 })
    assert.equal((await usage(A)).tasks, 2)
    // Cancel, delete and purge of unfinished tasks free their places.
    await q.cancel(a3)
    assert.equal((await usage(A)).tasks, 1)
    const a4 = (await q.submit(sub({ submitter: A, payload: p }))).task_id
    assert.equal((await usage(A)).tasks, 2)
    assert.equal(await q.delete(a4), true)
    assert.equal((await usage(A)).tasks, 1)
    assert.equal(await q.purge({ statuses: ['queued'], task_types: null, before: null, limit: 100 }) > 0, true)
    assert.deepEqual(await usage(A), { tasks: 0, bytes: 0 })
    assert.deepEqual(await other.submitterUsage(A), { tasks: 0, bytes: 0 })
    // Three places again.
    for (let i = 0; i < 3; i++) await q.submit(sub({ submitter: A, payload: p }))
    assert.equal((await refusal(() => q.submit(sub({ submitter: A, payload: p })))).limit, 'PEER_MAX_TASKS')
  }, { submitterLimits: { maxTasks: 3, maxBytes: 100 } })

  withStore('postgres: per-submitter rows of several server processes are folded by retention, and emptied ones dropped', async ({ q, clock, another }) => {
    if (backend.name !== 'postgres') return
    const { PgQueueStore } = await import('../../src/store/pg/queue.js')
    assert.ok(q instanceof PgQueueStore)
    const other = await another()
    // Submitted on one coordinator, finished on another: rows of two server processes.
    for (let i = 0; i < 4; i++) await q.submit(sub({ submitter: 'peer-a', payload: { i } }))
    await q.submit(sub({ submitter: 'peer-b', payload: { i: 9 } }))
    for (const t of await other.claim(claimIn('w', { max_tasks: 3, task_types: null }))) {
      await other.complete({ task_id: t.task_id, status: 'completed', result: null, error: '', worker_id: 'w' })
    }
    const rows = async (): Promise<Array<{ submitter: string, n: string }>> =>
      (await q.pool.query<{ submitter: string, n: string }>('SELECT submitter, count(*) AS n FROM tq_submitter_usage GROUP BY submitter ORDER BY submitter')).rows
    const totals = { a: await q.submitterUsage('peer-a'), b: await q.submitterUsage('peer-b') }
    assert.ok((await rows()).some((r) => Number(r.n) > 1), 'rows of more than one server process before the fold')
    clock.advance(60)
    await q.prune()
    assert.ok((await rows()).every((r) => Number(r.n) === 1), 'one row per submitter after the fold')
    assert.deepEqual({ a: await q.submitterUsage('peer-a'), b: await q.submitterUsage('peer-b') }, totals, 'the fold keeps the sums')
    for (const t of await other.claim(claimIn('w', { max_tasks: 10, task_types: null }))) {
      await other.complete({ task_id: t.task_id, status: 'completed', result: null, error: '', worker_id: 'w' })
    }
    clock.advance(60)
    await q.prune()
    assert.deepEqual(await rows(), [], 'submitters with nothing unfinished leave no rows')
  })

  withStore('progress merged from heartbeats stays bounded: past MAX_PROGRESS_CHARS the newest patch replaces it', async ({ q }) => {
    const { MAX_PROGRESS_CHARS } = await import('../../src/store/queue-util.js')
    const id = (await q.submit(sub())).task_id
    await q.claim(claimIn('w'))
    const chunk = 'x'.repeat(40_000)
    for (let i = 0; i < 20; i++) await q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 60, progress: { [`k${i}`]: chunk } })
    const progress = ((await q.get(id))?.result as { progress?: Record<string, unknown> } | null)?.progress ?? {}
    assert.ok(JSON.stringify(progress).length <= MAX_PROGRESS_CHARS, `${JSON.stringify(progress).length} characters kept`)
    assert.equal(progress.k19, chunk, 'the newest progress is kept')
    // Small updates still merge.
    await q.heartbeatTask({ task_id: id, worker_id: 'w', lease_s: 60, progress: { step: 1 } })
    const merged = ((await q.get(id))?.result as { progress?: Record<string, unknown> } | null)?.progress ?? {}
    assert.deepEqual([merged.k19 === chunk, merged.step], [true, 1])
  })

  withStore('per-submitter bounds of 0 are off; totals are still kept', async ({ q }) => {
    for (let i = 0; i < 20; i++) await q.submit(sub({ submitter: 'peer-a', payload: { blob: 'x'.repeat(100) } }))
    assert.equal((await q.submitterUsage('peer-a')).tasks, 20)
  }, { submitterLimits: { maxTasks: 0, maxBytes: 0 } })

  withStore('writes arriving together: each gets its own outcome, a bad one fails alone', async ({ q }) => {
    // On PostgreSQL these calls share one group transaction (pg/group-commit.ts).
    const call = async <T>(f: () => T | Promise<T>): Promise<T> => await f() // SQLite throws synchronously
    const prior = (await q.submit(sub({ idempotency_key: 'taken', payload: { a: 1 } }))).task_id
    const outs = await Promise.allSettled([
      call(() => q.submit(sub({ payload: { i: 0 } }))),
      call(() => q.submit(sub({ task_type: 'bad\u0000type' }))), // text the database cannot store
      call(() => q.submit(sub({ idempotency_key: 'taken', payload: { a: 1 } }))), // replays
      call(() => q.submit(sub({ idempotency_key: 'taken', payload: { a: 2 } }))), // conflicts
      call(() => q.submit(sub({ idempotency_key: 'twice', payload: { b: 1 } }))),
      call(() => q.submit(sub({ idempotency_key: 'twice', payload: { b: 1 } }))), // the same key twice in one group
      call(() => q.submit(sub({ payload: { i: 1 } })))
    ])
    const ok = outs.map((o) => o.status === 'fulfilled' ? o.value : null)
    assert.equal(ok[0]?.replayed, false)
    // PostgreSQL cannot store a NUL in text (a typed invalid_params); SQLite can.
    const nulRefused = backend.name === 'postgres'
    assert.equal(outs[1].status === 'rejected' ? (outs[1].reason as TaskQueueError).code : 'stored', nulRefused ? 'invalid_params' : 'stored')
    assert.deepEqual(ok[2], { task_id: prior, replayed: true })
    assert.equal(outs[3].status === 'rejected' && (outs[3].reason as TaskQueueError).code, 'idempotency_conflict')
    assert.equal(ok[4]?.replayed, false)
    assert.deepEqual(ok[5], { task_id: ok[4]?.task_id, replayed: true })
    assert.equal(ok[6]?.replayed, false)
    const written = [prior, ok[0]?.task_id, ...(nulRefused ? [] : [ok[1]?.task_id]), ok[4]?.task_id, ok[6]?.task_id]
    assert.equal((await q.counts()).queued, written.length)
    const claimed = await q.claim(claimIn('w', { max_tasks: 10 }))
    assert.deepEqual(claimed.map((t) => t.task_id), written, 'submit order kept in one group')
    await q.heartbeatTask({ task_id: prior, worker_id: 'w', lease_s: 60, progress: { step: 1 } })
    const done = await Promise.allSettled([
      call(() => q.complete({ task_id: ok[0]?.task_id ?? '', status: 'completed', result: { r: 0 }, error: '', worker_id: 'w' })),
      call(() => q.complete({ task_id: 'no-such-task', status: 'completed', result: null, error: '', worker_id: 'w' })),
      call(() => q.complete({ task_id: ok[4]?.task_id ?? '', status: 'completed', result: null, error: '', worker_id: 'someone-else' })),
      call(() => q.complete({ task_id: prior, status: 'completed', result: { r: 1 }, error: '', worker_id: 'w' })), // progress stored: full path
      call(() => q.complete({ task_id: ok[6]?.task_id ?? '', status: 'completed', result: null, error: '', worker_id: 'w' })),
      call(() => q.complete({ task_id: ok[6]?.task_id ?? '', status: 'completed', result: null, error: '', worker_id: 'w' })) // twice: replayed
    ])
    const codeOf = (o: PromiseSettledResult<unknown>): string => o.status === 'rejected' ? (o.reason as TaskQueueError).code : 'ok'
    assert.deepEqual(done.map(codeOf), ['ok', 'task_not_found', 'not_owner', 'ok', 'ok', 'ok'])
    assert.equal(done[5].status === 'fulfilled' && done[5].value.replayed, true)
    assert.equal((await q.get(ok[0]?.task_id ?? ''))?.status, 'completed')
    assert.deepEqual((await q.get(ok[0]?.task_id ?? ''))?.result, { r: 0 })
    assert.equal((await q.get(ok[4]?.task_id ?? ''))?.status, 'running', 'another worker\'s complete changed nothing')
    assert.deepEqual((await q.get(prior))?.result, { progress: { step: 1 }, r: 1 })
    const kinds = (await q.events.read(0, 100)).events.map((e) => `${e.kind}:${e.task_id}`)
    assert.equal(kinds.filter((k) => k.startsWith('submitted:')).length, written.length, 'one submitted event per task written')
    assert.equal(kinds.filter((k) => k.startsWith('completed:')).length, 3)
  })

  withStore('submits arriving together count against their submitter\'s bound one by one', async ({ q }) => {
    const outs = await Promise.allSettled(Array.from({ length: 5 }, async (_, i) => await q.submit(sub({ submitter: 'peer-a', payload: { i } }))))
    const codes = outs.map((o) => o.status === 'fulfilled' ? 'ok' : (o.reason as TaskQueueError).code)
    assert.deepEqual(codes, ['ok', 'ok', 'ok', 'rate_limited', 'rate_limited'])
    assert.equal((await q.submitterUsage('peer-a')).tasks, 3)
    assert.equal((await q.submit(sub({ submitter: 'peer-b' }))).replayed, false, 'another peer is not held back')
  }, { submitterLimits: { maxTasks: 3, maxBytes: 0 } })

  withStore('concurrent writers on two stores: a cursor reader never skips an event', async ({ q, another }) => {
    const other = await another()
    const stores = [q, other]
    let writing = true
    const seen: number[] = []
    const reader = (async () => {
      let cursor = 0
      for (;;) {
        const stop = !writing
        const page = await q.events.read(cursor, 25)
        for (const e of page.events) seen.push(e.seq)
        cursor = page.cursor
        if (stop && page.events.length === 0) return
        if (page.events.length === 0) await new Promise((resolve) => setTimeout(resolve, 1))
      }
    })()
    // Several writers per store at once: groups of submits, claims and completes interleave.
    await Promise.all(Array.from({ length: 6 }, async (_, w) => {
      const st = stores[w % 2]
      for (let round = 0; round < 8; round++) {
        await Promise.all(Array.from({ length: 4 }, async () => await st.submit(sub())))
        for (const t of await st.claim(claimIn(`w${w}`, { max_tasks: 2 }))) {
          await st.complete({ task_id: t.task_id, status: 'completed', result: null, error: '', worker_id: t.assigned_worker })
        }
      }
    }))
    writing = false
    await reader
    const all = (await q.events.read(0, 10_000)).events.map((e) => e.seq)
    assert.ok(all.length >= 6 * 8 * 4, `every submit logged (${all.length})`)
    assert.deepEqual(seen, all, 'the reader following the log saw every entry, in order')
  })
}

test('postgres: two coordinators migrating one empty database at once both start', async (t) => {
  const pgb = postgresBackend()
  if (!pgb.available(t)) return
  const { startPostgres } = await import('../helpers/postgres.js')
  const { PgQueueStore } = await import('../../src/store/pg/queue.js')
  const { PG_SCHEMA_VERSION } = await import('../../src/store/pg/schema.js')
  const cluster = await startPostgres()
  try {
    const url = cluster.createDatabase('racing')
    const stores = await Promise.all([1, 2, 3].map(async () => await PgQueueStore.open({ url, leaseS: 60, peerTimeoutS: 60 })))
    try {
      const id = (await stores[0].submit(sub())).task_id
      assert.equal((await stores[2].get(id))?.status, 'queued')
      assert.equal(cluster.psql('SELECT version FROM tq_schema', 'racing').trim(), String(PG_SCHEMA_VERSION))
    } finally {
      for (const s of stores) await s.close()
    }
  } finally {
    cluster.stop()
  }
})
