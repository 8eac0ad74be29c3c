import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import { StreamReader, writeBytes } from '../../src/protocol/framing.js'
import {
  MessageType, RENDEZVOUS_PROTOCOL, RendezvousError, discover, discoverMany, encodeLengthPrefixed, encodeMessage,
  readMessage, register, rendezvousPoint, sealPeerRecord, unregister
} from '../../src/discovery/rendezvous/index.js'
import type { RendezvousPoint, RendezvousPointInit } from '../../src/discovery/rendezvous/index.js'

const NS = 'tq-test'
const LISTEN = ['/ip4/127.0.0.1/tcp/0']

interface Peer { node: TaskQueueNode, key: PrivateKey }

async function peer (t: TestContext): Promise<Peer> {
  const key = await generateKeyPair('Ed25519')
  const node = await createTaskQueueNode({ privateKey: key, listen: LISTEN })
  t.after(async () => { await node.stop() })
  return { node, key }
}

async function point (t: TestContext, init: RendezvousPointInit = {}): Promise<{ node: TaskQueueNode, addr: Multiaddr, service: RendezvousPoint }> {
  const node = await createTaskQueueNode({ listen: LISTEN, parts: [{ services: { rendezvous: rendezvousPoint(init) } }] })
  t.after(async () => { await node.stop() })
  return { node, addr: node.getMultiaddrs()[0], service: node.services.rendezvous as RendezvousPoint }
}

async function registerSelf (p: Peer, at: Multiaddr, ns = NS, ttl = 7200): Promise<number> {
  return await register(p.node, at, ns, ttl, { signedPeerRecord: await sealPeerRecord(p.key, p.node.getMultiaddrs()), signal: AbortSignal.timeout(5000) })
}

/**
 * libp2p accepts at most 5 inbound connections per second from one host, and every
 * test peer is 127.0.0.1: tests with many peers space out their first dials.
 */
async function registerPaced (p: Peer, at: Multiaddr): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 250))
  return await registerSelf(p, at)
}

async function rejection (promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof RendezvousError, String(err))
    return err.code
  }
  assert.fail('expected a RendezvousError')
}

const bare = (node: TaskQueueNode): string[] => node.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/[^/]+$/, ''))

test('register + discover round trip returns the verified addresses', async (t) => {
  const pt = await point(t)
  const a = await peer(t)
  const c = await peer(t)
  assert.equal(await registerSelf(a, pt.addr), 7200)
  const page = await discover(c.node, pt.addr, NS, { signal: AbortSignal.timeout(5000) })
  assert.equal(page.registrations.length, 1)
  assert.equal(page.registrations[0].peerId, a.node.peerId.toString())
  assert.deepEqual(page.registrations[0].multiaddrs, bare(a.node))
  assert.ok(page.registrations[0].ttlS > 7190 && page.registrations[0].ttlS <= 7200)
  assert.equal(page.invalid, 0)
  assert.ok(page.cookie !== null)
  const stats = pt.service.stats()
  assert.equal(stats.registrations, 1)
  assert.deepEqual(stats.byNamespace, { [NS]: 1 })
  assert.equal(stats.requests.register_ok, 1)
  // Another namespace is separate.
  assert.equal((await discover(c.node, pt.addr, 'other', { signal: AbortSignal.timeout(5000) })).registrations.length, 0)
})

test('a registration expires at its ttl (injected clock)', async (t) => {
  let clock = 1_000_000
  const pt = await point(t, { now: () => clock, minTtlS: 1 })
  const a = await peer(t)
  const c = await peer(t)
  assert.equal(await registerSelf(a, pt.addr, NS, 3), 3)
  clock += 1000
  const before = await discover(c.node, pt.addr, NS)
  assert.equal(before.registrations.length, 1)
  assert.equal(before.registrations[0].ttlS, 2)
  clock += 2000
  assert.equal((await discover(c.node, pt.addr, NS)).registrations.length, 0)
  assert.equal(pt.service.stats().registrations, 0)
})

