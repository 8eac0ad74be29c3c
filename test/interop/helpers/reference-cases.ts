/**
 * Test cases that hold for every reference libp2p implementation with a compiled test peer
 * speaking the go-peer line protocol (go-peer and rust-peer share their role names and
 * output lines): Kademlia provider records on a private protocol id and circuit relay v2,
 * both directions. go.test.ts and rust.test.ts run them.
 */
import { after, before, describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { namespaceCid } from '../../../src/discovery/dht.js'
import { runRpc, sandbox, startDaemon } from '../../helpers/procs.js'
import type { Daemon, Sandbox } from '../../helpers/procs.js'
import { interopGoPeer, interopRustPeer, requirePeer } from './toolchains.js'
import type { Found } from './toolchains.js'
import { startGoPeer } from './go-peer.js'
import type { GoPeer } from './go-peer.js'

type Obj = Record<string, any>
const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
export const PRIVATE_DHT = '/taskqueue/kad/1.0.0'

/** A reference implementation's test peer: its name in messages and how to find its binary. */
export interface ReferencePeer {
  /** e.g. `go-libp2p`: test titles and skip banners. */
  impl: string
  /** The binary's name in process messages (`go-peer`, `rust-peer`). */
  name: string
  /** Short tag for namespaces, so two implementations never share one. */
  tag: string
  find: () => Found
  /** Whether its `reserve` role reports the reservation's expiry (rust-libp2p's client event has none). */
  reportsReservationExpiry: boolean
}

export const GO_PEER: ReferencePeer = { impl: 'go-libp2p', name: 'go-peer', tag: 'go', find: interopGoPeer, reportsReservationExpiry: true }
export const RUST_PEER: ReferencePeer = { impl: 'rust-libp2p', name: 'rust-peer', tag: 'rust', find: interopRustPeer, reportsReservationExpiry: false }

export function peerBinary (t: TestContext, peer: ReferencePeer): string | null {
  const found = peer.find()
  return requirePeer(t, peer.impl, found) ? found.path : null
}

export async function until<T> (what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== null) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** The relay reservation our service reports in status.nat (discovery.md §9.3). */
export async function reservationOn (box: Sandbox, svc: Daemon, relayPeerId: string): Promise<Obj> {
  return await until(`a reservation of ${svc.peerId} on ${relayPeerId}`, 60_000, async () => {
    const r = await runRpc(['status', '--multiaddr', svc.multiaddr], { ...box.env, [`${P}ANNOUNCE_FILE`]: '0' })
    const rs = ((r.json?.nat as Obj | undefined)?.relay?.reservations ?? []) as Obj[]
    return rs.find((x) => x.relay_peer_id === relayPeerId) ?? null
  })
}

/** Provider records for CIDv1(raw, sha2-256(ns)) on PRIVATE_DHT, ours → theirs and theirs → ours. */
export function describeKadProviders (peer: ReferencePeer): void {
  describe(`${peer.impl} kad-dht: provider records on ${PRIVATE_DHT}`, () => {
    const OUR_NS = `interop-${peer.tag}-ours`
    const THEIR_NS = `interop-${peer.tag}-theirs`
    let box: Sandbox
    let ours: Daemon | undefined
    let theirs: GoPeer | undefined

    before(async () => {
      const bin = peer.find().path
      if (bin === null) return
      box = sandbox({ [`${P}DHT`]: '1', [`${P}DHT_PROTOCOL`]: PRIVATE_DHT, [`${P}RENDEZVOUS_NS`]: OUR_NS })
      ours = await startDaemon('serve', [], box.env)
      // Their node joins through ours, provides its namespace and looks ours up.
      theirs = await startGoPeer(bin, 'dht', ['--protocol-prefix', '/taskqueue', '--bootstrap', ours.multiaddr, '--provide', THEIR_NS, '--find', OUR_NS], { name: peer.name })
    })
    after(async () => {
      await theirs?.stop()
      await ours?.stop()
      box?.cleanup()
    })

    it('theirs finds the provider record our service put, under the same CID', async (t) => {
      if (peerBinary(t, peer) === null || theirs === undefined || ours === undefined) return
      const provider = await theirs.value('provider', 90_000) as Obj
      assert.equal(provider.error, undefined, JSON.stringify(provider) + theirs.stderr())
      assert.equal(provider.peer_id, ours.peerId)
      assert.equal(provider.cid, (await namespaceCid(OUR_NS)).toString())
    })

    it('ours finds the provider record theirs put (and does not mistake a non-TaskQueue provider for a service)', async (t) => {
      if (peerBinary(t, peer) === null || theirs === undefined || ours === undefined) return
      const provided = await theirs.value('provided', 90_000) as Obj
      assert.equal(provided.ok, true, JSON.stringify(provided) + theirs.stderr())
      assert.equal(provided.cid, (await namespaceCid(THEIR_NS)).toString())
      const r = await runRpc(['discover', '--timeout', '20'], {
        ...box.env,
        [`${P}ANNOUNCE_FILE`]: '0',
        [`${P}RENDEZVOUS_NS`]: THEIR_NS,
        [`${P}BOOTSTRAP_PEERS`]: ours.multiaddr,
        // Our node is only the routing seed here, not a TaskQueue candidate.
        [`${P}BOOTSTRAP_DIAL`]: '0'
      })
      const dht = (r.json?.attempts as Obj[] | undefined ?? []).filter((a) => a.method === 'dht')
      const found = dht.find((a) => a.peer_id === theirs!.peerId)
      assert.ok(found !== undefined, `no DHT attempt for ${theirs.peerId}: ${r.stdout}`)
      assert.equal(found.source, 'providers')
      assert.equal(found.error, 'protocol_not_supported')
    })
  })
}

/** Circuit relay v2 both ways: our service on their relay (role `relay`), their node on ours (roles `reserve`, `mcp-status`). */
export function describeCircuitRelay (peer: ReferencePeer): void {
  describe(`${peer.impl} circuit relay v2`, () => {
    const cleanups: Array<() => Promise<void> | void> = []
    after(async () => {
      for (const c of cleanups.reverse()) await c()
    })

    it('our service reserves on their relay and our client reaches it through the circuit', async (t) => {
      const bin = peerBinary(t, peer)
      if (bin === null) return
      const relay = await startGoPeer(bin, 'relay', [], { name: peer.name })
      cleanups.push(async () => await relay.stop())
      const box = sandbox({ [`${P}RELAY`]: '1', [`${P}RELAY_PEERS`]: relay.multiaddr })
      cleanups.push(box.cleanup)
      const svc = await startDaemon('serve', [], box.env)
      cleanups.push(async () => { await svc.stop() })
      const rsv = await reservationOn(box, svc, relay.peerId)
      const circuit = `${relay.multiaddr}/p2p-circuit/p2p/${svc.peerId}`
      assert.equal(rsv.addr, circuit)
      const r = await runRpc(['discover', '--multiaddr', circuit], { ...box.env, [`${P}ANNOUNCE_FILE`]: '0' })
      assert.equal(r.code, 0, r.stdout + r.stderr + relay.stderr())
      const attempt = (r.json?.attempts as Obj[])[0]
      assert.equal(attempt.connection, 'relayed')
      assert.equal((r.json?.result as Obj).peer_id, svc.peerId)
    })

    it('their node reserves on our relay, and reaches our service through it (limited connection)', async (t) => {
      const bin = peerBinary(t, peer)
      if (bin === null) return
      const relayBox = sandbox()
      cleanups.push(relayBox.cleanup)
      const relay = await startDaemon('relay', [], relayBox.env)
      cleanups.push(async () => { await relay.stop() })

      const reserver = await startGoPeer(bin, 'reserve', ['--relay', relay.multiaddr], { waitForListen: false, name: peer.name })
      cleanups.push(async () => await reserver.stop())
      const reservation = await reserver.value('reservation') as Obj
      assert.equal(reservation.ok, true, JSON.stringify(reservation) + reserver.stderr())
      assert.equal(reservation.circuit, `${relay.multiaddr}/p2p-circuit/p2p/${reserver.peerId}`)
      if (peer.reportsReservationExpiry) assert.ok(reservation.expires_in_s > 60, JSON.stringify(reservation))

      const box = sandbox({ [`${P}RELAY`]: '1', [`${P}RELAY_PEERS`]: relay.multiaddr })
      cleanups.push(box.cleanup)
      const svc = await startDaemon('serve', [], box.env)
      cleanups.push(async () => { await svc.stop() })
      await reservationOn(box, svc, relay.peerId)
      const caller = await startGoPeer(bin, 'mcp-status', ['--addr', `${relay.multiaddr}/p2p-circuit/p2p/${svc.peerId}`], { waitForListen: false, name: peer.name })
      cleanups.push(async () => await caller.stop())
      const reply = await caller.value('reply') as Obj
      assert.equal(reply.id, 1)
      assert.equal(reply.result.content.ok, true, JSON.stringify(reply))
      assert.equal(reply.result.content.peer_id, svc.peerId)
      assert.equal(await caller.value('limited'), true, 'the call went through the relay, not a direct connection')
    })
  })
}
