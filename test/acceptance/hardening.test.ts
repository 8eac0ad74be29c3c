/**
 * Regression tests for the hostile-peer findings of issue 21, against a real `serve`
 * process: replies before a truncated frame, bounded caller-supplied fields, scheduling
 * unaffected by ids that only said hello, deeply nested JSON, and tools/list behind
 * the token. After each, the service must keep serving.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { RawClient } from '../helpers/raw-client.js'
import type { RawStream } from '../helpers/raw-client.js'
import { sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Sandbox } from '../helpers/procs.js'

const enc = new TextEncoder()
type Obj = Record<string, any>
const TOKEN = 'hardening-token'

/** Replies read until the service closes the stream. */
async function readAll (s: RawStream): Promise<Obj[]> {
  const out: Obj[] = []
  for (;;) {
    const msg = await s.readJson() as Obj | null
    if (msg === null) return out
    out.push(msg)
  }
}

function rpc (id: number, envelope: Obj): Obj {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { token: TOKEN, ...envelope } } }
}

describe('hostile-peer findings (issue 21)', () => {
  let box: Sandbox
  let svc: Daemon
  let client: RawClient

  before(async () => {
    box = sandbox({ IPFS_ACCELERATE_PY_TASK_P2P_TOKEN: TOKEN, IPFS_ACCELERATE_PY_MCP_P2P_MAX_FRAMES: '5000', IPFS_ACCELERATE_PY_MCP_P2P_RATE_CAPACITY: '100000', IPFS_ACCELERATE_PY_MCP_P2P_RATE_REFILL_PER_SEC: '100000' })
    svc = await startDaemon('serve', ['--enable-tools', '--enable-cache', '--legacy'], box.env)
    client = await RawClient.create(svc.multiaddr)
  })

  after(async () => {
    await client?.close()
    await svc?.stop()
    box?.cleanup()
  })

  const call = async (envelope: Obj): Promise<Obj> => await client.originalCall({ token: TOKEN, ...envelope }) as Obj
  const stillServing = async (): Promise<void> => {
    assert.equal((await call({ op: 'status' })).ok, true)
  }

  it('answers every complete request before a truncated frame (finding 1, §2.2)', async () => {
    const tails = [new Uint8Array([0, 0]), new Uint8Array([0, 0, 0, 40, 0x7b, 0x22])]
    for (let i = 0; i < 10; i++) {
      for (const tail of tails) {
        const s = await client.open()
        await s.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { token: TOKEN } })
        await s.sendJson(rpc(2, { op: 'status' }))
        // A queued write too, whose reply waits for its group commit.
        await s.sendJson(rpc(3, { op: 'cache.set', key: `trunc-${i}`, value: i }))
        await s.sendRaw(tail)
        const closing = s.close()
        const replies = await readAll(s)
        await closing
        assert.deepEqual(replies.map(r => r.id), [1, 2, 3], `stream ${i}: every complete request is answered`)
        assert.equal(replies[1].result.content.ok, true)
        assert.equal(replies[2].result.content.ok, true)
      }
    }
    await stillServing()
  })

  it('bounds caller-supplied ids the registry keeps and replies echo (finding 2)', async () => {
    const huge = 'p'.repeat(600 * 1024)
    for (const env of [
      { op: 'peer.heartbeat', peer: huge },
      { op: 'peer.heartbeat', worker_id: 'w'.repeat(300) },
      { op: 'peer.heartbeat', peer: 'ok', peer_hint: 'h'.repeat(300) },
      { op: 'peer.heartbeat', peer: 'ok', session_id: 's'.repeat(300) },
      { op: 'peer.heartbeat', peer: 'ok', supported_task_types: Array.from({ length: 65 }, (_, i) => `t${i}`) },
      { op: 'claim', worker_id: 'w'.repeat(300) },
      { op: 'submit', task_type: 't'.repeat(300) },
      { op: 'complete', task_id: 'x'.repeat(300) }
    ]) {
      const reply = await call(env)
      assert.equal(reply.ok, false, JSON.stringify(Object.keys(env)))
      assert.equal(reply.error, 'invalid_params')
      assert.match(reply.detail, /longer than 256 characters|more than 64 items/)
    }
    // Registry values may be long-ish but replies stay bounded however many peers exist.
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
    for (let i = 1; i <= 200; i++) await s.sendJson(rpc(i, { op: 'peer.heartbeat', peer: `${'q'.repeat(250)}-${i}` }))
    const replies: Obj[] = []
    for (let i = 0; i <= 200; i++) replies.push(await s.readJson() as Obj)
    await s.close()
    const last = replies[200].result.content
    assert.equal(last.ok, true)
    assert.equal(last.scheduler.known_peers.length, 64, 'a heartbeat lists at most 64 peers')
    assert.ok(JSON.stringify(last).length < 64 * 1024)
    const detail = await call({ op: 'status', detail: true })
    assert.ok(detail.scheduler.counts.peers >= 200, 'counts still cover every live peer')
    assert.ok(detail.scheduler.known_peers.length <= 256)
    // The JSON-RPC id is echoed, so it is bounded too.
    const t = await client.open()
    await t.sendJson({ jsonrpc: '2.0', id: 'i'.repeat(10_000), method: 'initialize', params: {} })
    assert.deepEqual((await t.readJson() as Obj).error, { code: -32600, message: 'invalid_id' })
    await t.close()
    await stillServing()
  })

  it('ids that only said hello are no scheduler candidates (finding 3)', async () => {
    // 1000 made-up workers from 5 peers (one peer may hold at most 256 ids), whose
    // connections stay open: a closed connection takes its peer's ids out of the registry.
    const fakes: RawClient[] = []
    try {
      for (let p = 0; p < 5; p++) {
        const fake = await RawClient.create(svc.multiaddr)
        fakes.push(fake)
        const s = await fake.open()
        await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
        for (let i = 1; i <= 200; i++) await s.sendJson(rpc(i, { op: 'peer.heartbeat', worker_id: `fake-worker-${p}-${i}`, supported_task_types: ['fake-job'] }))
        for (let i = 0; i <= 200; i++) assert.notEqual((await s.readJson() as Obj).result, undefined)
        await s.close()
      }
      const detail = await call({ op: 'status', detail: true })
      assert.ok(detail.scheduler.counts.workers >= 1000, 'the fakes are live in the registry')
      const ids: string[] = []
      for (let i = 0; i < 20; i++) ids.push((await call({ op: 'submit', task_type: 'fake-job', payload: { i } })).task_id)
      // With 1000 fake candidates the real worker would own ~0 of 20 tasks and get null
      // (until the 30 s steal window); as the only claimer it owns every one of them.
      const claimed = await call({ op: 'claim_many', worker_id: 'real-worker', supported_task_types: ['fake-job'], max_tasks: 20 })
      assert.equal(claimed.ok, true)
      assert.equal(claimed.tasks.length, 20)
      assert.deepEqual(claimed.tasks.map((t: Obj) => t.task_id).sort(), [...ids].sort())
    } finally {
      for (const fake of fakes) await fake.close()
    }
    await stillServing()
  })

  it('one peer holds at most 256 scheduler ids; more get a typed rate_limited', async () => {
    const flooder = await RawClient.create(svc.multiaddr)
    try {
      const s = await flooder.open()
      await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
      for (let i = 1; i <= 260; i++) await s.sendJson(rpc(i, { op: 'peer.heartbeat', peer: `flood-${i}` }))
      await s.sendJson(rpc(261, { op: 'claim', worker_id: 'flood-new-worker' }))
      await s.sendJson(rpc(262, { op: 'peer.heartbeat', peer: 'flood-1' }))
      const replies: Obj[] = []
      for (let i = 0; i <= 262; i++) replies.push(await s.readJson() as Obj)
      await s.close()
      const contents = replies.slice(1).map((r) => r.result.content)
      assert.ok(contents.slice(0, 256).every((c) => c.ok === true))
      for (const c of contents.slice(256, 261)) {
        assert.equal(c.error, 'rate_limited')
        assert.equal(c.retryable, true)
      }
      assert.equal(contents[261].ok, true, 'an id the peer holds already is still refreshed')
    } finally {
      await flooder.close()
    }
    await stillServing()
  })

  it('one peer keeps at most 256 KiB of strings in the registry; more get a typed rate_limited', async () => {
    const flooder = await RawClient.create(svc.multiaddr)
    try {
      const s = await flooder.open()
      await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} })
      // Each id carries 64 task types of 256 characters: 16 KiB, so 15 fit in 256 KiB.
      const types = Array.from({ length: 64 }, (_, i) => `${String(i).padStart(2, '0')}${'t'.repeat(254)}`)
      for (let i = 1; i <= 20; i++) await s.sendJson(rpc(i, { op: 'peer.heartbeat', peer: `fat-${i}`, supported_task_types: types }))
      const replies: Obj[] = []
      for (let i = 0; i <= 20; i++) replies.push(await s.readJson() as Obj)
      await s.close()
      const contents = replies.slice(1).map((r) => r.result.content)
      assert.ok(contents.slice(0, 15).every((c) => c.ok === true), JSON.stringify(contents.slice(0, 15).map((c) => c.error)))
      for (const c of contents.slice(15)) {
        assert.equal(c.error, 'rate_limited')
        assert.equal(c.retryable, true)
        assert.match(c.detail, /bytes/)
      }
    } finally {
      await flooder.close()
    }
    await stillServing()
  })

  it('answers deeply nested JSON with a typed invalid_params (finding 4)', async () => {
    const depth = 100_000
    const deep = '['.repeat(depth) + ']'.repeat(depth)
    const frame = (id: number, args: string): Uint8Array => enc.encode(
      `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"task_queue.rpc","arguments":${args}}}`)
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { token: TOKEN } })
    await s.readJson()
    for (const [id, op] of [[1, 'submit'], [2, 'cache.set'], [3, 'peer.heartbeat'], [4, 'complete']] as const) {
      await s.sendFrame(frame(id, `{"op":"${op}","token":"${TOKEN}","key":"deep","task_id":"x","payload":${deep},"value":${deep}}`))
      const reply = await s.readJson() as Obj
      assert.equal(reply.id, id)
      assert.equal(reply.result.content.ok, false, op)
      assert.equal(reply.result.content.error, 'invalid_params', op)
    }
    // A direct method with deep params: the JSON-RPC invalid_params, stream still open.
    await s.sendFrame(enc.encode(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_server_status","arguments":${deep}}}`))
    assert.deepEqual((await s.readJson() as Obj).error, { code: -32602, message: 'invalid_params' })
    await s.sendJson(rpc(6, { op: 'status' }))
    assert.equal((await s.readJson() as Obj).result.content.ok, true)
    await s.close()
    const legacy = await client.legacyCall(`{"op":"cache.set","token":"${TOKEN}","key":"deep","value":${deep}}\n`) as Obj
    assert.equal(legacy.error, 'invalid_params')
    // Moderate nesting is still fine.
    const fine = '['.repeat(100) + ']'.repeat(100)
    assert.equal((await client.legacyCall(`{"op":"cache.set","token":"${TOKEN}","key":"ok","value":${fine}}\n`) as Obj).ok, true)
    await stillServing()
  })

  it('requires the token for tools/list (finding 5)', async () => {
    const s = await client.open()
    await s.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} })
    await s.readJson()
    await s.sendJson({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
    assert.deepEqual((await s.readJson() as Obj).error, { code: -32001, message: 'unauthorized' })
    await s.close()
    const t = await client.open()
    await t.sendJson({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { token: TOKEN } })
    await t.readJson()
    await t.sendJson({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
    const names = (await t.readJson() as Obj).result.tools.map((x: Obj) => x.name)
    assert.ok(names.includes('task_queue.rpc'))
    await t.close()
  })
})
