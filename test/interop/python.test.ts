/**
 * Interop with the original's stack: a py-libp2p peer that behaves as wire-protocol.md
 * and discovery.md describe the original (test/interop/python/original_peer.py; no
 * released ipfs_accelerate_py carries `p2p_tasks`, so it is written from the spec).
 * Both directions, over MCP++ and legacy NDJSON, and discovery through the announce
 * file and a mixed js/py Kademlia DHT. Every process is real, on loopback.
 */
import { after, before, describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Sandbox } from '../helpers/procs.js'
import { interopPython, requirePeer } from './helpers/toolchains.js'
import { runPythonClient, startPythonService } from './helpers/python-peer.js'
import type { PythonService } from './helpers/python-peer.js'

type Obj = Record<string, any>
const TERMINAL = new Set(['completed', 'failed', 'cancelled'])

/** A client environment that reaches nothing but what the test names. */
function clientEnv (box: Sandbox, extra: Record<string, string> = {}): Record<string, string> {
  return { ...box.env, IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE: '0', ...extra }
}

function python (t: TestContext): string | null {
  const found = interopPython()
  return requirePeer(t, 'py-libp2p', found) ? found.path : null
}

describe('ours → the original service (py-libp2p)', () => {
  let py: string | null = null
  let svc: PythonService | undefined
  let box: Sandbox

  before(async () => {
    box = sandbox()
    py = interopPython().path
    if (py !== null) svc = await startPythonService(py, ['--announce-file', box.announceFile])
  })
  after(async () => {
    await svc?.stop()
    box?.cleanup()
  })

  it('p2p-rpc: status and call-tool over MCP++ (one call per stream, the service closes it)', async (t) => {
    if (python(t) === null || svc === undefined) return
    const status = await runRpc(['status', '--multiaddr', svc.multiaddr], clientEnv(box))
    assert.equal(status.code, 0, status.stdout + status.stderr)
    assert.equal(status.json?.ok, true)
    assert.equal(status.json?.peer_id, svc.peerId)
    const tool = await runRpc(['call-tool', '--tool', 'get_server_status', '--multiaddr', svc.multiaddr], clientEnv(box))
    assert.equal(tool.code, 0, tool.stdout + tool.stderr)
    assert.equal((tool.json?.result as Obj).status, 'running')
  })

  for (const protocol of ['mcp', 'legacy'] as const) {
    it(`RemoteQueue over ${protocol}: cache set/get/has/delete, submit → claim → complete → wait`, async (t) => {
      if (python(t) === null || svc === undefined) return
      const q = new RemoteQueue({ multiaddr: svc.multiaddr, env: clientEnv(box, { IPFS_ACCELERATE_PY_TASK_P2P_PROTOCOL: protocol }), addressBookPath: null })
      try {
        assert.equal((await q.status()).peer_id, svc.peerId)
        // Several calls at once: against a one-call-per-stream service each needs its own stream.
        const key = `k-${protocol}`
        await Promise.all([q.cacheSet(key, { text: 'grüße ✓', n: 1 }, 60), q.cacheSet(`${key}-2`, 'x', 60)])
        assert.deepEqual((await q.cacheGet(key)).value, { text: 'grüße ✓', n: 1 })
        assert.equal(await q.cacheHas(key), true)
        assert.equal(await q.cacheDelete(key), true)
        assert.equal(await q.cacheHas(key), false)
        assert.deepEqual(await q.cacheGet(key), { hit: false, value: null, expires_at: null })

        const { task_id: taskId } = await q.submit({ task_type: `interop-${protocol}`, model_name: 'm', payload: { x: 1 } })
        assert.match(taskId, /^[0-9a-f]{32}$/)
        const early = await q.wait(taskId, 1)
        assert.equal(early.task?.status, 'queued')
        assert.equal(early.timed_out, true, 'the original sends no timed_out: a task still queued means the wait ran out')
        const claimed = await q.claim({ worker_id: `w-${protocol}`, supported_task_types: [`interop-${protocol}`] })
        assert.equal(claimed?.task_id, taskId)
        assert.equal(claimed?.status, 'running')
        const waiting = q.wait(taskId, 30)
        await q.complete({ task_id: taskId, status: 'completed', result: { answer: 42 }, worker_id: `w-${protocol}` })
        const done = await waiting
        assert.equal(done.timed_out, false)
        assert.equal(done.task?.status, 'completed')
        assert.deepEqual((done.task?.result as Obj).answer, 42)
      } finally {
        await q.close()
      }
    })
  }

  it('our remote worker drains the original service, renewing leases it does not know (task.heartbeat → unknown_op)', async (t) => {
    if (python(t) === null || svc === undefined) return
    const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--lease-s', '10', '--concurrency', '2', '--batch', '4', '--task-types', 'echo,sleep'], clientEnv(box))
    const q = new RemoteQueue({ multiaddr: svc.multiaddr, env: clientEnv(box), addressBookPath: null })
    try {
      // A 4 s task outlives one renewal interval (lease 10 s / 3) against a service without task.heartbeat.
      const slow = await q.submit({ task_type: 'sleep', payload: { seconds: 4 } })
      const echoes = await Promise.all([1, 2, 3].map(async (i) => await q.submit({ task_type: 'echo', payload: { i } })))
      // submitAndWait: the original ignores wait_s, so the client falls back to its own wait.
      const sw = await q.submitAndWait({ task_type: 'echo', payload: { i: 4 } }, 30)
      assert.equal(sw.timed_out, false)
      assert.equal(sw.task?.status, 'completed')
      assert.equal((sw.task?.result as Obj).i, 4)
      for (const { task_id: id } of [slow, ...echoes]) {
        const r = await q.wait(id, 30)
        assert.ok(r.task !== null && TERMINAL.has(r.task.status), `task ${id} is ${r.task?.status ?? 'missing'}`)
        assert.equal(r.task.status, 'completed', JSON.stringify(r.task))
        assert.equal(r.task.attempt, 1, 'no task ran twice')
      }
    } finally {
      await q.close()
      assert.equal(await worker.stop(), 0, worker.stderr())
    }
  })

  it('p2p-rpc discover finds the original service through its announce file', async (t) => {
    if (python(t) === null || svc === undefined) return
    const r = await runRpc(['discover', '--announce-file', box.announceFile], clientEnv(box))
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.equal(r.json?.method, 'announce-file')
    assert.equal((r.json?.result as Obj).peer_id, svc.peerId)
  })
})

