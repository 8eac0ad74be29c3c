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
