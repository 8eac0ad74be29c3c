/**
 * Issue 4.3 acceptance: DCUtR hole punching between a service and a client that are
 * both behind NAT (test/helpers/netns-nat.ts). Behind port-preserving NATs the relayed
 * connection upgrades to direct, and the discover trace says so; behind symmetric NATs
 * (MASQUERADE --random-fully) it stays relayed and everything still works.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildNatTopology, setNatKind } from '../helpers/netns-nat.js'
import { P, assertOk, localNat, rpc, startRelay, startService, waitFor } from '../helpers/nat-fixture.js'

interface Attempt { ok: boolean, multiaddr: string, connection?: string }

test('hole punching: direct behind port-preserving NAT, relayed behind symmetric NAT', { timeout: 150_000 }, async (t) => {
  const topo = await buildNatTopology(t, { serviceNat: 'port-preserving', clientNat: 'port-preserving' })
  if (topo === null) return
  const relay = await startRelay(topo.relay)
  t.after(async () => { await relay.daemon.stop(); relay.box.cleanup() })
  // LOG_LEVEL=debug: the last subtest reads the service's log.
  const svc = await startService(topo.service, { [`${P}BOOTSTRAP_PEERS`]: relay.addr, [`${P}RELAY`]: '1', [`${P}HOLEPUNCH`]: '1', [`${P}LOG_LEVEL`]: 'debug', [`${P}LOG_FORMAT`]: 'json' })
  t.after(async () => { await svc.daemon.stop(); svc.box.cleanup() })
  await waitFor('a relay reservation', 20_000, async () => (await localNat(topo.service, svc.daemon.peerId)).relay.reservations.length > 0 ? true : null)
  const circuit = `${relay.addr}/p2p-circuit/p2p/${svc.daemon.peerId}`
  const punchEnv = { [`${P}HOLEPUNCH`]: '1' }

  const discoverKind = async (host: typeof topo.client2): Promise<Attempt> => {
    const trace = assertOk(await rpc(host, ['discover', '--multiaddr', circuit], punchEnv), 'discover')
    const win = (trace.attempts as Attempt[]).find((a) => a.ok)
    assert.ok(win !== undefined)
    return win
  }

  await t.test('both behind port-preserving NAT: the connection upgrades to direct', async () => {
    const win = await discoverKind(topo.client2)
    assert.ok(win.multiaddr.includes('/p2p-circuit/'), 'dialled through the relay first')
    assert.equal(win.connection, 'direct', 'the trace reports the upgrade')
    const nat = await localNat(topo.service, svc.daemon.peerId)
    assert.equal(nat.holepunch.enabled, true)
    assert.ok(nat.holepunch.successes >= 1, JSON.stringify(nat.holepunch))
  })

  await t.test('LOG_LEVEL=debug: AutoNAT, relay and hole-punch lines in the one log the queue writes to', () => {
    const records = svc.daemon.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
    const queue = records.find((r) => r.msg === 'TaskQueue service listening')
    assert.ok(queue !== undefined, 'the queue logs through the sink')
    const from = (component: string, text: RegExp): Record<string, unknown> | undefined =>
      records.find((r) => r.component === component && text.test(String(r.msg)))
    const lines = {
      autonat: from('taskqueue:nat:autonat', /^AutoNAT/),
      reservation: from('taskqueue:nat:relay-keeper', /reservation made on/),
      holepunch: from('taskqueue:nat:holepunch', /: direct after/),
      libp2pRelay: records.find((r) => String(r.component).startsWith('libp2p:circuit-relay'))
    }
    for (const [what, line] of Object.entries(lines)) {
      assert.ok(line !== undefined, `a ${what} line; components seen: ${[...new Set(records.map((r) => r.component))].join(' ')}`)
      assert.equal(line.level, 20, `${what} at debug`)
      assert.equal(line.name, queue.name, `${what} through the queue's logger`)
      assert.equal(line.pid, queue.pid)
    }
  })

  await t.test('public client and NATed service: direct too', async () => {
    const win = await discoverKind(topo.wanHost)
    assert.equal(win.connection, 'direct')
  })

  await t.test('without HOLEPUNCH on the client the connection stays relayed', async () => {
    const trace = assertOk(await rpc(topo.client2, ['discover', '--multiaddr', circuit]), 'discover')
    assert.equal((trace.attempts as Attempt[]).find((a) => a.ok)?.connection, 'relayed')
  })

  await t.test('both behind symmetric NAT: stays relayed and still works', async () => {
    await setNatKind(topo.lab, topo.router1, 'symmetric')
    await setNatKind(topo.lab, topo.router2, 'symmetric')
    const before = await localNat(topo.service, svc.daemon.peerId)
    const win = await discoverKind(topo.client2)
    assert.equal(win.connection, 'relayed')
    const after = await localNat(topo.service, svc.daemon.peerId)
    assert.ok(after.holepunch.attempts > before.holepunch.attempts, 'a punch was attempted')
    assert.equal(after.holepunch.successes, before.holepunch.successes, 'and it failed')
    assertOk(await rpc(topo.client2, ['cache-set', '--multiaddr', circuit, '--key', 'sym', '--value', '1'], punchEnv), 'cache-set')
    const got = assertOk(await rpc(topo.client2, ['cache-get', '--multiaddr', circuit, '--key', 'sym'], punchEnv), 'cache-get')
    assert.equal(got.value, 1)
  })
})
