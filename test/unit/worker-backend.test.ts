import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DialError, RemoteError } from '../../src/client/errors.js'
import type { ClaimedTask } from '../../src/store/index.js'
import { TaskQueueError } from '../../src/protocol/errors.js'
import {
  BackendError, RemoteBackend, completeWithRetry, isLeaseLost, toBackendError, type QueueBackend, type RemoteQueueLike
} from '../../src/worker/index.js'

function claimed (id: string): ClaimedTask {
  return {
    task_id: id, task_type: 'echo', model_name: '', payload: {}, created_at: 0, status: 'running',
    assigned_worker: 'w', lease_until: 0, attempt: 1, max_attempts: 3, priority: 5
  }
}

/** A RemoteQueue stand-in whose claim_many behaves as scripted. */
function fakeQueue (claimMany: RemoteQueueLike['claimMany'], released: string[] = []): RemoteQueueLike {
  return {
    claimMany,
    complete: async (req) => ({ task_id: req.task_id, replayed: false }),
    release: async (req) => { released.push(req.task_id) },
    heartbeat: async () => ({ lease_until: 0, heartbeat_at: 0 }),
    close: async () => {}
  }
}

const base = { workerId: 'w', taskTypes: ['echo'], session: '', leaseS: 30, maxTasks: 1 }

test('an immediate empty reply to a long-poll claim means no long-poll support: pace with pollIntervalS', async () => {
  let seen: Record<string, unknown> = {}
  const b = new RemoteBackend(fakeQueue(async (req) => { seen = req; return [] }))
  const t0 = Date.now()
  assert.deepEqual(await b.claim({ ...base, waitS: 30, pollIntervalS: 0.2 }), [])
  const took = Date.now() - t0
  assert.ok(took >= 180 && took < 1000, `slept ${took} ms`)
  assert.equal(b.longPollSupported, false)
  assert.equal(seen.wait_s, 30)
  assert.deepEqual(seen.supported_task_types, ['echo'])
  assert.equal(seen.session, undefined)
})

test('an empty reply after most of wait_s means long-poll works: no extra sleep', async () => {
  const b = new RemoteBackend(fakeQueue(async () => { await new Promise((resolve) => setTimeout(resolve, 120)); return [] }))
  const t0 = Date.now()
  await b.claim({ ...base, waitS: 0.2, pollIntervalS: 5 })
  assert.ok(Date.now() - t0 < 1000)
  assert.equal(b.longPollSupported, true)
})

test('aborting a pending claim returns at once and releases tasks that arrive late', async () => {
  const released: string[] = []
  let deliver: (t: ClaimedTask[]) => void = () => {}
  const b = new RemoteBackend(fakeQueue(async () => await new Promise<ClaimedTask[]>((resolve) => { deliver = resolve }), released))
  const ac = new AbortController()
  const p = b.claim({ ...base, waitS: 30, signal: ac.signal })
  setTimeout(() => ac.abort(), 20)
  assert.deepEqual(await p, [])
  deliver([claimed('late1')])
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.deepEqual(released, ['late1'])
})

test('errors are classified by type and code', () => {
  const lost = toBackendError(new RemoteError({ ok: false, error: 'not_owner' }))
  assert.equal(lost.code, 'not_owner')
  assert.ok(isLeaseLost(lost))
  assert.equal(lost.unreachable, false)
  const busy = toBackendError(new RemoteError({ ok: false, error: 'busy', retryable: true }))
  assert.equal(busy.transient, true)
  const dial = toBackendError(new DialError('refused'))
  assert.equal(dial.code, 'dial_failed')
  assert.ok(dial.transient && dial.unreachable)
  assert.ok(isLeaseLost(toBackendError(new TaskQueueError('task_not_running'))))
  assert.equal(toBackendError(new TaskQueueError('busy')).transient, true)
})

test('completeWithRetry retries transport failures and stops on a refusal', async () => {
  let calls = 0
  const backend: QueueBackend = {
    kind: 'x',
    claim: async () => [],
    complete: async () => {
      if (++calls < 3) throw new BackendError('dial_failed', 'down', { transient: true, unreachable: true })
      return { replayed: true }
    },
    release: async () => {},
    heartbeat: async () => ({ lease_until: 0 }),
    close: async () => {}
  }
  const out = await completeWithRetry(backend, { taskId: 't', workerId: 'w', status: 'completed' })
  assert.deepEqual(out, { replayed: true })
  assert.equal(calls, 3)

  const refusing: QueueBackend = { ...backend, complete: async () => { throw new BackendError('not_owner', 'no', { transient: false, unreachable: false }) } }
  await assert.rejects(completeWithRetry(refusing, { taskId: 't', workerId: 'w', status: 'completed' }), (e: unknown) => isLeaseLost(e))

  const down: QueueBackend = { ...backend, complete: async () => { throw new BackendError('dial_failed', 'down', { transient: true, unreachable: true }) } }
  const t0 = Date.now()
  await assert.rejects(completeWithRetry(down, { taskId: 't', workerId: 'w', status: 'failed' }, { maxMs: 300 }), /down/)
  assert.ok(Date.now() - t0 < 1500)
})

