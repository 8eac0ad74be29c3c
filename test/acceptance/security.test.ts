/**
 * Secure by default (issue 21): a service listening beyond loopback with no TOKEN makes
 * one, keeps it 0600 beside its identity and names it in the announce file; local
 * clients find it with no configuration, remote ones need it; `TOKEN=` (set empty)
 * restores the open mode. Real `serve` and `p2p-rpc` processes over TCP loopback.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { RawClient } from '../helpers/raw-client.js'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Sandbox } from '../helpers/procs.js'

const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
type Obj = Record<string, any>

/** Beyond loopback, but announcing (and dialled at) 127.0.0.1 only. */
const WILDCARD = { [`${P}LISTEN_HOST`]: '0.0.0.0', [`${P}PUBLIC_IP`]: '127.0.0.1' }

describe('secure default: a generated token when listening beyond loopback', () => {
  let box: Sandbox
  let svc: Daemon
  let raw: RawClient

  before(async () => {
    box = sandbox(WILDCARD)
    svc = await startDaemon('serve', ['--enable-tools', '--enable-cache'], box.env)
    raw = await RawClient.create(svc.multiaddr)
  })

  after(async () => {
    await raw?.close()
    await svc?.stop()
    box?.cleanup()
  })

  it('stores the token 0600 beside the identity and names it in the announce file', () => {
    const tokenFile = join(box.dir, 'service_token')
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600)
    assert.match(readFileSync(tokenFile, 'utf8').trim(), /^[A-Za-z0-9_-]{43}$/)
    const announce = JSON.parse(readFileSync(box.announceFile, 'utf8')) as Obj
    assert.equal(announce.token_file, tokenFile)
    assert.match(svc.stderr(), /token required/)
    assert.doesNotMatch(svc.stderr(), new RegExp(readFileSync(tokenFile, 'utf8').trim()), 'the token itself is never printed')
  })

  it('serves a local p2p-rpc with no configuration (announce file, explicit multiaddr, direct tool call)', async () => {
    const status = await runRpc(['status'], box.env)
    assert.equal(status.code, 0, status.stdout + status.stderr)
    const explicit = await runRpc(['status', '--multiaddr', svc.multiaddr], box.env)
    assert.equal(explicit.code, 0, explicit.stdout + explicit.stderr)
    const tool = await runRpc(['call-tool', '--tool', 'get_server_status'], box.env)
    assert.equal(tool.code, 0, tool.stdout + tool.stderr)
    // Without the announce file, the token beside the identity its settings name is found too.
    const noAnnounce = await runRpc(['status', '--multiaddr', svc.multiaddr], { ...box.env, [`${P}ANNOUNCE_FILE`]: '0' })
    assert.equal(noAnnounce.code, 0, noAnnounce.stdout + noAnnounce.stderr)
  })

  it('refuses a remote client without the token, and serves it with the token', async () => {
    const reply = await raw.originalCall({ op: 'status' }) as Obj
    assert.equal(reply.ok, false)
    assert.equal(reply.error, 'unauthorized')
    // Another user's view: its own state dir, no announce file.
    const other = sandbox({ [`${P}ANNOUNCE_FILE`]: '0' })
    try {
      const refused = await runRpc(['status', '--multiaddr', svc.multiaddr], other.env)
      assert.equal(refused.code, 1, refused.stdout + refused.stderr)
      assert.equal(refused.json?.error, 'unauthorized')
      const token = readFileSync(join(box.dir, 'service_token'), 'utf8').trim()
      const served = await runRpc(['status', '--multiaddr', svc.multiaddr], { ...other.env, [`${P}TOKEN`]: token })
      assert.equal(served.code, 0, served.stdout + served.stderr)
    } finally {
      other.cleanup()
    }
  })

  it('keeps the same token across restarts', async () => {
    const before = readFileSync(join(box.dir, 'service_token'), 'utf8')
    await svc.stop()
    svc = await startDaemon('serve', ['--enable-tools', '--enable-cache'], box.env)
    assert.equal(readFileSync(join(box.dir, 'service_token'), 'utf8'), before)
    assert.equal((await runRpc(['status'], box.env)).code, 0)
  })
})

describe('TOKEN set empty: the open mode, with its warning', () => {
  it('serves a client without a token and generates none', async () => {
    const box = sandbox({ ...WILDCARD, [`${P}TOKEN`]: '' })
    const svc = await startDaemon('serve', [], box.env)
    const raw = await RawClient.create(svc.multiaddr)
    try {
      assert.equal((await raw.originalCall({ op: 'status' }) as Obj).ok, true)
      assert.throws(() => statSync(join(box.dir, 'service_token')))
      assert.match(svc.stderr(), /listening beyond loopback/)
    } finally {
      await raw.close()
      await svc.stop()
      box.cleanup()
    }
  })
})