test('a peer cannot register another peer\'s record (E_NOT_AUTHORIZED); bad envelopes are E_INVALID_SIGNED_PEER_RECORD', async (t) => {
  const pt = await point(t)
  const a = await peer(t)
  const b = await peer(t)
  const aRecord = await sealPeerRecord(a.key, a.node.getMultiaddrs())
  assert.equal(await rejection(register(b.node, pt.addr, NS, 7200, { signedPeerRecord: aRecord })), 'E_NOT_AUTHORIZED')
  const tampered = Uint8Array.from(aRecord)
  tampered[tampered.length - 2] ^= 0x01
  assert.equal(await rejection(register(a.node, pt.addr, NS, 7200, { signedPeerRecord: tampered })), 'E_INVALID_SIGNED_PEER_RECORD')
  assert.equal(await rejection(register(a.node, pt.addr, NS, 7200, { signedPeerRecord: Uint8Array.of(1, 2, 3) })), 'E_INVALID_SIGNED_PEER_RECORD')
  assert.equal(await rejection(register(a.node, pt.addr, NS, 7200, { signedPeerRecord: new Uint8Array(0) })), 'E_INVALID_SIGNED_PEER_RECORD')
  assert.equal((await discover(b.node, pt.addr, NS)).registrations.length, 0)
  assert.equal(pt.service.stats().requests.register_rejected, 4)
})

test('DISCOVER pages with the cookie and then returns only newer registrations', async (t) => {
  const pt = await point(t)
  const c = await peer(t)
  const peers = await Promise.all(Array.from({ length: 6 }, async () => await peer(t)))
  for (const p of peers.slice(0, 5)) await registerPaced(p, pt.addr)
  const ids = peers.map((p) => p.node.peerId.toString())
  const seen: string[] = []
  const sizes: number[] = []
  let cookie: Uint8Array | null = null
  for (let i = 0; i < 4; i++) {
    const page = await discover(c.node, pt.addr, NS, { limit: 2, cookie })
    sizes.push(page.registrations.length)
    seen.push(...page.registrations.map((r) => r.peerId))
    cookie = page.cookie
  }
  assert.deepEqual(sizes, [2, 2, 1, 0])
  assert.deepEqual(seen, ids.slice(0, 5))
  await registerPaced(peers[5], pt.addr)
  const newer = await discover(c.node, pt.addr, NS, { limit: 2, cookie })
  assert.deepEqual(newer.registrations.map((r) => r.peerId), [ids[5]])
  // A refreshed registration counts as new.
  await registerSelf(peers[0], pt.addr)
  const refreshed = await discover(c.node, pt.addr, NS, { limit: 2, cookie: newer.cookie })
  assert.deepEqual(refreshed.registrations.map((r) => r.peerId), [ids[0]])
  // discoverMany follows cookies to exhaustion.
  const all = await discoverMany(c.node, pt.addr, NS, { limit: 2, want: 100 })
  assert.equal(all.registrations.length, 6)
  assert.equal(all.pages, 4) // the third page is full, so a fourth (empty) one is asked for
  const some = await discoverMany(c.node, pt.addr, NS, { limit: 2, want: 3 })
  assert.equal(some.registrations.length, 4)
  assert.equal(some.pages, 2)
})

test('unknown, foreign-namespace and garbled cookies are E_INVALID_COOKIE', async (t) => {
  const pt = await point(t)
  const other = await point(t)
  const c = await peer(t)
  const a = await peer(t)
  await registerSelf(a, pt.addr)
  const good = (await discover(c.node, pt.addr, NS)).cookie as Uint8Array
  const otherNs = (await discover(c.node, pt.addr, 'elsewhere')).cookie as Uint8Array
  const otherPoint = (await discover(c.node, other.addr, NS)).cookie as Uint8Array
  // A position the point never reached.
  const future = Uint8Array.from([...good.subarray(0, 8), ...new TextEncoder().encode(new TextDecoder().decode(good.subarray(8)).replace(/^tq1\.(\d+)\./, (_, n: string) => `tq1.${Number(n) + 5}.`))])
  assert.notDeepEqual(future, good)
  for (const cookie of [Uint8Array.of(1, 2, 3), otherNs, otherPoint, future, new Uint8Array(40).fill(1)]) {
    assert.equal(await rejection(discover(c.node, pt.addr, NS, { cookie })), 'E_INVALID_COOKIE')
  }
  assert.equal((await discover(c.node, pt.addr, NS, { cookie: good })).registrations.length, 0)
})

