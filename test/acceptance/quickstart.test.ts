/**
 * The seed's quickstart, for real: a `serve --worker` process and `p2p-rpc` runs that
 * find it through its announce file.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { SERVE_BIN, runNode, runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Sandbox } from '../helpers/procs.js'

type Obj = Record<string, any>

describe('quickstart against serve --worker --enable-tools --enable-cache', () => {
  let box: Sandbox
  let svc: Daemon

  before(async () => {
    box = sandbox()
    svc = await startDaemon('serve', ['--worker', '--enable-tools', '--enable-cache'], box.env)
  })

  after(async () => {
    await svc?.stop()
    box?.cleanup()
  })

  it('prints the three start lines and writes the announce file before them', () => {
    assert.equal(svc.lines[0], 'ipfs_accelerate_py task queue p2p service started')
    assert.match(svc.peerId, /^12D3KooW/)
    assert.ok(svc.multiaddr.endsWith(`/p2p/${svc.peerId}`))
    assert.ok(existsSync(box.announceFile))
  })

  it('discover shows an announce-file attempt with ok true', async () => {
    const r = await runRpc(['discover', '--pretty'], box.env)
    assert.equal(r.code, 0, r.stderr)
    const t = r.json as Obj
    assert.equal(t.ok, true)
    assert.equal(t.method, 'announce-file')
    const first = t.attempts[0]
    assert.equal(first.method, 'announce-file')
    assert.equal(first.ok, true)
    assert.equal(first.peer_id, svc.peerId)
    assert.equal(typeof first.elapsed_ms, 'number')
    assert.equal(t.result.peer_id, svc.peerId)
    assert.ok(r.stdout.includes('\n  "attempts"'), 'pretty output is indented with sorted keys')
  })

  it('status, call-tool and the cache commands succeed from another process', async () => {
    const status = await runRpc(['status'], box.env)
    assert.equal(status.code, 0)
    assert.equal(status.json?.ok, true)
    assert.equal(status.stdout.split('\n').filter(Boolean).length, 1, 'one compact JSON line')

    const tool = await runRpc(['call-tool', '--tool', 'get_server_status', '--pretty'], box.env)
    assert.equal(tool.code, 0, tool.stdout)
    assert.equal((tool.json as Obj).result.status, 'running')

    assert.equal((await runRpc(['cache-set', '--key', 'demo', '--value', '"hello"', '--pretty'], box.env)).code, 0)
    const get = await runRpc(['cache-get', '--key', 'demo', '--pretty'], box.env)
    assert.equal(get.code, 0)
    assert.equal((get.json as Obj).value, 'hello')
    assert.equal((get.json as Obj).hit, true)
    assert.equal((await runRpc(['cache-has', '--key', 'demo'], box.env)).json?.hit, true)
    assert.equal((await runRpc(['cache-delete', '--key', 'demo'], box.env)).json?.deleted, true)
    const miss = await runRpc(['cache-get', '--key', 'demo'], box.env)
    assert.equal(miss.json?.hit, false)
    assert.equal(miss.json?.value, null)
  })

  it('task-submit then task-wait returns the task completed by the embedded worker', async () => {
    const sub = await runRpc(['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', '{"x":42}'], box.env)
    assert.equal(sub.code, 0, sub.stdout + sub.stderr)
    const id = (sub.json as Obj).task_id as string
    assert.match(id, /^[0-9a-f]{32}$/)
    const wait = await runRpc(['task-wait', '--task-id', id, '--timeout', '30'], box.env)
    assert.equal(wait.code, 0, wait.stdout)
    const task = (wait.json as Obj).result
    assert.equal(task.status, 'completed')
    assert.equal(task.result.x, 42)
    assert.equal(task.attempt, 1)
    for (const status of ['completed', 'failed', 'queued', 'running']) {
      const list = await runRpc(['task-list', '--status', status], box.env)
      assert.equal(list.code, 0, list.stdout)
      const ids = ((list.json as Obj).tasks as Obj[]).map((t) => t.task_id)
      assert.equal(ids.includes(id), status === 'completed', `task-list --status ${status}`)
    }
  })

  it('reports remote refusals with exit 1 and typed errors', async () => {
    const unknown = await runRpc(['task-get', '--task-id', 'f'.repeat(32)], box.env)
    assert.equal(unknown.code, 1)
    assert.deepEqual(unknown.json, { ok: false, error: 'task_not_found', result: null })
    const badTool = await runRpc(['call-tool', '--tool', 'no_such_tool'], box.env)
    assert.equal(badTool.code, 1)
    assert.equal(badTool.json?.error, 'tool_not_found')
  })

  it('reports usage errors with exit 2 and still prints one JSON document', async () => {
    const r = await runRpc(['cache-set', '--key', 'k', '--value', '{bad json'], box.env)
    assert.equal(r.code, 2)
    assert.equal(r.json?.ok, false)
    assert.equal(r.json?.error, 'usage')
    const env = await runRpc(['status'], { ...box.env, IPFS_ACCELERATE_PY_TASK_P2P_RPC_RETRIES: 'many' })
    assert.equal(env.code, 2)
    assert.equal(env.json?.error, 'invalid_config')
    assert.match(String(env.json?.message), /IPFS_ACCELERATE_PY_TASK_P2P_RPC_RETRIES/)
  })
})

describe('a service without tools or cache', () => {
  it('answers tools_disabled and cache_disabled with exit 1', async () => {
    const box = sandbox()
    const svc = await startDaemon('serve', [], box.env)
    try {
      const tool = await runRpc(['call-tool', '--tool', 'get_server_status'], box.env)
      assert.equal(tool.code, 1)
      assert.equal(tool.json?.error, 'tools_disabled')
      const cache = await runRpc(['cache-get', '--key', 'x'], box.env)
      assert.equal(cache.code, 1)
      assert.equal(cache.json?.error, 'cache_disabled')
    } finally {
      await svc.stop()
      box.cleanup()
    }
  })

  it('a client with no service to find exits 3 with no_peer_found', async () => {
    const box = sandbox()
    try {
      const r = await runRpc(['status', '--timeout', '3'], box.env)
      assert.equal(r.code, 3)
      assert.equal(r.json?.ok, false)
      const d = await runRpc(['discover', '--timeout', '3'], box.env)
      assert.equal(d.code, 3)
      assert.equal(d.json?.ok, false)
      assert.equal((d.json as Obj).attempts[0].error, 'no_announce_multiaddr')
    } finally {
      box.cleanup()
    }
  })
})

describe('log settings', () => {
  it('an invalid LOG_LEVEL or LOG_FORMAT is one line naming the variable, exit 2, even for --help', async () => {
    const box = sandbox()
    try {
      for (const [variable, value] of [['TASKQUEUE_P2P_LOG_LEVEL', 'bogus'], ['IPFS_ACCELERATE_PY_TASK_P2P_LOG_LEVEL', 'loud'], ['IPFS_ACCELERATE_PY_TASK_P2P_LOG_FORMAT', 'xml']]) {
        const r = await runNode([SERVE_BIN, '--help'], { ...box.env, [variable]: value })
        assert.equal(r.code, 2, r.stderr)
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
        assert.match(r.stderr, new RegExp(`^config error: ${variable}="${value}"`))
      }
      const rpc = await runRpc(['status'], { ...box.env, IPFS_ACCELERATE_PY_TASK_P2P_LOG_LEVEL: 'bogus' })
      assert.equal(rpc.code, 2)
      assert.equal(rpc.json?.error, 'invalid_config')
    } finally {
      box.cleanup()
    }
  })
})
