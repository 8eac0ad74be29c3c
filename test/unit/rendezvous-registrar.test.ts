import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import type { Socket } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import { discover, rendezvousPoint, rendezvousRegistrar } from '../../src/discovery/rendezvous/index.js'
import type { RendezvousRegistrar, RendezvousRegistrarInit } from '../../src/discovery/rendezvous/index.js'

const NS = 'tq-registrar-test'
const LISTEN = ['/ip4/127.0.0.1/tcp/0']

async function waitFor (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.fail(`timed out waiting for ${what}`)
}

/** A point with a fixed identity, optionally on a fixed port (to play a restarted point). */
async function startPoint (t: TestContext, key: PrivateKey, port = 0): Promise<TaskQueueNode> {
  const node = await createTaskQueueNode({ privateKey: key, listen: [`/ip4/127.0.0.1/tcp/${port}`], parts: [{ services: { rendezvous: rendezvousPoint() } }] })
  t.after(async () => { await node.stop() })
  return node
}

async function startService (t: TestContext, init: Partial<RendezvousRegistrarInit>): Promise<{ node: TaskQueueNode, registrar: RendezvousRegistrar }> {
  const full: RendezvousRegistrarInit = { namespace: NS, points: [], bootstrapPeers: [], initialBackoffMs: 100, maxBackoffMs: 400, requestTimeoutMs: 2000, ...init }
  const node = await createTaskQueueNode({ listen: LISTEN, parts: [{ services: { rendezvousRegistrar: rendezvousRegistrar(full) } }] })
  t.after(async () => { await node.stop() })
  return { node, registrar: node.services.rendezvousRegistrar as RendezvousRegistrar }
}

async function client (t: TestContext): Promise<TaskQueueNode> {
  const node = await createTaskQueueNode({ listen: LISTEN })
  t.after(async () => { await node.stop() })
  return node
}

async function registeredIds (c: TaskQueueNode, point: TaskQueueNode): Promise<string[]> {
  try {
    return (await discover(c, point.getMultiaddrs()[0], NS, { signal: AbortSignal.timeout(3000) })).registrations.map((r) => r.peerId)
  } catch {
    return []
  }
}

const portOf = (node: TaskQueueNode): number => Number(node.getMultiaddrs()[0].toString().split('/')[4])

test('registers at the configured point at start and unregisters on stop (bounded)', async (t) => {
  const pt = await startPoint(t, await generateKeyPair('Ed25519'))
  const c = await client(t)
  const svc = await startService(t, { points: [pt.getMultiaddrs()[0].toString()] })
  await waitFor('registration', () => svc.registrar.registrations()[0]?.expiresAt !== null)
  const [status] = svc.registrar.registrations()
  assert.equal(status.ttl, 7200)
  assert.equal(status.lastError, null)
  assert.equal(status.peerId, pt.peerId.toString())
  assert.equal(status.ns, NS)
  const page = await discover(c, pt.getMultiaddrs()[0], NS)
  assert.deepEqual(page.registrations.map((r) => r.peerId), [svc.node.peerId.toString()])
  assert.deepEqual(page.registrations[0].multiaddrs, svc.node.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/[^/]+$/, '')))
  const stopping = Date.now()
  await svc.node.stop()
  assert.ok(Date.now() - stopping < 2000, `stop took ${Date.now() - stopping} ms`)
  await waitFor('the registration to be gone', async () => (await registeredIds(c, pt)).length === 0, 3000)
})

test('re-registers after the point restarts with the same identity', async (t) => {
  const key = await generateKeyPair('Ed25519')
  const first = await startPoint(t, key)
  const port = portOf(first)
  const c = await client(t)
  const svc = await startService(t, { points: [first.getMultiaddrs()[0].toString()] })
  const id = svc.node.peerId.toString()
  await waitFor('first registration', async () => (await registeredIds(c, first)).includes(id))
  // Without reconnect detection the next refresh would come only at ttl/2 (an hour).
  await first.stop()
  const second = await startPoint(t, key, port)
  await waitFor('registration at the restarted point', async () => (await registeredIds(c, second)).includes(id), 15_000)
  assert.equal(svc.registrar.registrations()[0].lastError, null)
})

