/**
 * RemoteQueue.submitAndWait against scripted services: one that knows ★ submit
 * `wait_s` answers in one request; the original, which ignores `wait_s`, answers the
 * submit at once, and the client then waits with a second request on the same task
 * and the time that is left — the caller sees the same outcome either way.
 */
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import { loadSettings } from '../../src/config/index.js'
import { scriptedMcpPeer } from '../helpers/scripted-mcp-peer.js'
import type { ScriptedPeer, ScriptedReply } from '../helpers/scripted-mcp-peer.js'

type Obj = Record<string, any>

const INIT = { result: { ok: true, limits: { max_frames: 128, rate_capacity: 128, rate_refill_per_sec: 128 } } }
const task = (status: string): Obj => ({ task_id: 't1', task_type: 'x', status, result: status === 'completed' ? { v: 1 } : null })
const content = (c: Obj): Obj => ({ result: { content: c } })

function service (onCall: (args: Obj) => Obj): ScriptedReply {
  return (req) => req.method === 'initialize' ? INIT : content(onCall(req.params.arguments))
}

async function queueFor (t: TestContext, peer: ScriptedPeer): Promise<RemoteQueue> {
  const addr = peer.node.getMultiaddrs()[0].toString()
  const q = new RemoteQueue({ multiaddr: addr, settings: loadSettings({}, {}, () => {}, { role: 'client' }), addressBookPath: null })
  t.after(async () => { await q.close() })
  return q
}

const calls = (peer: ScriptedPeer): Obj[] => peer.seen.filter((s) => s.method === 'tools/call').map((s) => s.req.params.arguments)

test('a service that knows submit wait_s answers in one request', async (t) => {
  const peer = await scriptedMcpPeer(t, service((a) => a.op === 'submit'
    ? { ok: true, task_id: 't1', replayed: false, task: task('completed'), timed_out: false }
    : { ok: false, error: 'unexpected' }))
  const q = await queueFor(t, peer)
  const r = await q.submitAndWait({ task_type: 'x', payload: { n: 1 } }, 7)
  assert.deepEqual(r, { task_id: 't1', replayed: false, task: task('completed'), timed_out: false })
  const sent = calls(peer)
  assert.equal(sent.length, 1)
  assert.equal(sent[0].wait_s, 7)
  assert.match(sent[0].payload.idempotency_key, /^auto-/, 'a generated idempotency key, as for submit')
  assert.equal(sent[0].payload.n, 1)
})

test('against the original service, which ignores wait_s, the client waits with a second request', async (t) => {
  const peer = await scriptedMcpPeer(t, service((a) => {
    if (a.op === 'submit') return { ok: true, task_id: 't1', replayed: true }
    if (a.op === 'wait') return { ok: true, task: task('completed'), timed_out: false }
    return { ok: false, error: 'unknown_op' }
  }))
  const q = await queueFor(t, peer)
  const r = await q.submitAndWait({ task_type: 'x', idempotency_key: 'k' }, 5)
  assert.deepEqual(r, { task_id: 't1', replayed: true, task: task('completed'), timed_out: false })
  const sent = calls(peer)
  assert.deepEqual(sent.map((a) => a.op), ['submit', 'wait'])
  assert.equal(sent[0].payload.idempotency_key, 'k')
  assert.equal(sent[1].task_id, 't1')
  assert.ok(sent[1].timeout_s > 0 && sent[1].timeout_s <= 5, `the wait gets what is left of 5 s, got ${sent[1].timeout_s}`)
})

test('a timed-out one-call reply is passed on as timed out, without a second request', async (t) => {
  const peer = await scriptedMcpPeer(t, service(() => ({ ok: true, task_id: 't1', replayed: false, task: task('queued'), timed_out: true })))
  const q = await queueFor(t, peer)
  const r = await q.submitAndWait({ task_type: 'x' }, 1)
  assert.equal(r.timed_out, true)
  assert.equal(r.task?.status, 'queued')
  assert.equal(calls(peer).length, 1)
})

test('timeouts that are not positive seconds are refused before anything is sent', async (t) => {
  const peer = await scriptedMcpPeer(t)
  const q = await queueFor(t, peer)
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(q.submitAndWait({ task_type: 'x' }, bad), RangeError)
  }
  assert.equal(peer.seen.length, 0)
})
