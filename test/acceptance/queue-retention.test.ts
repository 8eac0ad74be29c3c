/**
 * Retention over real libp2p with real processes (issue 18): with a short retention,
 * finished tasks go on schedule while 10,000 others are processed (the size;
 * submitted in batches of 1,000 through submit_many, so the suite stays short on 2
 * cores). The 100,000-task soak of the file size is bench/retention-soak.ts.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Follower, byTask, client } from '../helpers/event-follower.js'
import { sandbox, startDaemon } from '../helpers/procs.js'

describe('retention over real libp2p', () => {
  it('with a short retention, finished tasks disappear on schedule while 10,000 others are processed', async () => {
    const RETENTION = 2
    const box = sandbox({ IPFS_ACCELERATE_PY_TASK_P2P_RETENTION_COMPLETED_S: String(RETENTION) })
    const svc = await startDaemon('serve', [], box.env)
    const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--task-types', 'echo', '--concurrency', '32', '--batch', '32'], box.env)
    const q = client(box.env, svc.multiaddr)
    const N = 10_000
    const pruned = new Set<string>()
    let seen = 0
    const follower = new Follower(q, (f) => {
      for (; seen < f.events.length; seen++) if (f.events[seen].kind === 'pruned') pruned.add(f.events[seen].task_id)
      return pruned.size >= N
    })
    try {
      const ids: string[] = []
      for (let i = 0; i < N; i += 1000) {
        const batch = await q.submitMany(Array.from({ length: 1000 }, (_, j) => ({ task_type: 'echo', payload: { i: i + j } })))
        for (const r of batch) if (r.ok) ids.push(r.task_id)
      }
      assert.equal(ids.length, N)
      await Promise.race([follower.finished, new Promise((_resolve, reject) => { setTimeout(() => reject(new Error(`only ${pruned.size} of ${N} pruned`)), 240_000).unref() })])
      const tasks = byTask(follower.events)
      let late = 0
      for (const id of ids) {
        const ev = tasks.get(id) ?? []
        const done = ev.find((e) => e.kind === 'completed')
        const gone = ev.find((e) => e.kind === 'pruned')
        assert.ok(done !== undefined && gone !== undefined, `task ${id}: ${ev.map((e) => e.kind).join(' ')}`)
        const kept = gone.at - done.at
        // An event's time is taken when its transaction records it (a group commit of many
        // ops), a few ms after the statement that set the task's expiry: hence the 0.1 s.
        assert.ok(kept >= RETENTION - 0.1, `task ${id} pruned after ${kept} s, retention ${RETENTION} s`)
        // The sweeper runs every second in batches; beyond a few seconds is not "on schedule".
        if (kept > RETENTION + 5) late++
      }
      assert.equal(late, 0, `${late} tasks were pruned more than 5 s late`)
      const status = await q.status(true)
      assert.ok(Number((status.queue as Record<string, unknown>).pruned) >= N)
      assert.equal(await q.get(ids[0]), null)
    } finally {
      follower.stop()
      await q.close()
      await worker.stop()
      await svc.stop()
      box.cleanup()
    }
  })
})
