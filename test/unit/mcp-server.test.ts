/**
 * The service's MCP++ stream handler on an in-memory stream: replies of pipelined
 * writes and strictly serial calls keep request order, the idle close (one timer per
 * stream) fires only on a stream with nothing to do, and a long op is not idleness.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Connection, Stream } from '@libp2p/interface'
import { TaskQueueService } from '../../src/service/service.js'
import { createMcpHandler } from '../../src/service/mcp-server.js'
import { testServiceOptions } from '../helpers/service-options.js'
import { silentLogger } from '../../src/logger.js'
import { fixture } from '../helpers/store-fixture.js'
import { FakeFrameStream as FakeStream, type Obj } from '../helpers/fake-frame-stream.js'

const rpc = (id: number, args: Obj): Obj => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: args } })
const connection = { remotePeer: { toString: () => 'peer-1' } } as unknown as Connection
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function until (cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(5)
  }
}

function setup (idleTimeoutMs: number): { s: FakeStream, service: TaskQueueService, close: () => Promise<void> } {
  const f = fixture()
  const service = new TaskQueueService({ store: f.q, cache: null, options: testServiceOptions(idleTimeoutMs), releaseStartupMemory: false })
  const handler = createMcpHandler(service.context, service.dispatch, silentLogger())
  const s = new FakeStream()
  handler(s as unknown as Stream, connection)
  return { s, service, close: async () => { s.abort(); await service.stop(0); f.close() } }
}

test('pipelined writes and serial reads on one stream are answered in request order', async () => {
  const { s, close } = setup(60_000)
  try {
    s.deliver({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} },
      rpc(1, { op: 'submit', task_type: 'x', payload: { idempotency_key: 'a' } }),
      rpc(2, { op: 'submit', task_type: 'x', payload: { idempotency_key: 'b' } }),
      rpc(3, { op: 'list', task_types: ['x'], exact_types: true }),
      rpc(4, { op: 'submit', task_type: 'x', payload: { idempotency_key: 'a' } }))
    await until(() => s.sent.length === 5)
    assert.deepEqual(s.sent.map((r) => r.id), [0, 1, 2, 3, 4])
    const ids = [s.sent[1], s.sent[2]].map((r) => r.result.content.task_id)
    assert.deepEqual(s.sent[3].result.content.tasks.map((t: Obj) => t.task_id), ids, 'the read saw both earlier writes')
    assert.equal(s.sent[4].result.content.replayed, true)
  } finally { await close() }
})

test('a stream with nothing to do is closed after the idle timeout; a long op is not idleness', async () => {
  const { s, close } = setup(150)
  try {
    s.deliver({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} },
      rpc(1, { op: 'submit', task_type: 'x', payload: {} }))
    await until(() => s.sent.length === 2)
    const taskId = s.sent[1].result.content.task_id
    // A wait longer than the idle timeout keeps the stream open until it answers.
    s.deliver(rpc(2, { op: 'wait', task_id: taskId, timeout_s: 0.4 }))
    await sleep(300)
    assert.equal(s.status, 'open', 'busy with the wait')
    await until(() => s.sent.length === 3)
    assert.equal(s.sent[2].result.content.timed_out, true)
    assert.equal(s.status, 'open')
    // Then nothing: closed about one idle timeout later.
    await until(() => s.status !== 'open', 2000)
  } finally { await close() }
})
