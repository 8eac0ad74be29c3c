/**
 * Operating the queue over real libp2p, with real processes (issue 18): retries with
 * backoff and final errors, task-retry, delays, pause/resume, purge, the SIGTERM
 * handover, and the CLI reading JSON from files and stdin. Timings are read from the
 * service's own event log (★ events), so they measure the queue, not the test's polling.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import { loadSettings } from '../../src/config/index.js'
import type { TaskEvent } from '../../src/protocol/types.js'
import { NODE, RPC_BIN, runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Env } from '../helpers/procs.js'

type Obj = Record<string, any>

async function rpc (env: Env, args: string[], timeoutMs = 60_000): Promise<Obj> {
  const r = await runRpc(args, env, timeoutMs)
  assert.equal(r.code, 0, `p2p-rpc ${args.join(' ')}: ${r.stdout} ${r.stderr}`)
  return r.json as Obj
}

async function until (what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await fn()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function client (env: Env, multiaddr: string): RemoteQueue {
  return new RemoteQueue({ multiaddr, settings: loadSettings(env, {}, () => {}, { role: 'client' }), addressBookPath: null })
}

/** Every event of `taskId` in the service's log. */
async function eventsOf (q: RemoteQueue, taskId: string): Promise<TaskEvent[]> {
  const out: TaskEvent[] = []
  let cursor = 0
  for (;;) {
    const page = await q.events({ cursor, limit: 1000, task_ids: [taskId] })
    out.push(...page.events)
    cursor = page.cursor
    if (!page.more) return out
  }
}

const FLAKY = `
const seen = new Map()
export default {
  // Fails its first two attempts, then succeeds.
  flaky (task) {
    const n = (seen.get(task.task_id) ?? 0) + 1
    seen.set(task.task_id, n)
    if (n < 3) throw new Error('flaky attempt ' + n)
    return { attempt: n }
  },
  // A final error from a module that cannot import FinalError: retry:false says it.
  doomed () { throw Object.assign(new Error('no point retrying'), { retry: false }) },
  stamp () { return { at: Date.now() / 1000 } }
}
`

