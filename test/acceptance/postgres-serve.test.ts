/**
 * `serve` on PostgreSQL (TASK_QUEUE_URL): real service processes, a real worker and the
 * CLI, on a throwaway cluster (test/helpers/postgres.ts). Two coordinators share one
 * database: a task submitted and waited on at A is claimed and completed through B, and
 * A's `wait` returns (woken through LISTEN/NOTIFY). `serve --worker` runs its embedded
 * worker on the PostgreSQL store. Two coordinators with --enable-cache serve one cache
 * (in the database): what is set through one is read through the other. A local worker
 * (`worker --queue postgres://…`) claims straight from the database. A bad or
 * unreachable URL, or a bad pool size, stops start-up with one line naming it, exit 2.
 */
import { after, before, describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { runNode, runRpc, sandbox, SERVE_BIN, startDaemon, type Daemon, type Sandbox } from '../helpers/procs.js'
import { postgresBinDir, requirePostgres, startPostgres, type PgCluster } from '../helpers/postgres.js'
import { freePort } from '../helpers/event-follower.js'

type Obj = Record<string, any>
const URL_VAR = 'IPFS_ACCELERATE_PY_TASK_QUEUE_URL'

describe('serve on PostgreSQL', () => {
  let cluster: PgCluster | null = null
  const boxes: Sandbox[] = []
  const daemons: Daemon[] = []
  before(async () => { if (postgresBinDir() !== null) cluster = await startPostgres() })
  after(async () => {
    for (const d of daemons) await d.stop()
    for (const b of boxes) b.cleanup()
    cluster?.stop()
  })
  const gate = (t: TestContext): PgCluster | null => requirePostgres(t) ? cluster : null
  const box = (url: string): Sandbox => {
    const b = sandbox({ [URL_VAR]: url })
    boxes.push(b)
    return b
  }
  const daemon = async (command: 'serve' | 'worker', args: string[], env: Record<string, string>): Promise<Daemon> => {
    const d = await startDaemon(command, args, env, 30_000)
    daemons.push(d)
    return d
  }

  it('two coordinators on one database: a wait at A returns when a worker at B completes the task', async (t) => {
    const c = gate(t)
    if (c === null) return
    const url = c.createDatabase('two_coordinators')
    const a = box(url)
    const b = box(url)
    const svcA = await daemon('serve', [], a.env)
    const svcB = await daemon('serve', [], b.env)
    await daemon('worker', ['--multiaddr', svcB.multiaddr, '--worker-id', 'at-b'], b.env)
    const sub = await runRpc(['task-submit', '--multiaddr', svcA.multiaddr, '--task-type', 'echo', '--model-name', 'm', '--payload', '{"x":7}'], a.env)
    assert.equal(sub.code, 0, sub.stdout + sub.stderr)
    const id = String((sub.json as Obj).task_id)
    const wait = await runRpc(['task-wait', '--multiaddr', svcA.multiaddr, '--task-id', id, '--timeout', '30'], a.env)
    assert.equal(wait.code, 0, wait.stdout + wait.stderr)
    const task = (wait.json as Obj).result as Obj
    assert.equal(task.status, 'completed')
    assert.equal(task.assigned_worker, 'at-b')
    assert.equal((task.result as Obj).x, 7)
    const status = await runRpc(['status', '--multiaddr', svcB.multiaddr, '--detail'], b.env)
    assert.equal(status.code, 0, status.stdout)
    assert.equal((status.json as Obj).queue.backend, 'postgres')
    // One queue: B sees the task A accepted.
    const got = await runRpc(['task-get', '--multiaddr', svcB.multiaddr, '--task-id', id], b.env)
    assert.equal((got.json as Obj).result.status, 'completed')
  })

  it('two coordinators on one database serve one cache: set through A, read, replaced and deleted through B', async (t) => {
    const c = gate(t)
    if (c === null) return
    const url = c.createDatabase('shared_cache')
    const a = box(url)
    const b = box(url)
    const svcA = await daemon('serve', ['--enable-cache'], a.env)
    const svcB = await daemon('serve', ['--enable-cache'], b.env)
    const rpc = async (svc: Daemon, env: Record<string, string>, args: string[]): Promise<Obj> => {
      const r = await runRpc([...args, '--multiaddr', svc.multiaddr], env)
      assert.equal(r.code, 0, r.stdout + r.stderr)
      return r.json as Obj
    }
    const set = await rpc(svcA, a.env, ['cache-set', '--key', 'demo', '--value', '{"from":"a","n":[1,2]}', '--ttl', '600'])
    assert.equal(typeof set.expires_at, 'number')
    const got = await rpc(svcB, b.env, ['cache-get', '--key', 'demo'])
    assert.equal(got.hit, true, JSON.stringify(got))
    assert.deepEqual(got.value, { from: 'a', n: [1, 2] })
    assert.equal(got.expires_at, set.expires_at)
    await rpc(svcB, b.env, ['cache-set', '--key', 'demo', '--value', 'null'])
    const replaced = await rpc(svcA, a.env, ['cache-get', '--key', 'demo'])
    assert.deepEqual([replaced.hit, replaced.value, replaced.expires_at], [true, null, null], 'a stored null set through B is a hit at A')
    assert.equal((await rpc(svcB, b.env, ['cache-delete', '--key', 'demo'])).deleted, true)
    assert.equal((await rpc(svcA, a.env, ['cache-has', '--key', 'demo'])).hit, false)
    // The entries are in the database, not in either coordinator's state directory.
    assert.equal(c.psql('SELECT count(*) FROM tq_cache', 'shared_cache').trim(), '0')
    await rpc(svcA, a.env, ['cache-set', '--key', 'kept', '--value', '1'])
    assert.equal(c.psql('SELECT key FROM tq_cache', 'shared_cache').trim(), 'kept')
  })

  it('serve --worker runs its embedded worker on the PostgreSQL store', async (t) => {
    const c = gate(t)
    if (c === null) return
    const env = box(c.createDatabase('embedded_worker')).env
    const svc = await daemon('serve', ['--worker'], env)
    const done = await runRpc(['task-submit', '--multiaddr', svc.multiaddr, '--task-type', 'echo', '--model-name', 'm', '--payload', '{"y":1}'], env)
    assert.equal(done.code, 0, done.stdout)
    const wait = await runRpc(['task-wait', '--multiaddr', svc.multiaddr, '--task-id', String((done.json as Obj).task_id), '--timeout', '30'], env)
    assert.equal(wait.code, 0, wait.stdout + wait.stderr)
    assert.equal((wait.json as Obj).result.status, 'completed')
  })

  it('worker --queue <postgres url> claims straight from the database, woken by a submit at a coordinator', async (t) => {
    const c = gate(t)
    if (c === null) return
    const url = c.createDatabase('local_worker')
    const env = box(url).env
    const svc = await daemon('serve', [], env)
    // A worker of its own box: nothing of the coordinator's state directory is shared.
    const w = box(url)
    const worker = await daemon('worker', ['--queue', url, '--worker-id', 'on-db', '--queue-pool-size', '2', '--json'], w.env)
    assert.equal(JSON.parse(worker.lines[0]).mode, 'local')
    // Submitted after the worker is parked in its claim: only the database's notification
    // (or its 1 s idle re-claim) can bring the task to it.
    const sub = await runRpc(['task-submit', '--multiaddr', svc.multiaddr, '--task-type', 'echo', '--model-name', 'm', '--payload', '{"z":3}'], env)
    assert.equal(sub.code, 0, sub.stdout + sub.stderr)
    const wait = await runRpc(['task-wait', '--multiaddr', svc.multiaddr, '--task-id', String((sub.json as Obj).task_id), '--timeout', '30'], env)
    assert.equal(wait.code, 0, wait.stdout + wait.stderr)
    const task = (wait.json as Obj).result as Obj
    assert.deepEqual([task.status, task.assigned_worker, (task.result as Obj).z], ['completed', 'on-db', 3])
    assert.equal(await worker.stop(), 0, worker.stderr())
  })

  it('worker --queue with a bad or unreachable PostgreSQL URL, a bad pool size: one line, exit 2', async (t) => {
    if (gate(t) === null) return
    const env = box('').env
    const port = await freePort()
    const down = await runNode([SERVE_BIN, 'worker', '--queue', `postgres://u:hunter2@127.0.0.1:${port}/q`], env, 30_000)
    assert.equal(down.code, 2, down.stderr)
    assert.match(down.stderr, /PostgreSQL queue \(--queue\)/)
    assert.doesNotMatch(down.stderr, /hunter2/)
    assert.equal(down.stderr.trim().split('\n').length, 1, down.stderr)
    const noHost = await runNode([SERVE_BIN, 'worker', '--queue', 'postgresql:///q'], env, 30_000)
    assert.equal(noHost.code, 2, noHost.stderr)
    assert.match(noHost.stderr.split('\n')[0], /--queue postgresql:\/\/\/q is not a PostgreSQL URL: no host/)
    for (const bad of ['0', '1001', 'ten']) {
      const r = await runNode([SERVE_BIN, 'serve'], { ...box(`postgres://127.0.0.1:${port}/q`).env, IPFS_ACCELERATE_PY_TASK_QUEUE_POOL_SIZE: bad }, 30_000)
      assert.equal(r.code, 2, r.stderr)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.match(r.stderr, /IPFS_ACCELERATE_PY_TASK_QUEUE_POOL_SIZE/)
    }
  })

  it('a bad or unreachable URL: one line naming the variable, exit 2', async (t) => {
    if (gate(t) === null) return
    const bad = await runNode([SERVE_BIN, 'serve'], box('mysql://u:hunter2@127.0.0.1/q').env, 30_000)
    assert.equal(bad.code, 2, bad.stderr)
    assert.match(bad.stderr, new RegExp(URL_VAR))
    assert.doesNotMatch(bad.stderr, /hunter2/)
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr)
    const port = await freePort()
    const down = await runNode([SERVE_BIN, 'serve'], box(`postgres://u:hunter2@127.0.0.1:${port}/q`).env, 30_000)
    assert.equal(down.code, 2, down.stderr)
    assert.match(down.stderr, new RegExp(URL_VAR))
    assert.doesNotMatch(down.stderr, /hunter2/)
    assert.equal(down.stderr.trim().split('\n').length, 1, down.stderr)
  })
})
