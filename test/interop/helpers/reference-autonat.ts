/**
 * AutoNAT v1 against a reference implementation's test peer, both roles, in the
 * network-namespace NAT topology of test/helpers/netns-nat.ts (go-libp2p's server dials back
 * public addresses only, so loopback cannot show it): a node on the WAN must be judged
 * public, a node behind the MASQUERADE router private. go-autonat.test.ts and
 * rust-autonat.test.ts run it (roles `autonat-server`, `autonat-client`).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildNatTopology } from '../../helpers/netns-nat.js'
import type { Host } from '../../helpers/netns.js'
import { P, PORT, localNat, startService, waitFor } from '../../helpers/nat-fixture.js'
import { requirePeer } from './toolchains.js'
import { startGoPeer } from './go-peer.js'
import type { ReferencePeer } from './reference-cases.js'

/** Their node's port on every host (ours is nat-fixture's PORT). */
const THEIR_PORT = 9711

export function testAutonatV1 (peer: ReferencePeer): void {
  test(`AutoNAT v1 with ${peer.impl}, both roles, public and behind NAT`, { timeout: 300_000 }, async (t) => {
    const found = peer.find()
    if (!requirePeer(t, peer.impl, found)) return
    const topo = await buildNatTopology(t)
    if (topo === null) return

    // Their server and our responder both on the WAN host `relay`.
    const server = await startGoPeer(found.path, 'autonat-server', ['--listen', `/ip4/0.0.0.0/tcp/${THEIR_PORT}`], { netns: topo.relay.ns, name: peer.name })
    t.after(async () => { await server.stop() })
    const serverAddr = `/ip4/${topo.relay.ip}/tcp/${THEIR_PORT}/p2p/${server.peerId}`
    // A public responder announces its public address (confirmed, or PUBLIC_IP as here):
    // go-libp2p only asks peers that have one.
    const responder = await startService(topo.relay, { [`${P}PUBLIC_IP`]: topo.relay.ip })
    t.after(async () => { await responder.daemon.stop(); responder.box.cleanup() })
    const responderAddr = `/ip4/${topo.relay.ip}/tcp/${PORT}/p2p/${responder.daemon.peerId}`

    const ourVerdict = async (host: Host): Promise<string> => {
      const svc = await startService(host, { [`${P}BOOTSTRAP_PEERS`]: serverAddr })
      try {
        return await waitFor(`a verdict of ${peer.impl}'s AutoNAT server in ${host.ns}`, 90_000, async () => {
          const s = (await localNat(host, svc.daemon.peerId)).autonat.status
          return s === 'unknown' ? null : s
        }, 1000)
      } finally {
        await svc.daemon.stop()
        svc.box.cleanup()
      }
    }

    /** Their verdict, and their log to explain it. */
    const theirVerdict = async (host: Host): Promise<[string, string]> => {
      const client = await startGoPeer(found.path, 'autonat-client', ['--listen', `/ip4/0.0.0.0/tcp/${THEIR_PORT}`, '--peer', responderAddr, '--timeout', '90s'], { netns: host.ns, name: peer.name })
      try {
        // One line: the first change away from unknown, or the status at --timeout.
        return [await client.value('reachability', 100_000) as string, client.stderr()]
      } finally {
        await client.stop()
      }
    }

    await t.test('their server judges our service on the WAN public', async () => {
      assert.equal(await ourVerdict(topo.wanHost), 'public')
    })
    await t.test('their server judges our service behind NAT private', async () => {
      assert.equal(await ourVerdict(topo.service), 'private')
    })
    await t.test('our responder judges their node on the WAN public', async () => {
      const [verdict, log] = await theirVerdict(topo.wanHost)
      assert.equal(verdict, 'public', log)
    })
    await t.test('our responder judges their node behind NAT private', async () => {
      const [verdict, log] = await theirVerdict(topo.service)
      assert.equal(verdict, 'private', log)
    })
  })
}
