import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import type { PeerLink } from '../../src/client/peer-link.js'
import type { AttemptRecord, DiscoveryScope, ProbeResult } from '../../src/discovery/types.js'
import { RENDEZVOUS_PROTOCOL, register, rendezvousDiscoverer, rendezvousPoint, sealPeerRecord } from '../../src/discovery/rendezvous/index.js'
import type { RendezvousDiscovererInit } from '../../src/discovery/rendezvous/index.js'

const NS = 'tq-discoverer-test'
const LISTEN = ['/ip4/127.0.0.1/tcp/0']

interface Peer { node: TaskQueueNode, key: PrivateKey }

async function peer (t: TestContext, parts: Parameters<typeof createTaskQueueNode>[0] = {}): Promise<Peer> {
  const key = await generateKeyPair('Ed25519')
  const node = await createTaskQueueNode({ privateKey: key, listen: LISTEN, ...parts })
  t.after(async () => { await node.stop() })
  return { node, key }
}

async function point (t: TestContext): Promise<{ node: TaskQueueNode, addr: string }> {
  const p = await peer(t, { parts: [{ services: { rendezvous: rendezvousPoint() } }] })
  return { node: p.node, addr: p.node.getMultiaddrs()[0].toString() }
}

async function registerAt (p: Peer, at: string, ns = NS): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 250)) // stay under libp2p's 5 inbound dials/s per host
  await register(p.node, multiaddr(at), ns, 7200, { signedPeerRecord: await sealPeerRecord(p.key, p.node.getMultiaddrs()) })
}

/** A scope whose probe succeeds for `good` peers; it really dials, so record addresses are checked too. */
function fakeScope (client: TaskQueueNode, good: Set<string>, opts: { peerIdFilter?: string, signal?: AbortSignal } = {}): DiscoveryScope & { records: AttemptRecord[], probes: Array<{ addrs: string[], source?: string, expected?: string }> } {
  const records: AttemptRecord[] = []
  const probes: Array<{ addrs: string[], source?: string, expected?: string }> = []
  const base = { method: 'rendezvous' as const, response: null, elapsed_ms: 0 }
  return {
    method: 'rendezvous',
    signal: opts.signal ?? AbortSignal.timeout(10_000),
    peerIdFilter: opts.peerIdFilter ?? null,
    records,
    probes,
    fail: (error, details = {}) => {
      const rec: AttemptRecord = { ...base, ok: false, error, peer_id: details.peer_id ?? '', multiaddr: details.multiaddr ?? '', source: details.source }
      records.push(rec)
      return rec
    },
    probe: async (addrs, source, expected): Promise<ProbeResult> => {
      probes.push({ addrs, source, expected })
      let dialled = ''
      try {
        dialled = (await client.dial(multiaddr(addrs[0]), { signal: AbortSignal.timeout(3000) })).remotePeer.toString()
      } catch {}
      const ok = dialled === expected && good.has(expected ?? '')
      const rec: AttemptRecord = { ...base, ok, error: ok ? '' : 'not_good', peer_id: expected ?? '', multiaddr: addrs[0], source }
      records.push(rec)
      return ok ? { ok: true, record: rec, link: { close: () => {} } as unknown as PeerLink } : { ok: false, record: rec }
    }
  }
}

function discoverer (client: TaskQueueNode, init: Partial<RendezvousDiscovererInit>): ReturnType<typeof rendezvousDiscoverer> {
  return rendezvousDiscoverer({ enabled: true, node: async () => client, namespace: NS, points: [], bootstrapPeers: [], maxAttempts: 6, ...init })
}

test('skip reasons: disabled, and no point configured at all', () => {
  const node = async (): Promise<never> => { throw new Error('not used') }
  assert.equal(rendezvousDiscoverer({ enabled: false, node, namespace: NS, points: ['/ip4/127.0.0.1/tcp/1'], bootstrapPeers: [], maxAttempts: 6 }).skipReason(), 'disabled')
  assert.equal(rendezvousDiscoverer({ enabled: true, node, namespace: NS, points: [], bootstrapPeers: [], maxAttempts: 6 }).skipReason(), 'no_rendezvous_point')
  assert.equal(rendezvousDiscoverer({ enabled: true, node, namespace: NS, points: [], bootstrapPeers: ['/ip4/127.0.0.1/tcp/1'], maxAttempts: 6 }).skipReason(), null)
})