test('a point that is down or hangs never delays start; registration follows when it comes up', async (t) => {
  // A TCP listener that accepts and never speaks: dials to it hang until their timeout.
  const sockets = new Set<Socket>()
  const silent = createServer((s) => { sockets.add(s) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const s of sockets) s.destroy()
    silent.close()
  })
  const silentPort = (silent.address() as { port: number }).port
  const silentId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const key = await generateKeyPair('Ed25519')
  const gone = await startPoint(t, key)
  const port = portOf(gone)
  const downAddr = gone.getMultiaddrs()[0].toString()
  await gone.stop()

  const started = Date.now()
  const svc = await startService(t, { points: [`/ip4/127.0.0.1/tcp/${silentPort}/p2p/${silentId}`, downAddr], requestTimeoutMs: 500 })
  assert.ok(Date.now() - started < 1500, `start took ${Date.now() - started} ms`)
  await waitFor('both failures to be reported', () => svc.registrar.registrations().every((r) => r.lastError !== null), 5000)
  const byPoint = Object.fromEntries(svc.registrar.registrations().map((r) => [r.point, r]))
  assert.equal(byPoint[downAddr].lastError, 'point_unreachable')
  assert.equal(byPoint[downAddr].expiresAt, null)

  const c = await client(t)
  const back = await startPoint(t, key, port)
  await waitFor('registration once the point is up', async () => (await registeredIds(c, back)).includes(svc.node.peerId.toString()), 10_000)
  await waitFor('status to clear', () => svc.registrar.registrations().find((r) => r.point === downAddr)?.lastError === null, 3000)
  const stopping = Date.now()
  await svc.node.stop()
  assert.ok(Date.now() - stopping < 2000, `stop took ${Date.now() - stopping} ms`)
})

test('without RENDEZVOUS_POINTS, bootstrap peers that speak rendezvous become points', async (t) => {
  const pt = await startPoint(t, await generateKeyPair('Ed25519'))
  const plain = await client(t)
  const svc = await startService(t, { points: [], bootstrapPeers: [plain.getMultiaddrs()[0].toString(), pt.getMultiaddrs()[0].toString()] })
  await waitFor('registration at the bootstrap point', () => svc.registrar.registrations().some((r) => r.expiresAt !== null))
  // Give identify of the plain peer time to (not) promote it.
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.deepEqual(svc.registrar.registrations().map((r) => r.point), [pt.getMultiaddrs()[0].toString()])
  assert.deepEqual(await registeredIds(plain, pt), [svc.node.peerId.toString()])
})

test('re-registers when our own addresses change', async (t) => {
  const pt = await startPoint(t, await generateKeyPair('Ed25519'))
  const c = await client(t)
  const svc = await startService(t, { points: [pt.getMultiaddrs()[0].toString()] })
  await waitFor('registration', () => svc.registrar.registrations()[0]?.expiresAt !== null)
  // A second listener (127.0.0.1 only) changes our announced addresses, as a new public address would.
  const internals = svc.node as unknown as { components: { transportManager: { listen: (addrs: Array<ReturnType<typeof multiaddr>>) => Promise<void> } } }
  await internals.components.transportManager.listen([multiaddr('/ip4/127.0.0.1/tcp/0')])
  const expected = svc.node.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/[^/]+$/, '')).sort()
  assert.equal(expected.length, 2)
  await waitFor('the new address in the registered record', async () => {
    const page = await discover(c, pt.getMultiaddrs()[0], NS).catch(() => null)
    return JSON.stringify(page?.registrations[0]?.multiaddrs.slice().sort()) === JSON.stringify(expected)
  }, 5000)
})
