/**
 * The library as a user gets it: everything imported by the package's own name
 * (`import … from 'taskqueue-p2p/service'`, resolved through package.json `exports`), an
 * embedded service with a tool of the user's, a worker with a handler of the user's
 * claiming over libp2p, and RemoteQueue calls against both — including the one-call
 * `submitAndWait` (★ submit `wait_s`) and the reply shapes it must not change for
 * callers that do not ask for it.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type * as Lib from '../../src/service-entry.js'
import { RawClient } from '../helpers/raw-client.js'
import { sandbox } from '../helpers/procs.js'
import type { Sandbox } from '../helpers/procs.js'

// A variable, so tsc does not try to resolve the package's own dist types while compiling them.
// The service side (`taskqueue-p2p/service`) re-exports the client entry point too.
const PACKAGE_NAME = 'taskqueue-p2p/service'
const lib = await import(PACKAGE_NAME) as typeof Lib
type Obj = Record<string, any>

describe('the library entry point, in one process over real libp2p', () => {
  let box: Sandbox
  let svc: Lib.ServiceNode
  let worker: Lib.Worker
  let workerQueue: Lib.RemoteQueue
  let q: Lib.RemoteQueue
  let raw: RawClient

  before(async () => {
    box = sandbox()
    const settings = lib.loadSettings(box.env, { enableTools: true, enableCache: true }, () => {}, { role: 'serve' })
    const tools = new lib.ToolRegistry().register({
      name: 'add',
      description: 'a + b',
      handler: (args) => {
        if (typeof args.a !== 'number' || typeof args.b !== 'number') throw new lib.InvalidToolParamsError('a and b must be numbers')
        return { sum: args.a + args.b }
      }
    })
    svc = await lib.startServiceNode({ settings, tools })
    const clientSettings = lib.loadSettings(box.env, {}, () => {}, { role: 'client' })
    workerQueue = new lib.RemoteQueue({ multiaddr: svc.multiaddr, settings: clientSettings, addressBookPath: null })
    worker = new lib.Worker({
      backend: new lib.RemoteBackend(workerQueue),
      workerId: 'lib-worker',
      handlers: lib.mergeHandlers(lib.builtinHandlers(), {
        upper: (task) => ({ text: String(task.payload.text).toUpperCase() })
      }),
      taskTypes: ['upper', 'echo'],
      concurrency: 4,
      waitS: 5
    })
    await worker.start()
    q = new lib.RemoteQueue({ multiaddr: svc.multiaddr, settings: clientSettings, addressBookPath: null })
    raw = await RawClient.create(svc.multiaddr)
  })

  after(async () => {
    await raw?.close()
    await q?.close()
    await worker?.stop()
    await workerQueue?.close()
    await svc?.stop()
    box?.cleanup()
  })

  it('exports what the README promises, from the package name', () => {
    for (const name of ['RemoteQueue', 'startServiceNode', 'ToolRegistry', 'Worker', 'RemoteBackend', 'LocalBackend', 'loadSettings', 'RemoteError', 'DialError']) {
      assert.equal(typeof (lib as unknown as Obj)[name], 'function', `${name} is exported`)
    }
    assert.match(lib.VERSION, /^\d+\.\d+\.\d+/)
    assert.ok(lib.TERMINAL_STATUSES.has('completed'))
  })

  it('submit then wait: the user handler ran on the remote worker', async () => {
    const { task_id: taskId, replayed } = await q.submit({ task_type: 'upper', payload: { text: 'abc' } })
    assert.equal(replayed, false)
    const { task, timed_out: timedOut } = await q.wait(taskId, 30)
    assert.equal(timedOut, false)
    assert.equal(task?.status, 'completed')
    assert.deepEqual(task?.result, { text: 'ABC' })
  })

  it('submitAndWait answers with the completed task in one call; a replay of it answers the same', async () => {
    const key = 'lib-test-one-call'
    const first = await q.submitAndWait({ task_type: 'upper', payload: { text: 'one call' }, idempotency_key: key }, 30)
    assert.equal(first.timed_out, false)
    assert.equal(first.replayed, false)
    assert.equal(first.task?.task_id, first.task_id)
    assert.equal(first.task?.status, 'completed')
    assert.deepEqual(first.task?.result, { text: 'ONE CALL' })
    const again = await q.submitAndWait({ task_type: 'upper', payload: { text: 'one call' }, idempotency_key: key }, 30)
    assert.equal(again.replayed, true)
    assert.equal(again.task_id, first.task_id)
    assert.equal(again.task?.status, 'completed')
  })

  it('submitAndWait on a task nobody can run times out and leaves it queued', async () => {
    const started = Date.now()
    const r = await q.submitAndWait({ task_type: 'nobody-runs-this' }, 0.5)
    assert.equal(r.timed_out, true)
    assert.equal(r.task?.status, 'queued')
    assert.ok(Date.now() - started >= 450, 'it waited for the timeout')
    assert.equal((await q.get(r.task_id))?.status, 'queued', 'the task is still there')
  })

  it('submitMany: 1,100 tasks in two submit_many requests, each with its own outcome; a resend replays', async () => {
    // A type nobody serves: the check below reads the tasks as submitted, without
    // waiting for a worker to get through 1,100 of them on a loaded machine.
    const tasks: Lib.SubmitRequest[] = Array.from({ length: 1100 }, (_, i) => ({ task_type: 'lib-many', payload: { text: `t${i}` }, idempotency_key: `lib-many-${i}` }))
    tasks[7] = { task_type: 'lib-many', payload: { text: 'different work' }, idempotency_key: 'lib-many-3' }
    const sent: string[] = []
    const request = q.request.bind(q)
    q.request = async (op, fields, options) => { sent.push(op); return await request(op, fields, options) }
    let results: Lib.SubmitManyResult[]
    try {
      results = await q.submitMany(tasks)
    } finally {
      q.request = request
    }
    assert.deepEqual(sent, ['submit_many', 'submit_many'], 'at most 1,024 items per request')
    assert.equal(results.length, 1100)
    const refused = results[7]
    assert.ok(!refused.ok && refused.error === 'idempotency_conflict', JSON.stringify(refused))
    const ids = results.flatMap((r) => r.ok ? [r.task_id] : [])
    assert.equal(new Set(ids).size, 1099)
    assert.ok(results.every((r, i) => i === 7 || (r.ok && !r.replayed)))
    const last = results[1099]
    assert.ok(last.ok)
    const stored = await q.get(last.task_id)
    assert.equal(stored?.status, 'queued')
    assert.equal(stored?.payload.text, 't1099')
    const again = await q.submitMany(tasks.slice(0, 3))
    assert.deepEqual(again, results.slice(0, 3).map((r) => ({ ...r, replayed: true })))
  })

  it('concurrent submits share one submit_many request; each caller gets its own task', async () => {
    const sent: string[] = []
    const request = q.request.bind(q)
    q.request = async (op, fields, options) => { sent.push(op); return await request(op, fields, options) }
    let ids: string[]
    try {
      ids = (await Promise.all(Array.from({ length: 16 }, async (_, i) => await q.submit({ task_type: 'upper', payload: { text: `c${i}` } })))).map((r) => r.task_id)
      assert.deepEqual(sent, ['submit_many'])
      await q.submit({ task_type: 'upper', payload: { text: 'alone' } })
      assert.deepEqual(sent, ['submit_many', 'submit'], 'a lone submit is the original request')
    } finally {
      q.request = request
    }
    assert.equal(new Set(ids).size, 16)
    assert.deepEqual((await q.wait(ids[15], 30)).task?.result, { text: 'C15' })
  })

  it('without wait_s the submit reply is exactly the original one', async () => {
    const reply = await raw.originalCall({ op: 'submit', task_type: 'nobody-runs-this', payload: {} }) as Obj
    const zero = await raw.originalCall({ op: 'submit', task_type: 'nobody-runs-this', payload: {}, wait_s: 0 }) as Obj
    for (const r of [reply, zero]) {
      assert.equal(r.ok, true)
      assert.equal(r.replayed, false)
      assert.ok(!('task' in r) && !('timed_out' in r), `no wait fields: ${JSON.stringify(r)}`)
    }
    const waited = await raw.originalCall({ op: 'submit', task_type: 'echo', payload: { hi: 1 }, wait_s: 10 }) as Obj
    assert.equal(waited.ok, true)
    assert.equal(waited.timed_out, false)
    assert.equal(waited.task.status, 'completed')
    assert.equal(waited.task.task_id, waited.task_id)
  })

  it('the user tool answers through callTool, its bad arguments as a typed remote error', async () => {
    assert.deepEqual(await q.callTool('add', { a: 2, b: 40 }), { sum: 42 })
    await assert.rejects(q.callTool('add', { a: 'two' }), (err: unknown) => err instanceof lib.RemoteError && err.code === 'invalid_params')
    const status = await q.callTool('get_server_status') as Obj
    assert.equal(status.peer_id, svc.peerId)
  })

  it('the cache round-trips through the same client', async () => {
    await q.cacheSet('greeting', 'hello', 60)
    assert.equal((await q.cacheGet('greeting')).value, 'hello')
    assert.equal((await q.cacheGet('absent')).hit, false)
  })
})