describe('the original client (py-libp2p) → our service', () => {
  let box: Sandbox
  let svc: Daemon

  before(async () => {
    box = sandbox()
    svc = await startDaemon('serve', ['--enable-tools', '--enable-cache', '--legacy', '--worker'], box.env)
  })
  after(async () => {
    await svc?.stop()
    box?.cleanup()
  })

  for (const legacy of [false, true]) {
    it(`answers every op the original client sends over ${legacy ? 'legacy NDJSON' : 'MCP++'} with the replies the spec promises`, async (t) => {
      const py = python(t)
      if (py === null) return
      const key = `py-${String(legacy)}`
      const first = await runPythonClient(py, [
        { op: 'status' },
        { op: 'call_tool', tool: 'get_server_status' },
        { op: 'cache.set', key, value: { s: 'grüße ✓' }, ttl_s: 60 },
        { op: 'cache.get', key },
        { op: 'cache.has', key },
        { op: 'cache.delete', key },
        { op: 'cache.get', key },
        { op: 'submit', task_type: 'text-generation', model_name: 'm', payload: { prompt: 'hi', priority: 9 } }
      ], ['--multiaddr', svc.multiaddr], { legacy })
      assert.equal(first.ok, true, first.error)
      const [status, tool, set, get, has, del, miss, sub] = first.results
      assert.equal(status.ok, true)
      assert.equal(status.peer_id, svc.peerId)
      assert.deepEqual(status.capabilities.models, [])
      assert.equal(typeof status.nat.autonat.status, 'string')
      assert.equal(tool.ok, true)
      assert.equal(tool.result.status, 'running')
      assert.equal(set.ok, true)
      assert.deepEqual([get.hit, get.value], [true, { s: 'grüße ✓' }])
      assert.equal(has.hit, true)
      assert.equal(del.deleted, true)
      assert.deepEqual([miss.ok, miss.hit, miss.value], [true, false, null])
      assert.equal(sub.ok, true)
      assert.match(sub.task_id, /^[0-9a-f]{32}$/)

      // One worker id throughout: with a second live claimer the deterministic
      // scheduler (§7.4) could hand this task to the other one.
      const second = await runPythonClient(py, [
        { op: 'claim', worker_id: 'pyw', supported_task_types: ['text-generation'] },
        { op: 'complete', task_id: sub.task_id, status: 'completed', result: { text: 'done' } },
        { op: 'wait', task_id: sub.task_id, timeout_s: 5 },
        { op: 'get', task_id: sub.task_id },
        { op: 'nonsense' }
      ], ['--multiaddr', svc.multiaddr], { legacy })
      assert.equal(second.ok, true, second.error)
      const [claim, complete, wait, get2, unknown] = second.results
      assert.equal(claim.task.task_id, sub.task_id)
      assert.equal(claim.task.status, 'running')
      assert.equal(claim.task.assigned_worker, 'pyw')
      assert.deepEqual([complete.ok, complete.task_id], [true, sub.task_id])
      assert.equal(wait.task.status, 'completed')
      assert.equal(wait.task.result.text, 'done')
      assert.equal(get2.task.priority, 9)
      assert.deepEqual([unknown.ok, unknown.error], [false, 'unknown_op'])
    })
  }

  it('the original client finds our service through our announce file; our embedded worker runs its task', async (t) => {
    const py = python(t)
    if (py === null) return
    const first = await runPythonClient(py, [{ op: 'submit', task_type: 'echo', payload: { v: 'from python' } }], ['--announce-file', box.announceFile])
    assert.equal(first.ok, true, first.error)
    assert.equal(first.method, 'announce-file')
    const second = await runPythonClient(py, [{ op: 'wait', task_id: first.results[0].task_id, timeout_s: 30 }], ['--announce-file', box.announceFile])
    assert.equal(second.results[0].task.status, 'completed')
    assert.equal(second.results[0].task.result.v, 'from python')
  })
})

