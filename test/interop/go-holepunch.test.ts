/**
 * DCUtR (`/libp2p/dcutr`) between ours and go-libp2p's holepunch service, in the
 * network-namespace NAT topology of test/helpers/netns-nat.ts: each side behind its own
 * port-preserving NAT, meeting through our relay on the WAN. In both roles the relayed
 * connection must be replaced by a direct one through both NATs:
 * - ours initiates (our service behind NAT receives go's relayed dial and punches);
 * - go initiates (go behind NAT receives our client's relayed dial and punches).
 * go learns its public address from the relay's identify (observed address) and dials
 * from its listen port (SO_REUSEPORT); ours announces a predicted port
 * (src/nat/holepunch.ts) — each side's own way of making the mapping predictable.
 */
import { test } from 'node:test'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { buildNatTopology } from '../helpers/netns-nat.js'
import { FLEET_TOKEN, P, assertOk, localNat, nodeEnv, rpc, startRelay, startService, waitFor } from '../helpers/nat-fixture.js'
import { runNode, sandbox } from '../helpers/procs.js'
import { interopGoPeer, requirePeer } from './helpers/toolchains.js'
import { startGoPeer } from './helpers/go-peer.js'
import type { GoPeer } from './helpers/go-peer.js'

type Obj = Record<string, any>
const GO_PORT = 9711
const PUNCH_CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'helpers/punch-client.js')

/** The go peer's lines, for a failure message. */
function goSaid (go: GoPeer): string {
  return `\ngo-peer stderr:\n${go.stderr().slice(-3000)}`
}

test('DCUtR with go-libp2p behind port-preserving NATs, both roles', { timeout: 240_000 }, async (t) => {
  const go = interopGoPeer()
  if (!requirePeer(t, 'go-libp2p', go)) return
  const topo = await buildNatTopology(t, { serviceNat: 'port-preserving', clientNat: 'port-preserving' })
  if (topo === null) return
  const relay = await startRelay(topo.relay)
  t.after(async () => { await relay.daemon.stop(); relay.box.cleanup() })

  await t.test('ours initiates: our service behind NAT punches to go behind NAT that dialled it through the relay', async () => {
    const svc = await startService(topo.service, { [`${P}BOOTSTRAP_PEERS`]: relay.addr, [`${P}RELAY`]: '1', [`${P}HOLEPUNCH`]: '1' })
    try {
      await waitFor('a relay reservation', 30_000, async () => (await localNat(topo.service, svc.daemon.peerId)).relay.reservations.length > 0 ? true : null)
      const circuit = `${relay.addr}/p2p-circuit/p2p/${svc.daemon.peerId}`
      const dialer = await startGoPeer(go.path, 'punch-dial', ['--listen', `/ip4/0.0.0.0/tcp/${GO_PORT}`, '--relay', relay.addr, '--addr', circuit, '--wait', '20s', '--token', FLEET_TOKEN], { netns: topo.client2.ns })
      try {
        assert.equal(await dialer.value('holepunch_ready', 40_000), true, goSaid(dialer))
        const first = await dialer.value('first', 60_000) as Obj
        assert.equal(first.ok, true, JSON.stringify(first) + goSaid(dialer))
        assert.equal(first.relayed, true, 'the first call went through the relay')
        const direct = await dialer.value('direct', 30_000) as Obj
        if (direct.ok !== true) {
          const ours = (await localNat(topo.service, svc.daemon.peerId)).holepunch
          assert.fail(`no direct connection; our service's punches: ${JSON.stringify(ours)}${goSaid(dialer)}`)
        }
        assert.ok(String(direct.conn.remote).startsWith(`/ip4/${topo.router1.wanIp}/tcp/`), `direct to the service's NAT: ${JSON.stringify(direct.conn)}`)
        const second = await dialer.value('second', 30_000) as Obj
        assert.equal(second.ok, true, JSON.stringify(second))
        assert.deepEqual([second.relayed, second.limited], [false, false], `the next call takes the direct connection: ${JSON.stringify(second)}`)
      } finally {
        await dialer.stop()
      }
      const nat = await localNat(topo.service, svc.daemon.peerId)
      const punch = (nat.holepunch as Obj).recent as Obj[] | undefined
      const ours = (punch ?? []).filter((r) => r.peer_id === dialer.peerId)
      assert.ok(ours.some((r) => r.role === 'initiator' && r.outcome === 'direct'), `our service's punch: ${JSON.stringify(nat.holepunch)}`)
    } finally {
      await svc.daemon.stop()
      svc.box.cleanup()
    }
  })

  await t.test('go initiates: go behind NAT punches to our client behind NAT that dialled it through the relay', async () => {
    const server = await startGoPeer(go.path, 'punch-serve', ['--listen', `/ip4/0.0.0.0/tcp/${GO_PORT}`, '--relay', relay.addr], { netns: topo.client2.ns })
    try {
      assert.equal(await server.value('holepunch_ready', 40_000), true, goSaid(server))
      const reservation = await server.value('reservation', 30_000) as Obj
      assert.equal(reservation.ok, true, JSON.stringify(reservation))
      const trace = assertOk(await rpc(topo.service, ['discover', '--multiaddr', reservation.circuit, '--timeout', '30'], { [`${P}HOLEPUNCH`]: '1' }), 'discover')
      const win = (trace.attempts as Obj[]).find((a) => a.ok)
      assert.ok(win !== undefined, JSON.stringify(trace))
      assert.ok(String(win.multiaddr).includes('/p2p-circuit/'), 'dialled through the relay first')
      assert.equal(win.connection, 'direct', `our client reports the upgrade: ${JSON.stringify(trace)}${goSaid(server)}`)
      // What go saw: our client came in through the relay, then directly from its NAT.
      const relayed = await server.value('relayed_open', 5000) as Obj
      const direct = await server.value('direct_open', 5000) as Obj
      assert.equal(direct.peer_id, relayed.peer_id)
      assert.ok(String(direct.remote).startsWith(`/ip4/${topo.router1.wanIp}/tcp/`), `direct from our client's NAT: ${JSON.stringify(direct)}`)
      const served = server.values('served') as Obj[]
      assert.ok(served.length >= 1 && served[0].relayed === true, `the probe's status came through the relay: ${JSON.stringify(served)}`)
      // Our library client stays connected: its next call takes the punched connection,
      // and the relayed one is retired (our responder closes it once idle).
      const box = sandbox()
      const lib = await runNode([PUNCH_CLIENT, reservation.circuit], nodeEnv(box, { [`${P}HOLEPUNCH`]: '1', [`${P}ANNOUNCE_FILE`]: '0', [`${P}LISTEN_PORT`]: '0' }), 60_000, topo.service.ns).finally(() => box.cleanup())
      assert.equal(lib.code, 0, lib.stdout + lib.stderr.slice(-2000))
      const out = lib.json as Obj
      assert.equal(out.direct, true, `our client got a direct connection: ${JSON.stringify(out)}${goSaid(server)}`)
      const calls = (server.values('served') as Obj[]).filter((s) => s.peer_id !== relayed.peer_id)
      assert.ok(calls.length >= 2, `go served both of our library client's calls: ${JSON.stringify(calls)}`)
      const last = calls[calls.length - 1]
      assert.deepEqual([last.relayed, last.limited], [false, false], `the call after the punch went direct: ${JSON.stringify(last)}`)
      assert.ok(out.connections.every((a: string) => !a.includes('/p2p-circuit')), `the relayed connection was retired: ${JSON.stringify(out.connections)}`)
    } finally {
      await server.stop()
    }
  })
})