describe('operating the queue over real libp2p', () => {
  it('a handler failing twice completes on attempt 3 with two errors, gaps following the backoff; a final error fails at once; task-retry requeues it', async () => {
    const box = sandbox()
    const mod = join(box.dir, 'flaky.mjs')
    writeFileSync(mod, FLAKY)
    const svc = await startDaemon('serve', [], box.env)
    const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--handlers', mod, '--task-types', 'flaky,doomed', '--worker-id', 'w-flaky'], box.env)
    const q = client(box.env, svc.multiaddr)
    try {
      const fixed = (await rpc(box.env, ['task-submit', '--task-type', 'flaky', '--model-name', 'm', '--max-attempts', '3', '--backoff', 'fixed', '--backoff-delay', '0.5'])).task_id
      const expo = (await q.submit({ task_type: 'flaky', max_attempts: 3, backoff: { type: 'exponential', delay_s: 0.4 } })).task_id
      for (const [id, gaps] of [[fixed, [0.5, 0.5]], [expo, [0.4, 0.8]]] as const) {
        const t = (await rpc(box.env, ['task-wait', '--task-id', id, '--timeout', '30'])).result
        assert.equal(t.status, 'completed')
        assert.equal(t.attempt, 3)
        assert.deepEqual(t.result, { attempt: 3 })
        assert.deepEqual(t.errors.map((e: Obj) => [e.attempt, e.error, e.worker_id]), [[1, 'flaky attempt 1', 'w-flaky'], [2, 'flaky attempt 2', 'w-flaky']])
        // From each failure to the next claim: the backoff, and not much more.
        const ev = await eventsOf(q, id)
        assert.deepEqual(ev.map((e) => e.kind), ['submitted', 'claimed', 'retried', 'claimed', 'retried', 'claimed', 'completed'])
        const retried = ev.filter((e) => e.kind === 'retried')
        const claims = ev.filter((e) => e.kind === 'claimed').slice(1)
        for (let i = 0; i < 2; i++) {
          const gap = claims[i].at - retried[i].at
          assert.ok(gap >= gaps[i] - 0.001, `gap ${i + 1} of ${id}: ${gap} s, backoff ${gaps[i]} s`)
          assert.ok(gap <= gaps[i] * 1.2 + 0.25, `gap ${i + 1} of ${id}: ${gap} s, backoff ${gaps[i]} s (+20% jitter)`)
        }
      }
      const doomed = (await rpc(box.env, ['task-submit', '--task-type', 'doomed', '--model-name', 'm', '--max-attempts', '5'])).task_id
      let t = (await rpc(box.env, ['task-wait', '--task-id', doomed, '--timeout', '30'])).result
      assert.equal(t.status, 'failed')
      assert.equal(t.attempt, 1, 'a final error is not retried')
      assert.equal(t.error, 'no point retrying')
      const again = await rpc(box.env, ['task-retry', '--task-id', doomed])
      assert.equal(again.retried, 1)
      assert.deepEqual(again.task_ids, [doomed])
      t = (await rpc(box.env, ['task-wait', '--task-id', doomed, '--timeout', '30'])).result
      assert.equal(t.status, 'failed')
      assert.equal(t.attempt, 1, 'fresh attempts')
      assert.equal(t.errors.length, 2, 'the history of both runs')
      const bad = await runRpc(['task-retry', '--status', 'running'], box.env)
      assert.equal(bad.code, 1)
      assert.equal((bad.json as Obj).error, 'invalid_params')
    } finally {
      await q.close()
      await worker.stop()
      await svc.stop()
      box.cleanup()
    }
  })

  it('a delayed task is not claimable before its time and is claimed within 50 ms after it', async () => {
    const box = sandbox()
    const mod = join(box.dir, 'flaky.mjs')
    writeFileSync(mod, FLAKY)
    const svc = await startDaemon('serve', [], box.env)
    const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--handlers', mod, '--task-types', 'stamp', '--concurrency', '2'], box.env)
    const q = client(box.env, svc.multiaddr)
    try {
      const viaCli = (await rpc(box.env, ['task-submit', '--task-type', 'stamp', '--model-name', 'm', '--delay', '2'])).task_id
      const viaLib = (await q.submit({ task_type: 'stamp', run_at: Date.now() / 1000 + 4 })).task_id
      for (const id of [viaCli, viaLib]) {
        const t = (await rpc(box.env, ['task-wait', '--task-id', id, '--timeout', '30'])).result
        assert.equal(t.status, 'completed')
        const ev = await eventsOf(q, id)
        const submitted = ev.find((e) => e.kind === 'submitted')
        const claimed = ev.find((e) => e.kind === 'claimed')
        assert.ok(submitted !== undefined && claimed !== undefined)
        assert.ok(t.next_attempt_at > submitted.at, 'the task arrived before its time (else the test proves nothing)')
        const late = claimed.at - t.next_attempt_at
        assert.ok(late >= 0, `claimed ${-late} s before its time`)
        assert.ok(late <= 0.05, `claimed ${late} s after its time`)
      }
    } finally {
      await q.close()
      await worker.stop()
      await svc.stop()
      box.cleanup()
    }
  })

  it('pause stops claims (a parked long-poll claimer gets nothing) and survives a restart; resume wakes it; purge removes what it names and nothing running', async () => {
    const box = sandbox()
    const svc1 = await startDaemon('serve', [], box.env)
    const q1 = client(box.env, svc1.multiaddr)
    let svc = svc1
    let worker: Awaited<ReturnType<typeof startDaemon>> | undefined
    try {
      assert.deepEqual((await rpc(box.env, ['queue-pause', '--task-types', 'echo'])).paused, { all: false, task_types: ['echo'] })
      await q1.close()
      await svc1.stop()
      svc = await startDaemon('serve', [], box.env)
      const status = await rpc(box.env, ['status', '--detail'])
      assert.deepEqual(status.queue.paused, { all: false, task_types: ['echo'] }, 'paused across a restart, in status')
      worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--task-types', 'echo,sleep', '--concurrency', '2'], box.env)
      const id = (await rpc(box.env, ['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', '{"x":1}'])).task_id
      await new Promise((resolve) => setTimeout(resolve, 1500))
      assert.equal((await rpc(box.env, ['task-get', '--task-id', id])).result.status, 'queued', 'submits are accepted, claims return nothing')
      assert.deepEqual((await rpc(box.env, ['queue-resume'])).paused, { all: false, task_types: [] })
      const resumedBy = Date.now() / 1000
      const t = (await rpc(box.env, ['task-wait', '--task-id', id, '--timeout', '10'])).result
      assert.equal(t.status, 'completed')
      const q = client(box.env, svc.multiaddr)
      const claimed = (await eventsOf(q, id)).find((e) => e.kind === 'claimed')
      await q.close()
      assert.ok(claimed !== undefined && claimed.at - resumedBy < 0.3, `claimed ${String(claimed?.at)} after the resume answered at ${resumedBy}: woken, not polled`)

      // Purge: one running sleep, queued echoes (paused), a completed echo.
      const running = (await rpc(box.env, ['task-submit', '--task-type', 'sleep', '--model-name', 'm', '--payload', '{"seconds":120}'])).task_id
      await until('the sleep to run', async () => (await rpc(box.env, ['task-get', '--task-id', running])).result.status === 'running', 10_000)
      await rpc(box.env, ['queue-pause', '--task-types', 'echo'])
      const queued = await Promise.all([1, 2, 3].map(async (i) => (await rpc(box.env, ['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', JSON.stringify({ i })])).task_id))
      const refused = await runRpc(['task-purge', '--status', 'queued,running'], box.env)
      assert.equal(refused.code, 1)
      assert.equal((refused.json as Obj).error, 'invalid_params')
      assert.equal((await rpc(box.env, ['task-purge', '--status', 'queued'])).purged, 3)
      for (const q of queued) assert.equal((await runRpc(['task-get', '--task-id', q], box.env)).code, 1, 'purged')
      assert.equal((await rpc(box.env, ['task-get', '--task-id', running])).result.status, 'running', 'running tasks are never purged')
      assert.equal((await rpc(box.env, ['task-purge', '--status', 'completed', '--task-types', 'echo'])).purged, 1)
      assert.equal((await runRpc(['task-get', '--task-id', id], box.env)).code, 1)
    } finally {
      await worker?.stop()
      await svc.stop()
      box.cleanup()
    }
  })

  it('a SIGTERMed worker\'s released tasks are claimed by another worker within 1 s', async () => {
    const box = sandbox()
    const svc = await startDaemon('serve', [], box.env)
    const q = client(box.env, svc.multiaddr)
    const stopping = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--task-types', 'sleep', '--concurrency', '4', '--worker-id', 'w-stopping'], box.env)
    let other: Awaited<ReturnType<typeof startDaemon>> | undefined
    try {
      const ids = await Promise.all([1, 2, 3, 4].map(async () => (await q.submit({ task_type: 'sleep', payload: { seconds: 60 } })).task_id))
      await until('all four to run on the first worker', async () => (await Promise.all(ids.map(async (id) => await q.get(id)))).every((t) => t?.status === 'running'), 20_000)
      other = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--task-types', 'sleep', '--concurrency', '4', '--worker-id', 'w-other'], box.env)
      // The other worker is a live scheduling candidate before the first one stops.
      await until('the second worker to be known', async () => {
        const s = await q.status(true)
        return (s.scheduler as Obj).known_workers.some((w: Obj) => w.worker_id === 'w-other')
      }, 20_000)
      assert.equal(await stopping.stop('SIGTERM'), 0)
      for (const id of ids) {
        let ev: TaskEvent[] = []
        await until(`task ${id} to be claimed again`, async () => {
          ev = await eventsOf(q, id)
          return ev.some((e) => e.kind === 'claimed' && e.worker_id === 'w-other')
        }, 10_000)
        const released = ev.find((e) => e.kind === 'released')
        const reclaimed = ev.find((e) => e.kind === 'claimed' && e.worker_id === 'w-other')
        assert.equal(released?.reason, 'worker_shutdown')
        const handover = (reclaimed?.at ?? Infinity) - (released?.at ?? 0)
        assert.ok(handover < 1, `task ${id} waited ${handover} s after its release`)
      }
    } finally {
      await q.close()
      await other?.stop()
      await svc.stop()
      box.cleanup()
    }
  })

  it('default worker ids are unique per process and stable across restarts; a remote worker keeps its libp2p identity', async () => {
    const box = sandbox()
    const svc = await startDaemon('serve', [], box.env)
    const start = async (): Promise<Awaited<ReturnType<typeof startDaemon>>> => await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--json'], box.env)
    const line = (d: Awaited<ReturnType<typeof startDaemon>>): Obj => JSON.parse(d.lines[0]) as Obj
    try {
      const a = await start()
      const b = await start()
      const [la, lb] = [line(a), line(b)]
      assert.notEqual(la.worker_id, lb.worker_id, 'two workers on one host are two owners')
      assert.notEqual(la.worker_peer_id, lb.worker_peer_id, 'and two libp2p identities')
      assert.notEqual(la.worker_peer_id, svc.peerId, 'not the service\'s identity')
      await a.stop()
      await b.stop()
      const again = line(await start().then(async (d) => { await d.stop(); return d }))
      assert.equal(again.worker_id, la.worker_id, 'the first slot keeps its id across restarts')
      assert.equal(again.worker_peer_id, la.worker_peer_id, 'and its identity')
    } finally {
      await svc.stop()
      box.cleanup()
    }
  })

  it('p2p-rpc reads JSON arguments from files (@file) and stdin (-), past the argument size limit', async () => {
    const box = sandbox()
    const svc = await startDaemon('serve', ['--enable-cache'], box.env)
    try {
      const big = { blob: 'x'.repeat(200 * 1024) }
      const file = join(box.dir, 'payload.json')
      writeFileSync(file, JSON.stringify(big))
      const id = (await rpc(box.env, ['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', `@${file}`])).task_id
      assert.equal((await rpc(box.env, ['task-get', '--task-id', id])).result.payload.blob.length, 200 * 1024)
      const viaStdin = await runWithStdin(['cache-set', '--key', 'k', '--value', '-'], JSON.stringify({ from: 'stdin' }), box.env)
      assert.equal(viaStdin.code, 0, viaStdin.stdout)
      assert.deepEqual((await rpc(box.env, ['cache-get', '--key', 'k'])).value, { from: 'stdin' })
      const missing = await runRpc(['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', '@/nonexistent.json'], box.env)
      assert.equal(missing.code, 2)
      assert.match(missing.stderr + missing.stdout, /--payload.*nonexistent\.json/)
    } finally {
      await svc.stop()
      box.cleanup()
    }
  })
})

async function runWithStdin (args: string[], input: string, env: Env): Promise<{ code: number | null, stdout: string }> {
  const proc = spawn(NODE, [RPC_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  proc.stdin.end(input)
  const code = await new Promise<number | null>((resolve) => proc.on('close', (c) => resolve(c)))
  return { code, stdout }
}
