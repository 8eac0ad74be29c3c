/**
 * The ★ events stream and retention over real libp2p with real processes (issue 18):
 * a follower from cursor 0 sees every transition of 1,000 tasks exactly once and in
 * order across a service restart (retention: queue-retention.test.ts).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Follower, byTask, client, freePort } from '../helpers/event-follower.js'
import { sandbox, startDaemon } from '../helpers/procs.js'

describe('the events stream and retention over real libp2p', () => {
  it('a follower from cursor 0 sees every transition of 1,000 tasks exactly once and in order, across a service restart', async () => {
    const port = await freePort()
    const box = sandbox({ IPFS_ACCELERATE_PY_TASK_P2P_LISTEN_PORT: String(port) })
    let svc = await startDaemon('serve', [], box.env)
    const multiaddr = svc.multiaddr
    const worker = await startDaemon('worker', ['--multiaddr', multiaddr, '--task-types', 'echo', '--concurrency', '4'], box.env)
    const q = client(box.env, multiaddr)
    const N = 1000
    const completed = new Set<string>()
    let seen = 0
    const follower = new Follower(q, (f) => {
      for (; seen < f.events.length; seen++) if (f.events[seen].kind === 'completed') completed.add(f.events[seen].task_id)
      return completed.size >= N
    })
    try {
      const ids = (await q.submitMany(Array.from({ length: N }, (_, i) => ({ task_type: 'echo', payload: { i } })))).map((r) => {
        assert.ok(r.ok)
        return r.task_id
      })
      const deadline = Date.now() + 60_000
      while (completed.size < N / 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
      assert.ok(completed.size < N, 'the restart happens while tasks still run')
      await svc.stop()
      svc = await startDaemon('serve', [], box.env)
      assert.equal(svc.multiaddr, multiaddr, 'same identity and port after the restart')
      await Promise.race([follower.finished, new Promise((_resolve, reject) => { setTimeout(() => reject(new Error(`only ${completed.size} of ${N} completions seen`)), 120_000).unref() })])

      const seqs = follower.events.map((e) => e.seq)
      assert.equal(new Set(seqs).size, seqs.length, 'no event twice')
      assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), 'in order')
      assert.equal(follower.gaps, 0)
      const tasks = byTask(follower.events)
      for (const id of ids) {
        const kinds = (tasks.get(id) ?? []).map((e) => e.kind).join(' ')
        // A task in flight at the restart may be released (worker shutdown) or expire and run again.
        assert.match(kinds, /^submitted( claimed (released|retried))* claimed completed$/, `task ${id}: ${kinds}`)
      }
    } finally {
      follower.stop()
      await q.close()
      await worker.stop()
      await svc.stop()
      box.cleanup()
    }
  })
})
