/**
 * Rendezvous against py-libp2p's implementation (the only one reachable from this
 * project's registries: no go-libp2p rendezvous module is served by the Go module proxy).
 * py-libp2p 0.8.1 puts an unsigned `PeerInfo {id, addrs}` where the rendezvous spec has
 * `signedPeerRecord` (field 2 of Register), so registrations do not cross in either
 * direction. These tests keep that known difference visible: each asserts exactly how
 * the exchange fails, so a change on either side shows up here.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Sandbox } from '../helpers/procs.js'
import { interopPython, requirePeer } from './helpers/toolchains.js'
import { startPythonRendezvous } from './helpers/python-peer.js'
import type { PythonService } from './helpers/python-peer.js'

type Obj = Record<string, any>
const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
const NS = 'interop-rendezvous'
const E_INVALID_SIGNED_PEER_RECORD = 101

describe('rendezvous with py-libp2p 0.8.1 (known difference: unsigned PeerInfo vs signed peer record)', () => {
  let box: Sandbox
  let ours: Daemon | undefined
  let point: PythonService | undefined

  before(async () => {
    const py = interopPython().path
    if (py === null) return
    box = sandbox({ [`${P}RENDEZVOUS`]: '1', [`${P}RENDEZVOUS_NS`]: NS })
    ours = await startDaemon('serve', [], box.env)
    point = await startPythonRendezvous(py, ['point'])
  })
  after(async () => {
    await point?.stop()
    await ours?.stop()
    box?.cleanup()
  })

  it('our point answers a py-libp2p REGISTER with E_INVALID_SIGNED_PEER_RECORD', async (t) => {
    const found = interopPython()
    if (!requirePeer(t, 'py-libp2p', found) || ours === undefined) return
    const client = await startPythonRendezvous(found.path, ['register', '--point', ours.multiaddr, '--ns', NS])
    try {
      const r = JSON.parse(await client.line('register', 60_000)) as Obj
      assert.equal(r.ok, false, JSON.stringify(r))
      assert.equal(r.status, E_INVALID_SIGNED_PEER_RECORD, JSON.stringify(r))
    } finally {
      await client.stop()
    }
  })

  it('our client finds no usable registration at a py-libp2p point (its records are unsigned)', async (t) => {
    const found = interopPython()
    if (!requirePeer(t, 'py-libp2p', found) || point === undefined) return
    const client = await startPythonRendezvous(found.path, ['register', '--point', point.multiaddr, '--ns', NS])
    try {
      const reg = JSON.parse(await client.line('register', 60_000)) as Obj
      assert.equal(reg.ok, true, `py-libp2p registers at its own point: ${JSON.stringify(reg)}`)
      const r = await runRpc(['discover', '--timeout', '8'], { ...box.env, [`${P}ANNOUNCE_FILE`]: '0', [`${P}RENDEZVOUS_POINTS`]: point.multiaddr })
      const rv = (r.json?.attempts as Obj[] | undefined ?? []).filter((a) => a.method === 'rendezvous')
      assert.ok(rv.length > 0, r.stdout)
      assert.ok(rv.every((a) => a.ok === false), r.stdout)
      assert.ok(!rv.some((a) => a.peer_id === client.peerId && a.ok === true), r.stdout)
    } finally {
      await client.stop()
    }
  })
})