test('finds the registered peer that answers, probing at its verified addresses with the point as source', async (t) => {
  const pt = await point(t)
  const [a, b, c] = await Promise.all([peer(t), peer(t), peer(t)])
  for (const p of [a, b]) await registerAt(p, pt.addr)
  const scope = fakeScope(c.node, new Set([b.node.peerId.toString()]))
  const winner = await discoverer(c.node, { points: [pt.addr] }).run(scope)
  assert.ok(winner !== null)
  assert.equal(winner.record.peer_id, b.node.peerId.toString())
  assert.equal(winner.record.source, pt.addr)
  const probeOfB = scope.probes.find((p) => p.expected === b.node.peerId.toString())
  assert.deepEqual(probeOfB?.addrs, b.node.getMultiaddrs().map(String))
})

test('probes at most maxAttempts peers and records attempt_limit for the rest; the caller itself is skipped', async (t) => {
  const pt = await point(t)
  const peers = await Promise.all([peer(t), peer(t), peer(t)])
  const c = await peer(t)
  for (const p of [...peers, c]) await registerAt(p, pt.addr)
  const scope = fakeScope(c.node, new Set())
  assert.equal(await discoverer(c.node, { points: [pt.addr], maxAttempts: 1 }).run(scope), null)
  assert.equal(scope.probes.length, 1)
  assert.deepEqual(scope.records.map((r) => r.error).sort(), ['attempt_limit', 'attempt_limit', 'not_good'])
  assert.ok(scope.records.every((r) => r.peer_id !== c.node.peerId.toString()))
  assert.ok(scope.records.every((r) => r.source === pt.addr))
})

test('with a peer-id filter only that peer is probed', async (t) => {
  const pt = await point(t)
  const [a, b, c] = await Promise.all([peer(t), peer(t), peer(t)])
  for (const p of [a, b]) await registerAt(p, pt.addr)
  const wanted = a.node.peerId.toString()
  const scope = fakeScope(c.node, new Set([wanted, b.node.peerId.toString()]), { peerIdFilter: wanted })
  const winner = await discoverer(c.node, { points: [pt.addr] }).run(scope)
  assert.equal(winner?.record.peer_id, wanted)
  assert.deepEqual(scope.probes.map((p) => p.expected), [wanted])
})

test('point errors: no_registrations, point_unreachable, point_error:<E_CODE>', async (t) => {
  const pt = await point(t)
  const c = await peer(t)
  const gone = await peer(t)
  const goneAddr = gone.node.getMultiaddrs()[0].toString()
  await gone.node.stop()
  const scope = fakeScope(c.node, new Set())
  assert.equal(await discoverer(c.node, { points: [pt.addr, goneAddr] }).run(scope), null)
  const bySource = Object.fromEntries(scope.records.map((r) => [r.source, r.error]))
  assert.deepEqual(bySource, { [pt.addr]: 'no_registrations', [goneAddr]: 'point_unreachable' })
  const bad = fakeScope(c.node, new Set())
  assert.equal(await discoverer(c.node, { points: [pt.addr], namespace: 'x'.repeat(300) }).run(bad), null)
  assert.deepEqual(bad.records.map((r) => r.error), ['point_error:E_INVALID_NAMESPACE'])
})

test('bootstrap peers: those that do not speak rendezvous are ignored, and none at all is no_rendezvous_point', async (t) => {
  const pt = await point(t)
  const [a, plain, c] = await Promise.all([peer(t), peer(t), peer(t)])
  await registerAt(a, pt.addr)
  const plainAddr = plain.node.getMultiaddrs()[0].toString()
  const scope = fakeScope(c.node, new Set([a.node.peerId.toString()]))
  const winner = await discoverer(c.node, { bootstrapPeers: [plainAddr, pt.addr] }).run(scope)
  assert.equal(winner?.record.peer_id, a.node.peerId.toString())
  assert.ok(scope.records.every((r) => r.source !== plainAddr))
  const none = fakeScope(c.node, new Set())
  assert.equal(await discoverer(c.node, { bootstrapPeers: [plainAddr] }).run(none), null)
  assert.deepEqual(none.records.map((r) => r.error), ['no_rendezvous_point'])
})

test('a point that never answers does not outlive the scope signal', async (t) => {
  const hang = await peer(t)
  // Speaks the protocol but never replies.
  await hang.node.handle(RENDEZVOUS_PROTOCOL, () => {}, { runOnLimitedConnection: true })
  const c = await peer(t)
  const controller = new AbortController()
  const scope = fakeScope(c.node, new Set(), { signal: controller.signal })
  const hangAddr: Multiaddr = hang.node.getMultiaddrs()[0]
  const running = discoverer(c.node, { points: [hangAddr.toString()] }).run(scope)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const aborted = Date.now()
  controller.abort(new Error('timeout'))
  assert.equal(await running, null)
  assert.ok(Date.now() - aborted < 250, `returned ${Date.now() - aborted} ms after abort`)
  // The chain records `timeout` itself; the mechanism must not invent a point error.
  assert.deepEqual(scope.records, [])
})
