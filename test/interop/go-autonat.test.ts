/**
 * AutoNAT v1 against go-libp2p, both roles, in the network-namespace NAT topology of
 * test/helpers/netns-nat.ts (go-libp2p's server dials back public addresses only, so
 * loopback cannot show it): a node on the WAN must be judged public, a node behind the
 * MASQUERADE router private.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildNatTopology } from '../helpers/netns-nat.js'
import type { Host } from '../helpers/netns.js'
import { P, PORT, localNat, startService, waitFor } from '../helpers/nat-fixture.js'
import { interopGoPeer, requirePeer } from './helpers/toolchains.js'
import { startGoPeer } from './helpers/go-peer.js'

const GO_PORT = 9711

test('AutoNAT v1 with go-libp2p, both roles, public and behind NAT', { timeout: 300_000 }, async (t) => {
  const go = interopGoPeer()
  if (!requirePeer(t, 'go-libp2p', go)) return
  const topo = await buildNatTopology(t)
  if (topo === null) return

  // Their server and our responder both on the WAN host `relay`.
  const server = await startGoPeer(go.path, 'autonat-server', ['--listen', `/ip4/0.0.0.0/tcp/${GO_PORT}`], { netns: topo.relay.ns })
  t.after(async () => { await server.stop() })
  const serverAddr = `/ip4/${topo.relay.ip}/tcp/${GO_PORT}/p2p/${server.peerId}`
  // A public responder announces its public address (confirmed, or PUBLIC_IP as here):
  // go-libp2p only asks peers that have one.
  const responder = await startService(topo.relay, { [`${P}PUBLIC_IP`]: topo.relay.ip })
  t.after(async () => { await responder.daemon.stop(); responder.box.cleanup() })
  const responderAddr = `/ip4/${topo.relay.ip}/tcp/${PORT}/p2p/${responder.daemon.peerId}`

  const ourVerdict = async (host: Host): Promise<string> => {
    const svc = await startService(host, { [`${P}BOOTSTRAP_PEERS`]: serverAddr })
    try {
      return await waitFor(`a verdict of go's AutoNAT server in ${host.ns}`, 90_000, async () => {
        const s = (await localNat(host, svc.daemon.peerId)).autonat.status
        return s === 'unknown' ? null : s
      }, 1000)
    } finally {
      await svc.daemon.stop()
      svc.box.cleanup()
    }
  }

  const theirVerdict = async (host: Host): Promise<string> => {
    const client = await startGoPeer(go.path, 'autonat-client', ['--listen', `/ip4/0.0.0.0/tcp/${GO_PORT}`, '--peer', responderAddr, '--timeout', '90s'], { netns: host.ns })
    try {
      // One line: the first change away from unknown, or the status at --timeout.
      return await client.value('reachability', 100_000) as string
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
    assert.equal(await theirVerdict(topo.wanHost), 'public')
  })
  await t.test('our responder judges their node behind NAT private', async () => {
    assert.equal(await theirVerdict(topo.service), 'private')
  })
})
