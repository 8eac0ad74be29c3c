/**
 * Start-up failures and refusals as a new user meets them (issue 22): one line on stderr,
 * the exit code of cli.md §2 (2 configuration and paths, 3 port in use), no stack trace
 * unless the log level is debug; a second `serve` on the same state is refused and the
 * first stays findable; a wrong token is `unauthorized` through every path.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { SERVE_BIN, runNode, runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Env, Sandbox } from '../helpers/procs.js'

const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'

/** The failure as a user sees it: exit code, and stderr as exactly one line without a stack. */
async function serveFails (env: Env, args: string[]): Promise<{ code: number | null, line: string }> {
  const r = await runNode([SERVE_BIN, 'serve', ...args], env, 30_000)
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '')
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`)
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace')
  assert.equal(r.stdout, '', 'no start lines')
  return { code: r.code, line: lines[0] }
}

describe('start-up failures: one line, the right exit code', () => {
  let sb: Sandbox
  before(() => { sb = sandbox() })
  after(() => sb.cleanup())

  it('a port in use: exit 3, naming the port and --listen-port', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as AddressInfo).port
    try {
      const r = await serveFails(sb.env, ['--listen-port', String(port)])
      assert.equal(r.code, 3)
      assert.match(r.line, new RegExp(`^taskqueue-p2p: port ${port} is already in use .*--listen-port`))
      assert.doesNotMatch(r.line, /faultTolerance/)
    } finally {
      blocker.close()
    }
  })

  it('an HTTP port in use: exit 3, naming the port and HTTP_PORT; nothing left behind', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as AddressInfo).port
    try {
      const r = await serveFails({ ...sb.env, [`${P}HTTP_PORT`]: String(port) }, [])
      assert.equal(r.code, 3)
      assert.match(r.line, new RegExp(`^taskqueue-p2p: HTTP port ${port} is already in use on 127\\.0\\.0\\.1: choose another with HTTP_PORT`))
      // The refused start released its state: the next start on the same home works.
      assert.equal(existsSync(`${sb.queuePath}.lock`), false, 'the state lock was released')
      assert.equal(existsSync(sb.announceFile), false, 'no announce file names a service that is not running')
    } finally {
      blocker.close()
    }
  })

  it('a worker with no handler for any of its --task-types: exit 2, naming them', async () => {
    const r = await runNode([SERVE_BIN, 'worker', '--queue', sb.queuePath, '--task-types', 'nobody-handles-this'], sb.env, 30_000)
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^taskqueue-p2p: no handler for any of the task types \["nobody-handles-this"\]$/m)
    assert.doesNotMatch(r.stderr, /internal error|^\s+at /m)
  })

  it('a queue path under a file: exit 2', async () => {
    writeFileSync(join(sb.dir, 'plain-file'), 'x')
    const r = await serveFails(sb.env, ['--queue', join(sb.dir, 'plain-file', 'q.sqlite3')])
    assert.equal(r.code, 2)
    assert.match(r.line, /^taskqueue-p2p: queue file \(TASK_QUEUE_PATH\) .*plain-file\/q\.sqlite3: a parent of it is a file, not a directory$/)
  })

  it('a queue path that is a directory: exit 2', async () => {
    mkdirSync(join(sb.dir, 'a-dir'))
    const r = await serveFails(sb.env, ['--queue', join(sb.dir, 'a-dir')])
    assert.equal(r.code, 2)
    assert.match(r.line, /^taskqueue-p2p: queue file \(TASK_QUEUE_PATH\) .*a-dir: exists but is not a regular file$/)
  })

  it('a queue file that is not SQLite: exit 2, and the file is left as it was', async () => {
    const f = join(sb.dir, 'notes.txt')
    writeFileSync(f, 'my notes, not a database\n')
    const r = await serveFails(sb.env, ['--queue', f])
    assert.equal(r.code, 2)
    assert.match(r.line, /^taskqueue-p2p: queue file \(TASK_QUEUE_PATH\) .*notes\.txt: exists but is not a SQLite database$/)
    assert.equal(readFileSync(f, 'utf8'), 'my notes, not a database\n')
  })

  it('an unwritable directory: exit 2', async () => {
    // /sys refuses new files even to root (CI runs as root, where chmod would not stop us).
    const r = await serveFails(sb.env, ['--queue', '/sys/tq-queue.sqlite3'])
    assert.equal(r.code, 2)
    assert.match(r.line, /^taskqueue-p2p: queue file \(TASK_QUEUE_PATH\) \/sys\/tq-queue\.sqlite3: .*permission denied|not permitted/)
  })

  it('an announce file under a file: exit 2', async () => {
    writeFileSync(join(sb.dir, 'file2'), 'x')
    const r = await serveFails(sb.env, ['--queue', join(sb.dir, 'q-announce.sqlite3'), '--announce-file', join(sb.dir, 'file2', 'a.json')])
    assert.equal(r.code, 2)
    assert.match(r.line, /^taskqueue-p2p: announce file \(ANNOUNCE_FILE\) .*file2\/a\.json: a parent of it is a file, not a directory$/)
  })

  it('an invalid environment value: exit 2, naming the variable', async () => {
    const r = await serveFails({ ...sb.env, [`${P}MDNS`]: 'maybe' }, [])
    assert.equal(r.code, 2)
    assert.match(r.line, new RegExp(`${P}MDNS`))
  })

  it('the stack is there with TASKQUEUE_P2P_LOG_LEVEL=debug', async () => {
    const r = await runNode([SERVE_BIN, 'serve', '--queue', join(sb.dir, 'notes.txt')], { ...sb.env, TASKQUEUE_P2P_LOG_LEVEL: 'debug' }, 30_000)
    assert.equal(r.code, 2)
    assert.match(r.stderr, /\s+at /, 'debug shows where it failed')
  })
})

describe('one service per state directory', () => {
  let sb: Sandbox
  let first: Daemon
  before(async () => {
    sb = sandbox()
    first = await startDaemon('serve', [], sb.env)
  })
  after(async () => {
    await first?.stop()
    sb.cleanup()
  })

  it('refuses a second serve on the same home, naming the first one\'s pid and address; the first stays discoverable', async () => {
    const announced = (): unknown => {
      const a = JSON.parse(readFileSync(sb.announceFile, 'utf8')) as Record<string, unknown>
      return [a.peer_id, a.multiaddr, a.pid]
    }
    const announceBefore = announced()
    assert.deepEqual(announceBefore, [first.peerId, first.multiaddr, first.proc.pid])
    const r = await serveFails(sb.env, [])
    assert.equal(r.code, 2)
    assert.match(r.line, new RegExp(`another service \\(pid ${String(first.proc.pid)} at ${first.multiaddr}\\) is running on this queue file`))
    assert.deepEqual(announced(), announceBefore, 'announce file still the first one\'s')
    const status = await runRpc(['status'], sb.env)
    assert.equal(status.code, 0, status.stdout + status.stderr)
    assert.equal((status.json?.server as { peer_id?: string } | undefined)?.peer_id ?? status.json?.peer_id, first.peerId)
  })

  it('refuses a second serve with the same identity and its own queue', async () => {
    const r = await serveFails(sb.env, ['--queue', join(sb.dir, 'other.sqlite3'), '--identity', join(sb.dir, 'identity.key'), '--announce-file', '0'])
    assert.equal(r.code, 2)
    assert.match(r.line, /is running on this identity file \(IDENTITY_FILE\)/)
    assert.equal(existsSync(sb.announceFile), true)
  })

  it('takes over the lock of a service that died without cleaning up', async () => {
    const other = sandbox()
    try {
      const victim = await startDaemon('serve', [], other.env)
      await victim.stop('SIGKILL')
      assert.equal(existsSync(`${other.queuePath}.lock`), true, 'a SIGKILLed service leaves its lock')
      const again = await startDaemon('serve', [], other.env)
      assert.equal(again.peerId, victim.peerId, 'same identity')
      assert.equal(await again.stop(), 0)
      assert.equal(existsSync(`${other.queuePath}.lock`), false, 'released on exit')
    } finally {
      other.cleanup()
    }
  })
})

describe('a wrong token is unauthorized, through discovery too', () => {
  let sb: Sandbox
  let svc: Daemon
  before(async () => {
    sb = sandbox({ [`${P}TOKEN`]: 'right-token' })
    svc = await startDaemon('serve', [], sb.env)
  })
  after(async () => {
    await svc?.stop()
    sb.cleanup()
  })

  for (const token of ['wrong-token', '']) {
    const label = token === '' ? 'no token' : 'a wrong token'
    it(`${label}: every p2p-rpc command says unauthorized, exit 1`, async () => {
      const env = { ...sb.env, [`${P}TOKEN`]: token }
      for (const args of [['status'], ['task-list'], ['task-submit', '--task-type', 'echo', '--model-name', 'm'], ['status', '--multiaddr', svc.multiaddr]]) {
        const r = await runRpc(args, env)
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`)
        assert.equal(r.json?.error, 'unauthorized', args.join(' '))
      }
      const d = await runRpc(['discover'], env)
      assert.equal(d.code, 1, d.stdout)
      assert.equal(d.json?.error, 'unauthorized')
      assert.match(String(d.json?.hint), /TOKEN/)
    })
  }

  it('a worker with a wrong token stops at once with one line, exit 2', async () => {
    const r = await runNode([SERVE_BIN, 'worker'], { ...sb.env, [`${P}TOKEN`]: 'wrong-token' }, 30_000)
    assert.equal(r.code, 2, r.stderr)
    const lines = r.stderr.split('\n').filter((l) => l !== '')
    assert.equal(lines.length, 1, r.stderr)
    assert.match(lines[0], /unauthorized.*refused our token/)
  })

  it('the right token works', async () => {
    const r = await runRpc(['status'], sb.env)
    assert.equal(r.code, 0, r.stdout)
  })
})

describe('no_peer_found says why and what to do', () => {
  it('a stale announce file: each mechanism\'s reason and the hint naming the file', async () => {
    const sb = sandbox()
    try {
      const svc = await startDaemon('serve', [], sb.env)
      const announce = readFileSync(sb.announceFile, 'utf8')
      await svc.stop('SIGKILL')
      writeFileSync(sb.announceFile, announce) // as a crashed service leaves it
      const r = await runRpc(['status', '--timeout', '5'], sb.env)
      assert.equal(r.code, 3)
      assert.equal(r.json?.error, 'no_peer_found')
      const reasons = r.json?.reasons as Record<string, string>
      assert.equal(reasons['announce-file'], 'dial_failed')
      assert.deepEqual(Object.keys(reasons), ['announce-file', 'bootstrap', 'rendezvous', 'dht', 'mdns'])
      assert.match(String(r.json?.hint), /stale/)
      assert.match(String(r.json?.message), /announce-file: dial_failed.*hint: /)
    } finally {
      sb.cleanup()
    }
  })
})
