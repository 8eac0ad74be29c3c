/**
 * Real worker processes against a real service: a killed worker's task comes back
 * once its lease lapses; a handler longer than the lease keeps it and runs once; a
 * SIGTERM releases what the worker holds.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Env } from '../helpers/procs.js'

type Obj = Record<string, any>

async function task (id: string, env: Env): Promise<Obj> {
  const r = await runRpc(['task-get', '--task-id', id], env)
  assert.equal(r.code, 0, r.stdout)
  return (r.json as Obj).result
}

async function until (what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await fn()) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}`)
}

async function submit (env: Env, type: string, payload: Obj): Promise<string> {
  const r = await runRpc(['task-submit', '--task-type', type, '--model-name', 'm', '--payload', JSON.stringify(payload)], env)
  assert.equal(r.code, 0, r.stdout)
  return (r.json as Obj).task_id
}

describe('workers against a real service', () => {
  it('a task held by a SIGKILLed worker becomes claimable again once its lease lapses', async () => {
    const box = sandbox()
    const svc = await startDaemon('serve', [], box.env)
    try {
      const id = await submit(box.env, 'sleep', { seconds: 120 })
      const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--lease-s', '10', '--worker-id', 'doomed'], box.env)
      await until('the task to run', async () => (await task(id, box.env)).status === 'running', 20_000)
      worker.proc.kill('SIGKILL')
      await worker.exited
      await until('the lease to lapse', async () => (await task(id, box.env)).status === 'queued', 30_000)
      const claim = await runRpc(['task-claim', '--worker-id', 'rescuer', '--supported-task-types', 'sleep'], box.env)
      assert.equal(claim.code, 0, claim.stdout)
      assert.equal((claim.json as Obj).result.task_id, id)
      assert.equal((claim.json as Obj).result.attempt, 2)
    } finally {
      await svc.stop()
      box.cleanup()
    }
  })

  it('a handler that runs longer than the lease keeps it and is executed once', async () => {
    const box = sandbox()
    const log = join(box.dir, 'runs.log')
    const mod = join(box.dir, 'slow-handlers.mjs')
    writeFileSync(mod, `import { appendFileSync } from 'node:fs'
export default {
  async slow (task, ctx) {
    appendFileSync(${JSON.stringify(log)}, task.task_id + '\\n')
    await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, 24000)
      ctx.signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')) })
    })
    return { done: true }
  }
}
`)
    const svc = await startDaemon('serve', [], box.env)
    const workers = await Promise.all(['w1', 'w2'].map((w) => startDaemon('worker', ['--multiaddr', svc.multiaddr, '--lease-s', '10', '--worker-id', w, '--handlers', mod, '--task-types', 'slow'], box.env)))
    try {
      const id = await submit(box.env, 'slow', {})
      const wait = await runRpc(['task-wait', '--task-id', id, '--timeout', '60'], box.env, 90_000)
      assert.equal(wait.code, 0, wait.stdout)
      const t = (wait.json as Obj).result
      assert.equal(t.status, 'completed')
      assert.equal(t.result.done, true)
      assert.equal(t.attempt, 1)
      assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), [id], 'executed exactly once')
    } finally {
      for (const w of workers) await w.stop()
      await svc.stop()
      box.cleanup()
    }
  })

  it('SIGTERM stops claiming and releases an unfinished task with its attempt given back', async () => {
    const box = sandbox()
    const svc = await startDaemon('serve', [], box.env)
    try {
      const id = await submit(box.env, 'sleep', { seconds: 120 })
      const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--lease-s', '30'], box.env)
      await until('the task to run', async () => (await task(id, box.env)).status === 'running', 20_000)
      assert.equal(await worker.stop('SIGTERM'), 0)
      const t = await task(id, box.env)
      assert.equal(t.status, 'queued')
      assert.equal(t.attempt, 0)
      assert.equal(t.assigned_worker, null)
    } finally {
      await svc.stop()
      box.cleanup()
    }
  })

  it('a local worker shares the SQLite file of a serve on the same host', async () => {
    const box = sandbox()
    const svc = await startDaemon('serve', [], box.env)
    const worker = await startDaemon('worker', ['--queue', box.queuePath, '--concurrency', '4'], box.env)
    try {
      const ids = await Promise.all([1, 2, 3].map(async (i) => await submit(box.env, 'echo', { i })))
      for (const id of ids) {
        const r = await runRpc(['task-wait', '--task-id', id, '--timeout', '30'], box.env)
        assert.equal(r.code, 0, r.stdout)
        assert.equal((r.json as Obj).result.status, 'completed')
      }
    } finally {
      await worker.stop()
      await svc.stop()
      box.cleanup()
    }
  })
})