test("cookies have the shape rust-libp2p's client parses: 8 bytes, then at most 255 bytes of UTF-8", async (t) => {
  const pt = await point(t)
  const c = await peer(t)
  for (const ns of [NS, 'n'.repeat(255), '']) {
    const cookie = (await discover(c.node, pt.addr, ns)).cookie as Uint8Array
    const tail = cookie.subarray(8)
    assert.ok(tail.byteLength > 0 && tail.byteLength <= 255, `${ns.length}: ${tail.byteLength} bytes`)
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(tail))
    assert.equal((await discover(c.node, pt.addr, ns, { cookie })).registrations.length, 0)
  }
})

test('namespace and ttl limits give E_INVALID_NAMESPACE / E_INVALID_TTL; ttl 0 means the default', async (t) => {
  const pt = await point(t)
  const a = await peer(t)
  const long = 'x'.repeat(256)
  assert.equal(await rejection(registerSelf(a, pt.addr, '')), 'E_INVALID_NAMESPACE')
  assert.equal(await rejection(registerSelf(a, pt.addr, long)), 'E_INVALID_NAMESPACE')
  assert.equal(await rejection(registerSelf(a, pt.addr, 'é'.repeat(128))), 'E_INVALID_NAMESPACE') // 256 UTF-8 bytes
  assert.equal(await registerSelf(a, pt.addr, 'x'.repeat(255)), 7200)
  assert.equal(await rejection(discover(a.node, pt.addr, long)), 'E_INVALID_NAMESPACE')
  assert.equal(await rejection(registerSelf(a, pt.addr, NS, 119)), 'E_INVALID_TTL')
  assert.equal(await rejection(registerSelf(a, pt.addr, NS, 72 * 3600 + 1)), 'E_INVALID_TTL')
  assert.equal(await registerSelf(a, pt.addr, NS, 120), 120)
  assert.equal(await registerSelf(a, pt.addr, NS, 72 * 3600), 72 * 3600)
  assert.equal(await registerSelf(a, pt.addr, NS, 0), 7200)
})

test('per-namespace and per-peer caps answer E_UNAVAILABLE; re-registering replaces', async (t) => {
  const pt = await point(t, { maxRegistrationsPerNamespace: 2, maxNamespacesPerPeer: 2 })
  const [a, b, c] = await Promise.all([peer(t), peer(t), peer(t)])
  await registerSelf(a, pt.addr)
  await registerSelf(b, pt.addr)
  assert.equal(await rejection(registerSelf(c, pt.addr)), 'E_UNAVAILABLE')
  assert.equal(await registerSelf(a, pt.addr), 7200) // a replacement is not a new entry
  await registerSelf(a, pt.addr, 'second')
  assert.equal(await rejection(registerSelf(a, pt.addr, 'third')), 'E_UNAVAILABLE')
  assert.equal((await discover(c.node, pt.addr, NS)).registrations.length, 2)
  assert.equal(pt.service.stats().registrations, 3)
  // An empty namespace asks for every namespace, and its cookie pages the same way.
  const everything = await discover(c.node, pt.addr, '', { limit: 2 })
  assert.deepEqual(everything.registrations.map((r) => r.ns), [NS, NS])
  const rest = await discover(c.node, pt.addr, '', { limit: 2, cookie: everything.cookie })
  assert.deepEqual(rest.registrations.map((r) => [r.ns, r.peerId]), [['second', a.node.peerId.toString()]])
  assert.equal(await rejection(discover(c.node, pt.addr, NS, { cookie: rest.cookie })), 'E_INVALID_COOKIE')
})

