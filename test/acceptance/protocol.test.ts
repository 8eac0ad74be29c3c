/**
 * Wire compatibility and bad input against a real `serve` process: the original
 * client's exact exchange, the legacy NDJSON protocol, and every malformed-input case
 * of wire-protocol.md §2.2 / §3 — after each, the service must keep serving.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { RawClient } from '../helpers/raw-client.js'
import { sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Sandbox } from '../helpers/procs.js'

const enc = new TextEncoder()
type Obj = Record<string, any>

describe('wire protocol against a real service', () => {
  let box: Sandbox
  let svc: Daemon
  let client: RawClient

  before(async () => {
    box = sandbox({ IPFS_ACCELERATE_PY_MCP_P2P_MAX_FRAMES: '16' })
    svc = await startDaemon('serve', ['--enable-tools', '--enable-cache', '--legacy'], box.env)
    client = await RawClient.create(svc.multiaddr)
  })

  after(async () => {
    await client?.close()
    await svc?.stop()
    box?.cleanup()
  })

  const stillServing = async (): Promise<void> => {
    const reply = await client.originalCall({ op: 'status' }) as Obj
    assert.equal(reply.ok, true)
  }

  it('answers the original client (fresh stream, both ids 1) with raw content objects', async () => {
    const status = await client.originalCall({ op: 'status' }) as Obj
    assert.equal(status.ok, true)
    assert.equal(status.peer_id, svc.peerId)
    assert.deepEqual(status.capabilities.models, [])
    assert.equal(status.server.impl, 'taskqueue-p2p')

    const sub = await client.originalCall({ op: 'submit', task_type: 'text-generation', model_name: 'm', payload: { prompt: 'hi', priority: 9 } }) as Obj
    assert.equal(sub.ok, true)
    assert.match(sub.task_id, /^[0-9a-f]{32}$/)
    const got = await client.originalCall({ op: 'get', task_id: sub.task_id }) as Obj
    assert.equal(got.task.status, 'queued')
    assert.equal(got.task.priority, 9)
    assert.deepEqual(got.task.payload.prompt, 'hi')
    // Unwrapping: arguments with no op and exactly one object member.
    const wrapped = await client.originalCall({ request: { op: 'get', task_id: sub.task_id } }) as Obj
    assert.equal(wrapped.task.task_id, sub.task_id)
  })

  it('answers several pipelined calls on one stream in order, echoing ids', async () => {
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: {} })
    await s.sendJson({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'cache.set', key: 'k', value: [1, 'ü'] } } })
    await s.sendJson({ jsonrpc: '2.0', id: 'x', method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'cache.get', key: 'k' } } })
    await s.sendJson({ jsonrpc: '2.0', id: 9, method: 'tools/list' })
    const init = await s.readJson() as Obj
    assert.equal(init.id, 'init')
    assert.equal(init.result.protocolVersion, '2024-11-05')
    assert.equal(init.result.transport, '/mcp+p2p/1.0.0')
    const set = await s.readJson() as Obj
    assert.equal(set.id, 7)
    assert.equal(set.result.content.ok, true)
    const get = await s.readJson() as Obj
    assert.equal(get.id, 'x')
    assert.deepEqual(get.result.content.value, [1, 'ü'])
    const list = await s.readJson() as Obj
    const names = list.result.tools.map((t: Obj) => t.name)
    assert.ok(names.includes('task_queue.rpc'))
    assert.ok(names.includes('get_server_status'))
    assert.deepEqual(names, [...names].sort())
    await s.close()
  })

  it('pipelined queue writes on one stream behave exactly as if handled one at a time', async () => {
    // Writes after each other on one stream join one group commit; the reads and the
    // claim behind them must still see every earlier write, and replies stay in order.
    const rpc = (id: number, args: Obj): Obj => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: args } })
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
    await s.sendJson(rpc(1, { op: 'submit', task_type: 'pipe-order', payload: { n: 1, idempotency_key: 'pipe-1' } }))
    await s.sendJson(rpc(2, { op: 'submit', task_type: 'pipe-order', payload: { n: 2, idempotency_key: 'pipe-2' } }))
    await s.sendJson(rpc(3, { op: 'submit', task_type: 'pipe-order', payload: { n: 1, idempotency_key: 'pipe-1' } }))
    await s.sendJson(rpc(4, { op: 'list', task_types: ['pipe-order'], exact_types: true }))
    await s.sendJson(rpc(5, { op: 'claim_many', worker_id: 'pipe-w', supported_task_types: ['pipe-order'], max_tasks: 5 }))
    const init = await s.readJson() as Obj
    assert.ok(init.result.features.includes('complete_many'), 'initialize advertises complete_many')
    const replies: Obj[] = []
    for (let i = 1; i <= 5; i++) replies.push(await s.readJson() as Obj)
    assert.deepEqual(replies.map((r) => r.id), [1, 2, 3, 4, 5])
    const [a, b, again, list, claim] = replies.map((r) => r.result.content)
    assert.equal(again.replayed, true)
    assert.equal(again.task_id, a.task_id)
    assert.deepEqual(list.tasks.map((t: Obj) => t.task_id), [a.task_id, b.task_id])
    assert.deepEqual(claim.tasks.map((t: Obj) => t.task_id), [a.task_id, b.task_id])

    // ★ complete_many: one outcome per item, in order, each guarded like complete.
    await s.sendJson(rpc(6, {
      op: 'complete_many',
      worker_id: 'pipe-w',
      items: [
        { task_id: a.task_id, result: { n: 10 } },
        { task_id: b.task_id, status: 'failed', error: 'boom' },
        { task_id: 'f'.repeat(32) },
        { status: 'completed' },
        { task_id: a.task_id, worker_id: 'someone-else' }
      ]
    }))
    await s.sendJson(rpc(7, { op: 'get', task_id: a.task_id }))
    await s.sendJson(rpc(8, { op: 'complete_many', worker_id: 'pipe-w', items: [{ task_id: a.task_id }] }))
    await s.sendJson(rpc(9, { op: 'complete_many', items: 'nope' }))
    const many = (await s.readJson() as Obj).result.content
    assert.equal(many.ok, true)
    assert.deepEqual(many.results.map((r: Obj) => r.ok ? 'ok' : r.error), ['ok', 'ok', 'task_not_found', 'missing_task_id', 'not_owner'])
    assert.equal(many.results[0].task_id, a.task_id)
    const got = (await s.readJson() as Obj).result.content
    assert.equal(got.task.status, 'completed')
    assert.deepEqual(got.task.result, { n: 10 })
    const replay = (await s.readJson() as Obj).result.content
    assert.deepEqual(replay.results, [{ ok: true, task_id: a.task_id, replayed: true }])
    const bad = (await s.readJson() as Obj).result.content
    assert.equal(bad.ok, false)
    assert.equal(bad.error, 'invalid_params')
    const failed = await client.originalCall({ op: 'get', task_id: b.task_id }) as Obj
    assert.equal(failed.task.status, 'failed')
    assert.equal(failed.task.error, 'boom')
    const status = await client.originalCall({ op: 'status' }) as Obj
    assert.ok(status.server.features.includes('complete_many'))
    await s.close()
  })

  it('★ submit_many: one outcome per item in order, replays by key, limits', async () => {
    const rpc = (id: number, args: Obj): Obj => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: args } })
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
    const items = [
      { task_type: 'many-order', payload: { n: 1, idempotency_key: 'many-1' } },
      { task_type: 'many-order', model_name: 'm', payload: { n: 2 }, priority: 9 },
      'not an object',
      { task_type: 'many-order', payload: { n: 3, idempotency_key: 'many-1' } },
      { task_type: 'many-order', payload: { n: 1, idempotency_key: 'many-1' } }
    ]
    await s.sendJson(rpc(1, { op: 'task.submit_many', items }))
    await s.sendJson(rpc(2, { op: 'list', task_types: ['many-order'], exact_types: true }))
    await s.sendJson(rpc(3, { op: 'submit_many', items: [items[0], items[1]] }))
    await s.sendJson(rpc(4, { op: 'submit_many', items: { task_type: 'x' } }))
    await s.sendJson(rpc(5, { op: 'submit_many', items: Array.from({ length: 1025 }, () => ({ task_type: 'many-order' })) }))
    const init = await s.readJson() as Obj
    assert.ok(init.result.features.includes('submit_many'), 'initialize advertises submit_many')
    const many = (await s.readJson() as Obj).result.content
    assert.equal(many.ok, true)
    assert.deepEqual(many.results.map((r: Obj) => r.ok ? (r.replayed === true ? 'replayed' : 'new') : r.error),
      ['new', 'new', 'invalid_params', 'idempotency_conflict', 'replayed'])
    assert.equal(many.results[4].task_id, many.results[0].task_id)
    const list = (await s.readJson() as Obj).result.content
    assert.deepEqual(list.tasks.map((t: Obj) => t.task_id), [many.results[0].task_id, many.results[1].task_id])
    assert.equal(list.tasks[1].priority, 9)
    assert.equal(list.tasks[1].model_name, 'm')
    // The second item had no key: resending it makes a new task; the first replays.
    const resent = (await s.readJson() as Obj).result.content
    assert.equal(resent.results[0].replayed, true)
    assert.equal(resent.results[0].task_id, many.results[0].task_id)
    assert.equal(resent.results[1].replayed, false)
    for (let i = 0; i < 2; i++) {
      const bad = (await s.readJson() as Obj).result.content
      assert.equal(bad.ok, false)
      assert.equal(bad.error, 'invalid_params')
    }
    const status = await client.originalCall({ op: 'status' }) as Obj
    assert.ok(status.server.features.includes('submit_many'))
    await s.close()
  })

  it('rejects an oversized frame before reading it, then keeps serving', async () => {
    const s = await client.open()
    const header = new Uint8Array(4)
    new DataView(header.buffer).setUint32(0, 2 * 1024 * 1024, false)
    await s.sendRaw(header)
    const reply = await s.readJson() as Obj
    assert.deepEqual(reply, { jsonrpc: '2.0', id: null, error: { code: -32003, message: 'frame_too_large' } })
    assert.equal(await s.readJson(), null, 'stream is closed after the error')
    await stillServing()
  })

  it('answers invalid JSON and non-object frames with typed errors', async () => {
    for (const [body, message] of [['{not json', 'invalid_json'], ['[1,2]', 'invalid_message']] as const) {
      const s = await client.open()
      await s.sendFrame(enc.encode(body))
      const reply = await s.readJson() as Obj
      assert.equal(reply.error.code, -32003)
      assert.equal(reply.error.message, message)
      assert.equal(await s.readJson(), null)
    }
    await stillServing()
  })

  it('accepts NaN/Infinity from Python peers and never echoes them', async () => {
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} })
    await s.readJson()
    await s.sendFrame(enc.encode('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"task_queue.rpc","arguments":{"op":"cache.set","key":"nan","value":[NaN, Infinity, "NaN"]}}}'))
    assert.equal((await s.readJson() as Obj).result.content.ok, true)
    await s.sendJson({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'cache.get', key: 'nan' } } })
    assert.deepEqual((await s.readJson() as Obj).result.content.value, [null, null, 'NaN'])
    await s.close()
  })

  it('requires initialize, and answers unknown methods without closing', async () => {
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'status' } } })
    assert.deepEqual((await s.readJson() as Obj).error, { code: -32000, message: 'init_required' })
    assert.equal(await s.readJson(), null)

    const t = await client.open()
    await t.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} })
    await t.readJson()
    await t.sendJson({ jsonrpc: '2.0', id: 2, method: 'mcp++/whatever' })
    assert.deepEqual((await t.readJson() as Obj).error, { code: -32601, message: 'method_not_found' })
    await t.sendJson({ jsonrpc: '1.0', id: 3, method: 'tools/list' })
    assert.deepEqual((await t.readJson() as Obj).error, { code: -32600, message: 'invalid_jsonrpc' })
    assert.equal(await t.readJson(), null)
  })

  it('rate-limits a stream past max_frames', async () => {
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
    await s.readJson()
    let last: Obj | null = null
    for (let i = 1; i <= 16; i++) {
      await s.sendJson({ jsonrpc: '2.0', id: i, method: 'tools/list' })
      last = await s.readJson() as Obj
      if (last?.error !== undefined) break
    }
    assert.deepEqual(last?.error, { code: -32010, message: 'rate_limited' })
    await stillServing()
  })

  it('gives typed errors for unknown ops and missing fields', async () => {
    const unknown = await client.originalCall({ op: 'frobnicate' }) as Obj
    assert.equal(unknown.ok, false)
    assert.equal(unknown.error, 'unknown_op')
    assert.equal(unknown.peer_id, svc.peerId)
    assert.equal((await client.originalCall({ op: 'claim' }) as Obj).error, 'missing_worker_id')
    assert.equal((await client.originalCall({ op: 'complete' }) as Obj).error, 'missing_task_id')
    assert.equal((await client.originalCall({ op: 'cache.get', key: '  ' }) as Obj).error, 'missing_key')
    assert.equal((await client.originalCall({ op: 'tool' }) as Obj).error, 'missing_tool_name')
    assert.equal((await client.originalCall({ op: 'complete', task_id: 'f'.repeat(32) }) as Obj).error, 'task_not_found')
    const get = await client.originalCall({ op: 'get', task_id: 'nope' }) as Obj
    assert.equal(get.ok, true)
    assert.equal(get.task, null)
    await stillServing()
  })

  it('serves the legacy NDJSON protocol with its own error replies', async () => {
    const status = await client.legacyCall('{"op":"status"}\n') as Obj
    assert.equal(status.ok, true)
    assert.equal(status.peer_id, svc.peerId)
    assert.deepEqual(await client.legacyCall('not json\n'), { ok: false, error: 'invalid_json', peer_id: svc.peerId, retryable: false })
    assert.deepEqual(await client.legacyCall('"str"\n'), { ok: false, error: 'invalid_message', peer_id: svc.peerId, retryable: false })
    const big = new Uint8Array(1024 * 1024 + 10).fill(0x20)
    assert.equal((await client.legacyCall(big) as Obj).error, 'frame_too_large')
    await stillServing()
  })
})

describe('shared-token service', () => {
  let box: Sandbox
  let svc: Daemon
  let client: RawClient

  before(async () => {
    box = sandbox({ IPFS_ACCELERATE_PY_TASK_P2P_TOKEN: 's3cret' })
    svc = await startDaemon('serve', ['--enable-tools'], box.env)
    client = await RawClient.create(svc.multiaddr)
  })

  after(async () => {
    await client?.close()
    await svc?.stop()
    box?.cleanup()
  })

  it('refuses a missing or wrong token and accepts the right one', async () => {
    assert.equal((await client.originalCall({ op: 'status' }) as Obj).error, 'unauthorized')
    assert.equal((await client.originalCall({ op: 'status', token: 's3cres' }) as Obj).error, 'unauthorized')
    assert.equal((await client.originalCall({ op: 'status', token: 's3cret' }) as Obj).ok, true)
    assert.ok(!svc.stderr().includes('s3cret'), 'the token never appears in logs')
  })

  it('gates direct MCP tool calls on the initialize token', async () => {
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} })
    await s.readJson()
    await s.sendJson({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_server_status', arguments: {} } })
    assert.deepEqual((await s.readJson() as Obj).error, { code: -32001, message: 'unauthorized' })
    await s.close()

    const t = await client.open()
    await t.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { token: 's3cret' } })
    await t.readJson()
    await t.sendJson({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_server_status', arguments: {} } })
    assert.equal((await t.readJson() as Obj).result.content.status, 'running')
    await t.close()
  })
})