/** A RemoteQueue stand-in that also has `status`/`request`, recording complete traffic. */
function batchingQueue (features: string[], onRequest: (op: string, fields: Record<string, unknown>) => Record<string, unknown>): RemoteQueueLike & { singles: string[], requests: Array<{ op: string, fields: Record<string, unknown> }> } {
  const singles: string[] = []
  const requests: Array<{ op: string, fields: Record<string, unknown> }> = []
  return {
    ...fakeQueue(async () => []),
    singles,
    requests,
    complete: async (req) => { singles.push(req.task_id); return { task_id: req.task_id, replayed: false } },
    status: async () => ({ ok: true, server: { features } }),
    request: async (op, fields) => { requests.push({ op, fields }); return onRequest(op, fields) }
  }
}

/** Lets the backend's feature probe (started by a claim) answer. */
async function probe (b: RemoteBackend): Promise<void> {
  await b.claim({ ...base, waitS: 0 })
  await new Promise((resolve) => setImmediate(resolve))
}

test('completes finishing together go out as one complete_many, each with its own outcome', async () => {
  const q = batchingQueue(['complete_many'], (op, fields) => {
    assert.equal(op, 'complete_many')
    const items = fields.items as Array<Record<string, unknown>>
    return {
      ok: true,
      results: items.map((it) => it.task_id === 'gone'
        ? { ok: false, task_id: it.task_id, error: 'task_not_found', retryable: false }
        : it.task_id === 'busy'
          ? { ok: false, task_id: it.task_id, error: 'busy', retryable: true }
          : { ok: true, task_id: it.task_id, replayed: it.task_id === 'again' })
    }
  })
  const b = new RemoteBackend(q)
  await probe(b)
  const results = await Promise.allSettled(['t1', 'again', 'gone', 'busy'].map(async (id) =>
    await b.complete({ taskId: id, workerId: 'w', status: 'completed', result: { id } })))
  assert.equal(q.requests.length, 1, 'one frame for the four completes')
  assert.deepEqual((q.requests[0].fields.items as Array<Record<string, unknown>>).map((i) => i.task_id), ['t1', 'again', 'gone', 'busy'])
  assert.deepEqual(results[0], { status: 'fulfilled', value: { replayed: false } })
  assert.deepEqual(results[1], { status: 'fulfilled', value: { replayed: true } })
  assert.ok(results[2].status === 'rejected' && isLeaseLost(results[2].reason))
  assert.ok(results[3].status === 'rejected' && (results[3].reason as BackendError).transient)
  assert.deepEqual(q.singles, [])
})

test('without the complete_many feature, or on unknown_op, completes go one by one', async () => {
  const old = batchingQueue([], () => { throw new Error('complete_many must not be sent') })
  const b1 = new RemoteBackend(old)
  await probe(b1)
  await b1.complete({ taskId: 'a', workerId: 'w', status: 'completed' })
  assert.deepEqual(old.singles, ['a'])

  // Advertised, but the service behind the link was replaced by one that does not know it.
  const swapped = batchingQueue(['complete_many'], (op, fields) => op === 'complete_many'
    ? { ok: false, error: 'unknown_op' }
    : { ok: true, task_id: fields.task_id })
  const b2 = new RemoteBackend(swapped)
  await probe(b2)
  const out = await Promise.all(['x', 'y'].map(async (id) => await b2.complete({ taskId: id, workerId: 'w', status: 'completed' })))
  assert.deepEqual(out, [{ replayed: false }, { replayed: false }])
  assert.deepEqual(swapped.requests.map((r) => r.op), ['complete_many', 'complete', 'complete'])
  await b2.complete({ taskId: 'z', workerId: 'w', status: 'completed' })
  assert.deepEqual(swapped.singles, ['z'], 'batching stays off afterwards')
})

test('a batch that could not be delivered fails every item with a transient error (retried per task)', async () => {
  const q = batchingQueue(['complete_many'], () => { throw new DialError('connection lost', { sent: true }) })
  const b = new RemoteBackend(q)
  await probe(b)
  const results = await Promise.allSettled(['a', 'b'].map(async (id) => await b.complete({ taskId: id, workerId: 'w', status: 'completed' })))
  for (const r of results) assert.ok(r.status === 'rejected' && (r.reason as BackendError).transient)
})
