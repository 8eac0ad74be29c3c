/**
 * The ★ events stream and retention over real libp2p with real processes (issue 18):
 * a follower from cursor 0 sees every transition of 1,000 tasks exactly once and in
 * order across a service restart; with a short retention, finished tasks go on
 * schedule while 10,000 others are processed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import { loadSettings } from '../../src/config/index.js'
import type { TaskEvent } from '../../src/protocol/types.js'
import { sandbox, startDaemon } from '../helpers/procs.js'
import type { Env } from '../helpers/procs.js'

async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

function client (env: Env, multiaddr: string): RemoteQueue {
  return new RemoteQueue({ multiaddr, settings: loadSettings(env, {}, () => {}, { role: 'client' }), addressBookPath: null })
}

/** Follows the stream from cursor 0 until `done` says so; survives the service going away. */
class Follower {
  readonly events: TaskEvent[] = []
  cursor = 0
  gaps = 0
  private stopped = false
  readonly finished: Promise<void>

  constructor (private readonly q: RemoteQueue, private readonly done: (f: Follower) => boolean) {
    this.finished = this.run()
  }

  stop (): void { this.stopped = true }

  private async run (): Promise<void> {
    while (!this.stopped && !this.done(this)) {
      try {
        const page = await this.q.events({ cursor: this.cursor, limit: 1000, wait_s: 2 }, { timeoutMs: 20_000 })
        if (page.gap) this.gaps++
        this.events.push(...page.events)
        this.cursor = page.cursor
      } catch {
        // The service is restarting: ask again from the same cursor.
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }
}

function byTask (events: TaskEvent[]): Map<string, TaskEvent[]> {
  const out = new Map<string, TaskEvent[]>()
  for (const e of events) {
    const list = out.get(e.task_id) ?? []
    list.push(e)
    out.set(e.task_id, list)
  }
  return out
}

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
      await Promise.race([follower.finished, new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`only ${completed.size} of ${N} completions seen`)), 120_000))])

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
      await Promise.race([follower.finished, new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`only ${pruned.size} of ${N} pruned`)), 240_000))])
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
