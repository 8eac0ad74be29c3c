/**
 * Interop with go-libp2p, the reference implementation (pinned in test/interop/go/go.mod):
 * Kademlia provider records on a private protocol id and circuit relay v2, each in both
 * directions, between real processes on loopback.
 */
import { after, describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { sandbox, startDaemon } from '../helpers/procs.js'
import { interopGoPeer } from './helpers/toolchains.js'
import { startGoPeer } from './helpers/go-peer.js'
import { describeKadProviders, peerBinary, reservationOn, reserveOnTheirRelay } from './helpers/reference-cases.js'
import type { ReferencePeer } from './helpers/reference-cases.js'

type Obj = Record<string, any>
const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'

const GO: ReferencePeer = { impl: 'go-libp2p', name: 'go-peer', tag: 'go', find: interopGoPeer }

function goPeer (t: TestContext): string | null {
  return peerBinary(t, GO)
}

describeKadProviders(GO)

describe('go-libp2p circuit relay v2', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  it('our service reserves on their relay and our client reaches it through the circuit', async (t) => {
    await reserveOnTheirRelay(t, GO, cleanups)
  })

  it('their node reserves on our relay, and reaches our service through it (limited connection)', async (t) => {
    const bin = goPeer(t)
    if (bin === null) return
    const relayBox = sandbox()
    cleanups.push(relayBox.cleanup)
    const relay = await startDaemon('relay', [], relayBox.env)
    cleanups.push(async () => { await relay.stop() })

    const reserver = await startGoPeer(bin, 'reserve', ['--relay', relay.multiaddr], { waitForListen: false })
    cleanups.push(async () => await reserver.stop())
    const reservation = await reserver.value('reservation') as Obj
    assert.equal(reservation.ok, true, JSON.stringify(reservation) + reserver.stderr())
    assert.ok(reservation.expires_in_s > 60, JSON.stringify(reservation))

    const box = sandbox({ [`${P}RELAY`]: '1', [`${P}RELAY_PEERS`]: relay.multiaddr })
    cleanups.push(box.cleanup)
    const svc = await startDaemon('serve', [], box.env)
    cleanups.push(async () => { await svc.stop() })
    await reservationOn(box, svc, relay.peerId)
    const caller = await startGoPeer(bin, 'mcp-status', ['--addr', `${relay.multiaddr}/p2p-circuit/p2p/${svc.peerId}`], { waitForListen: false })
    cleanups.push(async () => await caller.stop())
    const reply = await caller.value('reply') as Obj
    assert.equal(reply.id, 1)
    assert.equal(reply.result.content.ok, true, JSON.stringify(reply))
    assert.equal(reply.result.content.peer_id, svc.peerId)
    assert.equal(await caller.value('limited'), true, 'the call went through the relay, not a direct connection')
  })
})
