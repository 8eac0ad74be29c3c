/**
 * Restarts and crashes of a real `serve`: the identity and every acknowledged write
 * survive, including a kill -9 right after the reply.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'

type Obj = Record<string, any>

describe('durability of a real service', () => {
  it('keeps its peer id and queued tasks across a graceful restart, and removes its announce file', async () => {
    const box = sandbox()
    try {
      const first = await startDaemon('serve', ['--enable-cache'], box.env)
      const ids: string[] = []
      for (let i = 0; i < 3; i++) {
        const r = await runRpc(['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', JSON.stringify({ i })], box.env)
        assert.equal(r.code, 0, r.stdout)
        ids.push((r.json as Obj).task_id)
      }
      assert.equal((await runRpc(['cache-set', '--key', 'k', '--value', '{"v":1}'], box.env)).code, 0)
      assert.equal(await first.stop('SIGTERM'), 0, 'graceful stop exits 0')
      assert.equal(existsSync(box.announceFile), false, 'announce file removed on clean shutdown')

      const second = await startDaemon('serve', ['--enable-cache'], box.env)
      try {
        assert.equal(second.peerId, first.peerId, 'identity persisted beside the queue')
        const list = await runRpc(['task-list', '--status', 'queued'], box.env)
        assert.equal(list.code, 0)
        const listed = ((list.json as Obj).tasks as Obj[]).map((t) => t.task_id).sort()
        assert.deepEqual(listed, [...ids].sort())
        const cached = await runRpc(['cache-get', '--key', 'k'], box.env)
        assert.deepEqual(cached.json?.value, { v: 1 })
      } finally {
        await second.stop()
      }
    } finally {
      box.cleanup()
    }
  })

  it('loses nothing acknowledged when killed with SIGKILL right after the reply', async () => {
    const box = sandbox()
    try {
      const svc = await startDaemon('serve', ['--enable-cache'], box.env)
      const sub = await runRpc(['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', '{"important":true}'], box.env)
      const set = await runRpc(['cache-set', '--key', 'after', '--value', '"acked"'], box.env)
      svc.proc.kill('SIGKILL')
      await svc.exited
      assert.equal(sub.code, 0)
      assert.equal(set.code, 0)

      const again = await startDaemon('serve', ['--enable-cache'], box.env)
      try {
        assert.equal(again.peerId, svc.peerId)
        const got = await runRpc(['task-get', '--task-id', (sub.json as Obj).task_id], box.env)
        assert.equal(got.code, 0, got.stdout)
        assert.equal((got.json as Obj).result.payload.important, true)
        assert.equal((await runRpc(['cache-get', '--key', 'after'], box.env)).json?.value, 'acked')
      } finally {
        await again.stop()
      }
    } finally {
      box.cleanup()
    }
  })

  it('refuses a corrupt identity file instead of silently replacing it', async () => {
    const box = sandbox()
    try {
      const { writeFileSync } = await import('node:fs')
      const identity = `${box.dir}/identity.key`
      writeFileSync(identity, 'not a key')
      await assert.rejects(startDaemon('serve', ['--identity', identity], box.env, 10_000), /exited with 2/)
    } finally {
      box.cleanup()
    }
  })
})
