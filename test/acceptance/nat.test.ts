/**
 * Issue 4 acceptance: reaching services behind NAT, in network namespaces (topology in
 * test/helpers/netns-nat.ts): a relay/coordination node and a client on the WAN, a
 * service behind router1 (MASQUERADE), a second client behind router2.
 * Hole punching has its own file (nat-holepunch.test.ts).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildNatTopology } from '../helpers/netns-nat.js'
import { P, PORT, assertOk, localNat, rpc, serviceDoctor, startRelay, startService, waitFor } from '../helpers/nat-fixture.js'
import type { DoctorJson } from '../helpers/nat-fixture.js'

interface Attempt { method: string, ok: boolean, multiaddr: string, peer_id: string, connection?: string, error: string }

test('NAT traversal through a coordination node', { timeout: 200_000 }, async (t) => {
  const topo = await buildNatTopology(t)
  if (topo === null) return
  const relay = await startRelay(topo.relay, { [`${P}DHT`]: '1', [`${P}RENDEZVOUS`]: '1' })
  t.after(async () => { await relay.daemon.stop(); relay.box.cleanup() })
  const discovery = { [`${P}BOOTSTRAP_PEERS`]: relay.addr, [`${P}DHT`]: '1', [`${P}RENDEZVOUS`]: '1' }
  const svc = await startService(topo.service, { ...discovery, [`${P}RELAY`]: '1' })
  t.after(async () => { await svc.daemon.stop(); svc.box.cleanup() })
  const circuit = `${relay.addr}/p2p-circuit/p2p/${svc.daemon.peerId}`

  const reserved = await waitFor('a relay reservation', 20_000, async () => {
    const nat = await localNat(topo.service, svc.daemon.peerId)
    return nat.relay.reservations.length > 0 ? nat : null
  })
  assert.equal(reserved.relay.enabled, true)
  assert.equal(reserved.relay.reservations[0].relay_peer_id, relay.peerId)
  assert.ok(reserved.relay.reservations[0].addr.includes('/p2p-circuit/'))

  await t.test('announced addresses: the circuit, and no unreachable public address', async () => {
    const status = assertOk(await rpc(topo.service, ['status', '--multiaddr', `/ip4/127.0.0.1/tcp/${PORT}/p2p/${svc.daemon.peerId}`]), 'status')
    const addrs = status.multiaddrs as string[]
    assert.ok(addrs.some((a) => a.includes('/p2p-circuit/')), `no circuit address in ${JSON.stringify(addrs)}`)
    assert.ok(!addrs.some((a) => a.includes(topo.router1.wanIp) && !a.includes('/p2p-circuit')), `router address announced: ${JSON.stringify(addrs)}`)
  })

  await t.test('WAN client, explicit relayed address: status, cache and task ops', async () => {
    const trace = assertOk(await rpc(topo.wanHost, ['discover', '--multiaddr', circuit]), 'discover')
    const win = (trace.attempts as Attempt[]).find((a) => a.ok)
    assert.equal(win?.connection, 'relayed')
    assert.equal((trace.nat as { relay: { enabled: boolean } }).relay.enabled, true)
    assertOk(await rpc(topo.wanHost, ['cache-set', '--multiaddr', circuit, '--key', 'k1', '--value', '{"via":"relay"}']), 'cache-set')
    const got = assertOk(await rpc(topo.wanHost, ['cache-get', '--multiaddr', circuit, '--key', 'k1']), 'cache-get')
    assert.deepEqual(got.value, { via: 'relay' })
    const sub = assertOk(await rpc(topo.wanHost, ['task-submit', '--multiaddr', circuit, '--task-type', 'echo', '--model-name', 'm', '--payload', '{"x":1}']), 'task-submit')
    const task = assertOk(await rpc(topo.wanHost, ['task-get', '--multiaddr', circuit, '--task-id', String(sub.task_id)]), 'task-get')
    assert.equal((task.result as { task_id: string }).task_id, sub.task_id)
    const tool = assertOk(await rpc(topo.wanHost, ['call-tool', '--multiaddr', circuit, '--tool', 'get_server_status']), 'call-tool')
    assert.equal(tool.ok, true)
  })

  await t.test('WAN client discovers the NATed service through the coordination node', async () => {
    // BOOTSTRAP_DIAL=0: the relay is not a TaskQueue endpoint, and probing it as one
    // closes the connection the DHT lookup shares (reported to the discovery work).
    const clientEnv = { ...discovery, [`${P}BOOTSTRAP_DIAL`]: '0' }
    const r = await rpc(topo.wanHost, ['discover', '--timeout', '20'], clientEnv)
    const trace = assertOk(r, 'discover')
    const win = (trace.attempts as Attempt[]).find((a) => a.ok)
    assert.ok(win !== undefined && ['rendezvous', 'dht'].includes(win.method), `winner ${JSON.stringify(win)}`)
    assert.equal(win.peer_id, svc.daemon.peerId)
    assert.ok(win.multiaddr.includes('/p2p-circuit/'), `won over ${win.multiaddr}`)
    assert.equal(win.connection, 'relayed')
    // An ordinary op runs the same chain.
    assertOk(await rpc(topo.wanHost, ['cache-get', '--key', 'k1', '--timeout', '20'], clientEnv), 'cache-get via discovery')
  })

  await t.test('both ends behind NAT: the second client works through the relay', async () => {
    assertOk(await rpc(topo.client2, ['status', '--multiaddr', circuit]), 'status from behind NAT')
    const got = assertOk(await rpc(topo.client2, ['cache-get', '--multiaddr', circuit, '--key', 'k1']), 'cache-get')
    assert.deepEqual(got.value, { via: 'relay' })
    assertOk(await rpc(topo.client2, ['task-submit', '--multiaddr', circuit, '--task-type', 'echo', '--model-name', 'm']), 'task-submit')
  })

  await t.test('AutoNAT: the NATed service is private, a WAN service public', async () => {
    const wan = await startService(topo.wanHost, { ...discovery, [`${P}LISTEN_PORT`]: String(PORT + 1) })
    t.after(async () => { await wan.daemon.stop(); wan.box.cleanup() })
    const natted = await waitFor('private reachability', 30_000, async () => {
      const nat = await localNat(topo.service, svc.daemon.peerId)
      return nat.autonat.status !== 'unknown' ? nat : null
    })
    assert.deepEqual(natted.autonat, { supported: true, status: 'private', code: 2 })
    const publicNat = await waitFor('public reachability', 30_000, async () => {
      const r = await rpc(topo.wanHost, ['status', '--multiaddr', `/ip4/127.0.0.1/tcp/${PORT + 1}/p2p/${wan.daemon.peerId}`, '--timeout', '5'])
      const nat = assertOk(r, 'wan status').nat as { autonat: { status: string, code: number } }
      return nat.autonat.status !== 'unknown' ? { nat, status: r.json as Record<string, unknown> } : null
    })
    assert.deepEqual(publicNat.nat.autonat, { supported: true, status: 'public', code: 1 })
    // Announced addresses follow: the confirmed public address is announced.
    const addrs = publicNat.status.multiaddrs as string[]
    assert.ok(addrs.some((a) => a.startsWith(`/ip4/${topo.wanHost.ip}/tcp/${PORT + 1}/`)), `public address not announced: ${JSON.stringify(addrs)}`)

    // The doctors name the right state and fix.
    const relayed = await serviceDoctor(topo.service, svc)
    assert.equal(relayed.code, 0, relayed.text)
    assert.equal(relayed.report.verdict.code, 'relayed', relayed.text)
    assert.equal(relayed.report.reachability.status, 'private')
    const pub = await serviceDoctor(topo.wanHost, wan)
    assert.equal(pub.report.verdict.code, 'public', pub.text)
    const bare = await startService(topo.service, { [`${P}BOOTSTRAP_PEERS`]: relay.addr, [`${P}LISTEN_PORT`]: String(PORT + 2) })
    t.after(async () => { await bare.daemon.stop(); bare.box.cleanup() })
    const noRelay = await waitFor('the no-relay verdict', 30_000, async () => {
      const d = await serviceDoctor(topo.service, bare)
      return d.report.verdict.code === 'nat_no_relay' ? d : null
    }, 1000)
    assert.equal(noRelay.code, 3)
    assert.match(noRelay.text, /behind NAT with no relay: clients outside your LAN cannot reach this service/)
    assert.ok(noRelay.report.verdict.fix.includes('RELAY=1') && noRelay.report.verdict.fix.includes(relay.addr) && noRelay.report.verdict.fix.includes(`TCP port ${PORT + 2}`), noRelay.report.verdict.fix)
    const client = await rpc(topo.wanHost, ['doctor', '--json', '--timeout', '15', '--peer-id', svc.daemon.peerId], { [`${P}BOOTSTRAP_PEERS`]: relay.addr, [`${P}BOOTSTRAP_DIAL`]: '0', [`${P}DHT`]: '1', [`${P}RENDEZVOUS`]: '1' })
    const report = assertOk(client, 'p2p-rpc doctor') as unknown as DoctorJson
    assert.equal(report.verdict.code, 'relayed', JSON.stringify(report.verdict))
  })

  await t.test('relay restarted: the reservation and relayed calls are back within 30 s', async () => {
    await relay.restart()
    const restartedAt = Date.now()
    await waitFor('a relayed status after the relay restart', 30_000, async () => {
      const r = await rpc(topo.wanHost, ['status', '--multiaddr', circuit, '--timeout', '4'], {}, 15_000)
      return r.code === 0 ? true : null
    }, 1000)
    const took = Date.now() - restartedAt
    assert.ok(took <= 30_000, `took ${took} ms`)
    const nat = await localNat(topo.service, svc.daemon.peerId)
    assert.equal(nat.relay.reservations.length, 1)
    process.stderr.write(`relay restart: relayed calls back after ${took} ms\n`)
  })
})