describe('DHT between the original and ours (discovery.md §6 value record)', () => {
  let ourBox: Sandbox
  let ours: Daemon
  let theirs: PythonService | undefined
  const OUR_NS = 'interop-ours'
  const THEIR_NS = 'interop-theirs'

  before(async () => {
    const py = interopPython().path
    ourBox = sandbox({
      IPFS_ACCELERATE_PY_TASK_P2P_DHT: '1',
      IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS_NS: OUR_NS
    })
    ours = await startDaemon('serve', [], ourBox.env)
    // The original joins through our node: each stores the other's record.
    if (py !== null) {
      theirs = await startPythonService(py, ['--dht', '--ns', THEIR_NS, '--bootstrap', ours.multiaddr])
      assert.equal(await theirs.line('dht_record', 60_000), 'stored', theirs.stderr())
    }
  })
  after(async () => {
    await theirs?.stop()
    await ours?.stop()
    ourBox?.cleanup()
  })

  it('our client finds the original service by its value record', async (t) => {
    if (python(t) === null || theirs === undefined) return
    const env = clientEnv(ourBox, {
      IPFS_ACCELERATE_PY_TASK_P2P_DHT: '1',
      IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS: ours.multiaddr,
      // Seeds only: dialling our node as a TaskQueue endpoint would win before the DHT.
      IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_DIAL: '0',
      IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS_NS: THEIR_NS
    })
    const r = await runRpc(['discover', '--timeout', '20'], env)
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.equal(r.json?.method, 'dht')
    assert.equal((r.json?.result as Obj).peer_id, theirs.peerId)
    const won = (r.json?.attempts as Obj[]).find((a) => a.ok === true)
    assert.equal(won?.source, 'value_record')
  })

  it('the original client finds our service by the value record we put', async (t) => {
    const py = python(t)
    if (py === null || theirs === undefined) return
    // It asks the py-libp2p node only: our record reached it over the DHT.
    const r = await runPythonClient(py, [{ op: 'status' }], ['--dht-bootstrap', theirs.multiaddr, '--ns', OUR_NS])
    assert.equal(r.ok, true, r.error)
    assert.equal(r.method, 'dht')
    assert.equal(r.results[0].peer_id, ours.peerId)
  })
})
