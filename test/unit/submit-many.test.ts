/**
 * ★ submit_many on the service, through its MCP++ stream handler: a full batch is one
 * transaction (one commit of the group batcher), and a worker parked in a long-poll
 * claim is handed the new work inside that same commit.
 */
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { Connection, Stream } from '@libp2p/interface'
import { TaskQueueService } from '../../src/service/service.js'
import { createMcpHandler } from '../../src/service/mcp-server.js'
import { MAX_BATCH_ITEMS } from '../../src/protocol/ids.js'
import { testServiceOptions } from '../helpers/service-options.js'
import { silentLogger } from '../../src/logger.js'
import { fixture } from '../helpers/store-fixture.js'
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

function setup (t: TestContext): { service: TaskQueueService, stream: () => FakeFrameStream } {
  const f = fixture({ now: () => Date.now() / 1000 })
  const service = new TaskQueueService({ store: f.q, cache: null, options: testServiceOptions(), releaseStartupMemory: false })
  const handler = createMcpHandler(service.context, service.dispatch, silentLogger())
  const streams: FakeFrameStream[] = []
  t.after(async () => {
    for (const s of streams) s.abort()
    await service.stop(0)
    f.close()
  })
  return {
    service,
    stream: () => {
      const s = new FakeFrameStream()
      streams.push(s)
      handler(s as unknown as Stream, connection)
      s.deliver({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
      return s
    }
  }
}

const content = (s: FakeFrameStream, id: number): Obj | undefined => s.sent.find((r) => r.id === id)?.result?.content

test(`a batch of ${MAX_BATCH_ITEMS} submits commits once, and a parked claimer gets its share in that commit`, async (t) => {
  const { service, stream } = setup(t)
  const worker = stream()
  worker.deliver(rpc(1, { op: 'claim_many', worker_id: 'w', supported_task_types: ['batch'], max_tasks: 8, wait_s: 30 }))
  await until(() => service.context.writes.parkedClaims === 1)
  const commits = service.context.writes.counters.commits
  const producer = stream()
  const items = Array.from({ length: MAX_BATCH_ITEMS }, (_, i) => ({ task_type: 'batch', payload: { i, idempotency_key: `k${i}` } }))
  producer.deliver(rpc(2, { op: 'submit_many', items }))
  await until(() => content(producer, 2) !== undefined && content(worker, 1) !== undefined)
  assert.equal(service.context.writes.counters.commits - commits, 1, 'one transaction for the batch and the handoff')
  const reply = content(producer, 2)!
  assert.equal(reply.results.length, MAX_BATCH_ITEMS)
  assert.ok(reply.results.every((r: Obj) => r.ok === true && r.replayed === false))
  const claimed = content(worker, 1)!.tasks as Obj[]
  assert.deepEqual(claimed.map((c) => c.task_id), reply.results.slice(0, 8).map((r: Obj) => r.task_id), 'FIFO: the first eight')
  const counts = await service.context.store.counts()
  assert.equal(counts.queued, MAX_BATCH_ITEMS - 8)
  assert.equal(counts.running, 8)
})
