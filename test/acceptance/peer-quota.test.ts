/**
 * What one remote peer may keep (issue 21 item 4, README "Security"): PEER_MAX_TASKS and
 * PEER_MAX_TASK_BYTES bound the unfinished tasks a peer submitted and their payload
 * bytes. Real `serve`, `worker` and `p2p-rpc` processes over TCP loopback; two raw
 * clients with their own peer ids stand for a greedy peer and a well-behaved one.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RawClient } from '../helpers/raw-client.js'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon } from '../helpers/procs.js'

const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
type Obj = Record<string, any>

async function until<T> (what: string, fn: () => Promise<T | null>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v !== null) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('PEER_MAX_TASKS and PEER_MAX_TASK_BYTES', () => {
  it('one peer cannot fill the queue: typed, retryable refusals per item, counted; others unaffected; places free as tasks finish; kept across a restart', async () => {
    const box = sandbox({ [`${P}PEER_MAX_TASKS`]: '5', [`${P}PEER_MAX_TASK_BYTES`]: '4096' })
    let svc: Daemon = await startDaemon('serve', ['--legacy'], box.env)
    const greedy = await RawClient.create(svc.multiaddr)
    const other = await RawClient.create(svc.multiaddr)
    let worker: Daemon | null = null
    try {
      const submit = async (c: RawClient, env: Obj = {}): Promise<Obj> => await c.originalCall({ op: 'submit', task_type: 'held', ...env }) as Obj
      for (let i = 0; i < 5; i++) assert.equal((await submit(greedy, { payload: { i } })).ok, true)
      const refused = await submit(greedy, { payload: { i: 5 } })
      assert.equal(refused.ok, false)
      assert.equal(refused.error, 'rate_limited')
      assert.equal(refused.retryable, true)
      assert.equal(refused.limit, 'PEER_MAX_TASKS')
      assert.match(refused.detail, /5 unfinished tasks/)
      // The legacy transport answers alike.
      const legacy = await greedy.legacyCall(JSON.stringify({ op: 'submit', task_type: 'held' }) + '\n') as Obj
      assert.equal(legacy.error, 'rate_limited')
      assert.equal(legacy.limit, 'PEER_MAX_TASKS')

      // Another peer is not starved; its submit_many is bounded item by item (bytes here).
      const big = 'x'.repeat(1500)
      const many = await other.originalCall({
        op: 'submit_many',
        items: [{ task_type: 'held', payload: { big } }, { task_type: 'held', payload: { big } }, { task_type: 'held', payload: { big } }, { task_type: 'held', payload: { n: 1 } }]
      }) as Obj
      assert.equal(many.ok, true)
      assert.deepEqual(many.results.map((r: Obj) => r.ok), [true, true, false, true], 'the third big payload passes 4096 bytes; the small one after it fits')
      assert.equal(many.results[2].error, 'rate_limited')
      assert.equal(many.results[2].limit, 'PEER_MAX_TASK_BYTES')
      assert.equal(many.results[2].retryable, true)

      const status = await other.originalCall({ op: 'status', detail: true }) as Obj
      assert.equal(status.security.refusals.quota, 3, 'two refused submits and one refused item')
      assert.equal(status.queue.queued, 8)

      // A worker finishes the greedy peer's tasks: it may submit again.
      worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--task-types', 'held', '--handlers', handlerModule(box.dir)], box.env)
      await until('the worker to drain the queue', async () => {
        const s = await other.originalCall({ op: 'status', detail: true }) as Obj
        return s.queue.queued === 0 && s.queue.running === 0 ? s : null
      })
      await worker.stop()
      worker = null
      for (let i = 0; i < 5; i++) assert.equal((await submit(greedy, { payload: { again: i } })).ok, true, `place ${i} freed`)
      assert.equal((await submit(greedy)).limit, 'PEER_MAX_TASKS')

      // The totals live in the queue file: a restarted service still refuses the peer.
      await svc.stop()
      svc = await startDaemon('serve', ['--legacy'], box.env)
      const again = await RawClient.attach(greedy.node, svc.multiaddr)
      assert.equal((await again.originalCall({ op: 'submit', task_type: 'held' }) as Obj).limit, 'PEER_MAX_TASKS')
      const otherAgain = await RawClient.attach(other.node, svc.multiaddr)
      assert.equal((await otherAgain.originalCall({ op: 'submit', task_type: 'held' }) as Obj).ok, true)
    } finally {
      await worker?.stop()
      await greedy.close()
      await other.close()
      await svc.stop()
      box.cleanup()
    }
  })

  it('p2p-rpc reports the refusal with the bound it hit (after its retries), exit 1', async () => {
    const box = sandbox({ [`${P}PEER_MAX_TASK_BYTES`]: '100', [`${P}SUBMIT_RETRIES`]: '1' })
    const svc = await startDaemon('serve', [], box.env)
    try {
      const ok = await runRpc(['task-submit', '--task-type', 'held', '--model-name', 'm', '--payload', '{"n":1}'], box.env)
      assert.equal(ok.code, 0, ok.stdout + ok.stderr)
      const big = await runRpc(['task-submit', '--task-type', 'held', '--model-name', 'm', '--payload', JSON.stringify({ big: 'x'.repeat(200) })], box.env)
      assert.equal(big.code, 1, big.stdout + big.stderr)
      assert.equal(big.json?.error, 'rate_limited')
      const reply = (big.json as Obj | undefined)?.reply as Obj | undefined
      assert.equal(reply?.limit, 'PEER_MAX_TASK_BYTES')
      assert.equal(reply?.retryable, true)
      assert.match(String(reply?.detail), /payload bytes \(PEER_MAX_TASK_BYTES=100\)/)
    } finally {
      await svc.stop()
      box.cleanup()
    }
  })
})

describe('PEER_MAX_CACHE_BYTES', () => {
  it('one peer cannot take the cache over: a typed refusal that stores nothing, counted; others still write; deleting frees room', async () => {
    const box = sandbox({ [`${P}PEER_MAX_CACHE_BYTES`]: '1000', [`${P}HTTP_PORT`]: '0', [`${P}TOKEN`]: 'quota-t' })
    const svc = await startDaemon('serve', ['--enable-cache'], box.env)
    const greedy = await RawClient.create(svc.multiaddr)
    const other = await RawClient.create(svc.multiaddr)
    try {
      const set = async (c: RawClient, key: string, n: number): Promise<Obj> => await c.originalCall({ op: 'cache.set', token: 'quota-t', key, value: 'x'.repeat(n) }) as Obj
      // Each entry: key (2 bytes) + the JSON string (302 bytes).
      for (const key of ['k1', 'k2', 'k3']) assert.equal((await set(greedy, key, 300)).ok, true)
      const refused = await set(greedy, 'k4', 300)
      assert.equal(refused.error, 'rate_limited')
      assert.equal(refused.limit, 'PEER_MAX_CACHE_BYTES')
      assert.equal(refused.retryable, true)
      assert.equal((await greedy.originalCall({ op: 'cache.has', token: 'quota-t', key: 'k4' }) as Obj).hit, false)
      assert.equal((await set(other, 'o1', 300)).ok, true, 'another peer is not starved')
      assert.equal((await greedy.originalCall({ op: 'cache.delete', token: 'quota-t', key: 'k1' }) as Obj).deleted, true)
      assert.equal((await set(greedy, 'k4', 300)).ok, true, 'room freed by its own delete')
      const status = await other.originalCall({ op: 'status', token: 'quota-t' }) as Obj
      assert.equal(status.security.refusals.quota, 1)
      // …and in /metrics.
      const base = String((JSON.parse(readFileSync(box.announceFile, 'utf8')) as { http_url?: string }).http_url)
      const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer quota-t' } })).text()
      assert.match(metrics, /^taskqueue_refusals_total\{reason="quota"\} 1$/m)
    } finally {
      await greedy.close()
      await other.close()
      await svc.stop()
      box.cleanup()
    }
  })
})

/** A handler module for the worker: `held` tasks complete at once. */
function handlerModule (dir: string): string {
  const path = join(dir, 'held-handler.mjs')
  writeFileSync(path, 'export default { held: async () => ({ done: true }) }\n')
  return path
}
