/**
 * ★ submit `wait_s` on the service, through its MCP++ stream handler: the reply waits
 * for the task to finish, an in-process complete and one from another connection (a
 * `worker --queue` process) both end it — also when the first look was skipped
 * because the data_version watch was already running — and the deadline ends it
 * with the task as it is.
 */
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { Connection, Stream } from '@libp2p/interface'
import { TaskQueueService } from '../../src/service/service.js'
import { createMcpHandler } from '../../src/service/mcp-server.js'
import { testServiceOptions } from '../helpers/service-options.js'
import { silentLogger } from '../../src/logger.js'
import { QueueStore, openDatabase } from '../../src/store/index.js'
import { claimIn, fixture } from '../helpers/store-fixture.js'
import type { Fixture } from '../helpers/store-fixture.js'
import { FakeFrameStream, type Obj } from '../helpers/fake-frame-stream.js'

const connection = { remotePeer: { toString: () => 'peer-1' } } as unknown as Connection
const rpc = (id: number, args: Obj): Obj => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: args } })

async function until (cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

interface Setup { f: Fixture, service: TaskQueueService, stream: () => FakeFrameStream, other: QueueStore }

function setup (t: TestContext): Setup {
  // Real time: the service stamps next_attempt_at from Date.now().
  const now = (): number => Date.now() / 1000
  const f = fixture({ now })
  const service = new TaskQueueService({ store: f.q, cache: null, options: testServiceOptions(), releaseStartupMemory: false })
  const handler = createMcpHandler(service.context, service.dispatch, silentLogger())
  const streams: FakeFrameStream[] = []
  // Another process's view of the same file.
  const db2 = openDatabase(f.path)
  const other = new QueueStore({ db: db2, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false, now })
  t.after(async () => {
    for (const s of streams) s.abort()
    await service.stop(0)
    db2.close()
    f.close()
  })
  const stream = (): FakeFrameStream => {
    const s = new FakeFrameStream()
    streams.push(s)
    handler(s as unknown as Stream, connection)
    s.deliver({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
    return s
  }
  return { f, service, stream, other }
}

const content = (s: FakeFrameStream, id: number): Obj | undefined => s.sent.find((r) => r.id === id)?.result?.content

test('the reply waits for an in-process complete and carries the finished task', async (t) => {
  const { f, stream } = setup(t)
  const s = stream()
  s.deliver(rpc(1, { op: 'submit', task_type: 'x', payload: { n: 1 }, wait_s: 30 }))
  let claimed: ReturnType<typeof f.q.claim> = []
  await until(() => { claimed = f.q.claim(claimIn('w')); return claimed.length === 1 })
  assert.equal(content(s, 1), undefined, 'no reply while the task runs')
  f.q.complete({ task_id: claimed[0].task_id, status: 'completed', result: { v: 2 }, error: '', worker_id: 'w' })
  await until(() => content(s, 1) !== undefined)
  const r = content(s, 1)!
  assert.equal(r.ok, true)
  assert.equal(r.timed_out, false)
  assert.equal(r.replayed, false)
  assert.equal(r.task_id, claimed[0].task_id)
  assert.equal(r.task.status, 'completed')
  assert.deepEqual(r.task.result, { v: 2 })
})

for (const watchRunning of [false, true]) {
  test(`a complete from another process ends the wait (data_version watch ${watchRunning ? 'already running: first look skipped' : 'not yet running'})`, async (t) => {
    const { service, stream, other } = setup(t)
    if (watchRunning) {
      // Somebody else already waits (a long-poll claim for another type): the watch runs.
      stream().deliver(rpc(9, { op: 'claim', worker_id: 'idle', supported_task_types: ['other'], wait_s: 30 }))
      await until(() => service.context.events.watchingExternal)
    } else {
      assert.equal(service.context.events.watchingExternal, false)
    }
    const s = stream()
    s.deliver(rpc(1, { op: 'submit', task_type: 'x', payload: {}, wait_s: 30 }))
    let claimed: ReturnType<typeof other.claim> = []
    await until(() => { claimed = other.claim(claimIn('ext', { task_types: ['x'] })); return claimed.length === 1 })
    other.complete({ task_id: claimed[0].task_id, status: 'failed', result: null, error: 'boom', worker_id: 'ext' })
    await until(() => content(s, 1) !== undefined)
    assert.equal(content(s, 1)!.timed_out, false)
    assert.equal(content(s, 1)!.task.status, 'failed')
    assert.equal(content(s, 1)!.task.error, 'boom')
  })
}

test('the deadline ends the wait with the task as it is; a replayed submit waits on the same task', async (t) => {
  const { stream } = setup(t)
  const s = stream()
  const started = Date.now()
  s.deliver(rpc(1, { op: 'submit', task_type: 'x', payload: { idempotency_key: 'k' }, wait_s: 0.3 }))
  await until(() => content(s, 1) !== undefined)
  assert.ok(Date.now() - started >= 280, 'waited for wait_s')
  const first = content(s, 1)!
  assert.equal(first.timed_out, true)
  assert.equal(first.task.status, 'queued')
  s.deliver(rpc(2, { op: 'submit', task_type: 'x', payload: { idempotency_key: 'k' }, wait_s: 0.2 }))
  await until(() => content(s, 2) !== undefined)
  assert.equal(content(s, 2)!.replayed, true)
  assert.equal(content(s, 2)!.task_id, first.task_id)
  assert.equal(content(s, 2)!.timed_out, true)
  // Without wait_s the reply is the original one.
  s.deliver(rpc(3, { op: 'submit', task_type: 'x', payload: {} }))
  await until(() => content(s, 3) !== undefined)
  assert.ok(!('timed_out' in content(s, 3)!) && !('task' in content(s, 3)!))
})
