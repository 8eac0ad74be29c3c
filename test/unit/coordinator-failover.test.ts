/**
 * ★ Failover between the coordinators of one queue (issue 20), client side: a client
 * given one coordinator's address learns the others from its status reply
 * (`coordinators`), and when that coordinator dies its next call goes to another one;
 * an idempotent call that was in flight is sent again there. Scripted services on
 * loopback play the coordinators.
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
const content = (c: Obj): Obj => ({ result: { content: c } })

function coordinator (name: string, others: () => ScriptedPeer[], hold?: Promise<void>): ScriptedReply {
  return async (req) => {
    if (req.method === 'initialize') return INIT
    const a = req.params.arguments as Obj
    if (a.op === 'status') {
      return content({
        ok: true,
        backend: { kind: 'postgres' },
        coordinators: others().map((p) => ({ peer_id: p.node.peerId.toString(), multiaddrs: p.node.getMultiaddrs().map(String), started_at: 1, seen_at: 2 }))
      })
    }
    if (a.op === 'wait' && hold !== undefined) await hold
    return content({ ok: true, task: { task_id: a.task_id, status: 'completed', served_by: name }, timed_out: false })
  }
}

function client (t: TestContext, peer: ScriptedPeer): RemoteQueue {
  const q = new RemoteQueue({ multiaddr: peer.node.getMultiaddrs()[0].toString(), settings: loadSettings({}, {}, () => {}, { role: 'client' }), addressBookPath: null })
  t.after(async () => { await q.close() })
  return q
}

const ops = (peer: ScriptedPeer): string[] => peer.seen.filter((s) => s.method === 'tools/call').map((s) => s.req.params.arguments.op)

test('a client fails over to a coordinator its status listed when its own dies', async (t) => {
  const peers: ScriptedPeer[] = []
  const a = await scriptedMcpPeer(t, coordinator('a', () => peers.slice(1)))
  const b = await scriptedMcpPeer(t, coordinator('b', () => [a]))
  peers.push(a, b)
  const q = client(t, a)
  const st = await q.status()
  assert.deepEqual((st.coordinators as Obj[]).map((c) => c.peer_id), [b.node.peerId.toString()])
  assert.equal(((await q.get('t1')) as Obj | null)?.served_by, 'a')
  await a.node.stop()
  const task = await q.get('t2') as Obj | null
  assert.equal(task?.served_by, 'b', 'the call after the death went to the other coordinator')
  assert.equal(q.peerId, b.node.peerId.toString())
  assert.ok(ops(b).includes('status'), 'the survivor was checked with a status before use')
})

test('an idempotent call in flight when the coordinator dies is answered by another', async (t) => {
  // a never answers the wait: it dies with it on its stream.
  const held = new Promise<void>(() => {})
  const peers: ScriptedPeer[] = []
  const a = await scriptedMcpPeer(t, coordinator('a', () => peers.slice(1), held))
  const b = await scriptedMcpPeer(t, coordinator('b', () => [a]))
  peers.push(a, b)
  const q = client(t, a)
  await q.status()
  const waiting = q.wait('t3', 30)
  // The wait is on a's stream when a goes away.
  for (let i = 0; i < 200 && !ops(a).includes('wait'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.ok(ops(a).includes('wait'))
  await a.node.stop()
  const out = await waiting
  assert.equal((out.task as Obj | null)?.served_by, 'b')
  assert.deepEqual(ops(b).filter((o) => o === 'wait'), ['wait'])
})

test('without a known coordinator to go to, a dead explicit service still fails as before', async (t) => {
  const a = await scriptedMcpPeer(t, coordinator('a', () => []))
  const q = client(t, a)
  await q.status()
  await a.node.stop()
  await assert.rejects(q.get('t4', { timeoutMs: 3000, retries: 1 }), (err: Error & { code?: string }) => err.code === 'dial_failed' || err.code === 'deadline_exceeded')
})