test('UNREGISTER removes only the sender\'s registration', async (t) => {
  const pt = await point(t)
  const [a, b] = await Promise.all([peer(t), peer(t)])
  await registerSelf(a, pt.addr)
  await registerSelf(b, pt.addr)
  await unregister(b.node, pt.addr, NS) // b has its own, removed
  await unregister(b.node, pt.addr, 'never-registered')
  // The point handles an UNREGISTER without replying; give it a moment.
  let ids: string[] = []
  for (let i = 0; i < 50; i++) {
    ids = (await discover(a.node, pt.addr, NS)).registrations.map((r) => r.peerId)
    if (ids.length === 1) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  assert.deepEqual(ids, [a.node.peerId.toString()])
  assert.equal(pt.service.stats().requests.unregister, 2)
})

test('a point that serves the namespace itself appears first in DISCOVER, once', async (t) => {
  const pt = await point(t, { self: () => ({ namespaces: [NS] }) })
  const [a, c] = await Promise.all([peer(t), peer(t)])
  await registerSelf(a, pt.addr)
  const first = await discover(c.node, pt.addr, NS, { limit: 1 })
  assert.deepEqual(first.registrations.map((r) => r.peerId), [pt.node.peerId.toString()])
  assert.deepEqual(first.registrations[0].multiaddrs, bare(pt.node))
  const second = await discover(c.node, pt.addr, NS, { limit: 1, cookie: first.cookie })
  assert.deepEqual(second.registrations.map((r) => r.peerId), [a.node.peerId.toString()])
  assert.equal((await discover(c.node, pt.addr, NS, { cookie: second.cookie })).registrations.length, 0)
  assert.equal((await discover(c.node, pt.addr, 'not-served')).registrations.length, 0)
})

async function rawStream (from: TaskQueueNode, to: Multiaddr): Promise<{ send: (b: Uint8Array) => Promise<void>, ended: () => Promise<string> }> {
  const stream = await from.dialProtocol(to, RENDEZVOUS_PROTOCOL)
  const reader = new StreamReader(stream)
  return {
    send: async (b) => { await writeBytes(stream, b) },
    // Resolves with how the point ended the stream: it must reset it, not answer.
    ended: async () => {
      try {
        const msg = await readMessage(reader)
        return msg === null ? 'closed' : `message type ${msg.type}`
      } catch {
        return 'reset'
      }
    }
  }
}

test('malformed, oversize and out-of-protocol frames reset the stream and the point keeps serving', async (t) => {
  const pt = await point(t)
  const [a, c] = await Promise.all([peer(t), peer(t)])
  await registerSelf(a, pt.addr)
  const inputs: Array<[string, Uint8Array]> = [
    ['oversize prefix (2 MiB)', Uint8Array.of(0x80, 0x80, 0x80, 0x01, 0x00, 0x00)],
    ['garbage protobuf', encodeLengthPrefixed(Uint8Array.of(0x12, 0x05, 0x0a))],
    ['unterminated varint prefix', Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)],
    ['a response type sent to the point', encodeLengthPrefixed(encodeMessage({ type: MessageType.DISCOVER_RESPONSE, discoverResponse: { registrations: [], status: 0 } }))],
    ['unknown type', encodeLengthPrefixed(encodeMessage({ type: 77 }))]
  ]
  for (const [label, bytes] of inputs) {
    const s = await rawStream(c.node, pt.addr)
    await s.send(bytes)
    assert.equal(await s.ended(), 'reset', label)
  }
  assert.equal(pt.service.stats().requests.malformed, inputs.length)
  assert.equal((await discover(c.node, pt.addr, NS)).registrations.length, 1)
  assert.equal(pt.node.status, 'started')
})

test('several requests on one stream are answered in order', async (t) => {
  const pt = await point(t)
  const a = await peer(t)
  const record = await sealPeerRecord(a.key, a.node.getMultiaddrs())
  const stream = await a.node.dialProtocol(pt.addr, RENDEZVOUS_PROTOCOL)
  const reader = new StreamReader(stream)
  await writeBytes(stream, encodeLengthPrefixed(encodeMessage({ type: MessageType.REGISTER, register: { ns: NS, signedPeerRecord: record, ttl: 300 } })))
  await writeBytes(stream, encodeLengthPrefixed(encodeMessage({ type: MessageType.DISCOVER, discover: { ns: NS } })))
  const first = await readMessage(reader)
  const second = await readMessage(reader)
  await stream.close()
  assert.equal(first?.registerResponse?.ttl, 300)
  assert.equal(second?.discoverResponse?.registrations.length, 1)
})
