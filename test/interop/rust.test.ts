/**
 * Interop with rust-libp2p (test/interop/rust, crates pinned by its Cargo.lock): TCP +
 * Noise + Yamux, identify, TaskQueue's MCP++ framing, and rendezvous (`/rendezvous/1.0.0`,
 * signed peer records, cookies), both directions; Kademlia provider records and circuit relay
 * v2, both directions (helpers/reference-cases.ts, the cases go.test.ts runs against go-libp2p);
 * between real processes on loopback.
 */
import { after, describe, it } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import type { Daemon } from '../helpers/procs.js'
import { startGoPeer } from './helpers/go-peer.js'
import type { GoPeer } from './helpers/go-peer.js'
import { RUST_PEER, describeCircuitRelay, describeKadProviders, peerBinary, until } from './helpers/reference-cases.js'

type Obj = Record<string, any>
const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'

function rustPeer (t: TestContext): string | null {
  return peerBinary(t, RUST_PEER)
}

describe('rust-libp2p: transport, identify and MCP++', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  it('their client identifies our service and calls status and the cache over one MCP++ stream', async (t) => {
    const bin = rustPeer(t)
    if (bin === null) return
    const box = sandbox()
    cleanups.push(box.cleanup)
    const svc = await startDaemon('serve', ['--enable-cache'], box.env)
    cleanups.push(async () => { await svc.stop() })
    const key = 'rust-interop'
    const ops = [{ op: 'status' }, { op: 'cache.set', key, value: { s: 'grüße ✓' }, ttl_s: 60 }, { op: 'cache.get', key }]
    const caller = await startGoPeer(bin, 'call', ['--addr', svc.multiaddr, '--ops', JSON.stringify(ops)], { name: RUST_PEER.name })
    cleanups.push(async () => await caller.stop())
    const identify = await caller.value('identify', 40_000) as Obj
    assert.equal(identify.peer_id, svc.peerId, JSON.stringify(identify) + caller.stderr())
    assert.match(String(identify.agent_version), /js-libp2p/)
    // The legacy protocol is served only when enabled (wire-protocol.md §1).
    for (const p of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/mcp+p2p/1.0.0']) assert.ok(identify.protocols.includes(p), `identify lists ${p}: ${JSON.stringify(identify.protocols)}`)
    const replies = await caller.value('replies', 40_000) as Obj[]
    assert.ok(Array.isArray(replies), JSON.stringify(replies) + caller.stderr())
    assert.equal(replies[0].ok, true, JSON.stringify(replies[0]))
    assert.equal(replies[0].peer_id, svc.peerId)
    assert.equal(replies[1].ok, true, JSON.stringify(replies[1]))
    assert.deepEqual([replies[2].ok, replies[2].hit, replies[2].value], [true, true, { s: 'grüße ✓' }], JSON.stringify(replies[2]))
  })

  it('our client calls status on their node over MCP++, and their node identifies ours', async (t) => {
    const bin = rustPeer(t)
    if (bin === null) return
    const server = await startGoPeer(bin, 'serve', [], { name: RUST_PEER.name })
    cleanups.push(async () => await server.stop())
    const box = sandbox()
    cleanups.push(box.cleanup)
    const r = await runRpc(['status', '--multiaddr', server.multiaddr], { ...box.env, [`${P}ANNOUNCE_FILE`]: '0' })
    assert.equal(r.code, 0, r.stdout + r.stderr + server.stderr())
    assert.equal(r.json?.peer_id, server.peerId)
    assert.ok((server.values('served') as Obj[]).some((s) => s.op === 'status'), JSON.stringify(server.values('served')))
    // p2p-rpc closes its connection as soon as it has the reply, which can beat their
    // identify request to us; the library client keeps it open until they have our answer.
    const rq = new RemoteQueue({ multiaddr: server.multiaddr, env: { ...box.env, [`${P}ANNOUNCE_FILE`]: '0' }, addressBookPath: null })
    cleanups.push(async () => { await rq.close() })
    assert.equal((await rq.status()).peer_id, server.peerId)
    const identify = await server.value('identify', 10_000) as Obj
    const served = server.values('served') as Obj[]
    assert.ok(served.some((s) => s.peer_id === identify.peer_id), `the peer it identified is one that called: ${JSON.stringify(identify)} ${JSON.stringify(served)}`)
    assert.match(String(identify.agent_version), /js-libp2p/)
  })
})

/**
 * libp2p-rendezvous (0.17.1; 0.18.0 is the same) signs and verifies peer records under rust's
 * legacy domain `libp2p-routing-state` / payload type `/libp2p/routing-state-record`, not
 * RFC 0003's `libp2p-peer-record` / 0x0301 (rust-libp2p#6204; the reading side is PR #6384,
 * open). Ours accepts their records (src/discovery/rendezvous/record.ts); theirs cannot read
 * ours. These cases prove what crosses and pin down exactly how the rest fails.
 */
describe('rust-libp2p rendezvous (signed peer records, cookies, TTL)', () => {
  const NS = 'interop-rust-rendezvous'
  const cleanups: Array<() => Promise<void> | void> = []
  after(async () => {
    for (const c of cleanups.reverse()) await c()
  })

  async function ourPoint (servedNs: string): Promise<Daemon> {
    const box = sandbox({ [`${P}RENDEZVOUS`]: '1', [`${P}RENDEZVOUS_NS`]: servedNs })
    cleanups.push(box.cleanup)
    const point = await startDaemon('serve', [], box.env)
    cleanups.push(async () => { await point.stop() })
    return point
  }

  async function theirs (bin: string, role: string, args: string[]): Promise<GoPeer> {
    const peer = await startGoPeer(bin, role, args, { name: RUST_PEER.name })
    cleanups.push(async () => await peer.stop())
    return peer
  }

  it('their client registers at our point, discovers its own record there with its TTL, and our cookie brings nothing new', async (t) => {
    const bin = rustPeer(t)
    if (bin === null) return
    // The point serves another namespace, so NS pages hold only rust-format records (see the next case).
    const point = await ourPoint(`${NS}-point`)
    const client = await theirs(bin, 'rendezvous-client', ['--point', point.multiaddr, '--ns', NS, '--register', '--discover'])
    const reg = await client.value('register', 40_000) as Obj
    assert.deepEqual([reg.ok, reg.namespace, reg.ttl], [true, NS, 7200], JSON.stringify(reg) + client.stderr())
    const found = await client.value('discovered', 20_000) as Obj
    assert.equal(found.ok, true, JSON.stringify(found))
    const mine = (found.registrations as Obj[]).find((r) => r.peer_id === client.peerId)
    assert.ok(mine !== undefined, `its own registration: ${JSON.stringify(found)}`)
    assert.deepEqual(mine.addrs, [client.multiaddr.replace(`/p2p/${client.peerId}`, '')], JSON.stringify(mine))
    assert.ok(mine.ttl > 7100 && mine.ttl <= 7200, `remaining ttl: ${JSON.stringify(mine)}`)
    assert.ok(found.cookie_bytes > 0, JSON.stringify(found))
    const again = await client.value('discovered_with_cookie', 20_000) as Obj
    assert.deepEqual([again.ok, again.registrations?.length], [true, 0], `with our cookie, only what is new: ${JSON.stringify(again)}`)
  })

  it('known difference: their client cannot read a DISCOVER page that holds an RFC 0003 record (our point\'s own)', async (t) => {
    const bin = rustPeer(t)
    if (bin === null) return
    const point = await ourPoint(NS)
    const client = await theirs(bin, 'rendezvous-client', ['--point', point.multiaddr, '--ns', NS, '--discover'])
    const found = await client.value('discovered', 40_000) as Obj
    // libp2p-rendezvous fails the whole response on the first record it cannot verify.
    assert.deepEqual(found, { ok: false, error: 'Unavailable' }, JSON.stringify(found) + client.stderr())
  })

  it('our client finds their client through their point and calls it over MCP++', async (t) => {
    const bin = rustPeer(t)
    if (bin === null) return
    const point = await theirs(bin, 'rendezvous-point', [])
    const client = await theirs(bin, 'rendezvous-client', ['--point', point.multiaddr, '--ns', NS, '--register', '--serve'])
    const reg = await client.value('register', 40_000) as Obj
    assert.equal(reg.ok, true, JSON.stringify(reg) + client.stderr())
    assert.equal((await point.value('registered', 10_000) as Obj).peer_id, client.peerId)
    const box = sandbox({ [`${P}RENDEZVOUS`]: '1', [`${P}RENDEZVOUS_NS`]: NS, [`${P}RENDEZVOUS_POINTS`]: point.multiaddr })
    cleanups.push(box.cleanup)
    const r = await runRpc(['discover', '--timeout', '15'], { ...box.env, [`${P}ANNOUNCE_FILE`]: '0' })
    const rv = (r.json?.attempts as Obj[] | undefined ?? []).filter((a) => a.method === 'rendezvous')
    assert.ok(rv.some((a) => a.ok === true && a.peer_id === client.peerId), `found through their point: ${r.stdout}${r.stderr}`)
    assert.equal((r.json?.result as Obj | undefined)?.peer_id, client.peerId, r.stdout)
    assert.ok((client.values('served') as Obj[]).some((s) => s.op === 'status'), 'our client called it')
  })

  it('known difference: their point cannot decode our REGISTER (RFC 0003 record), so our service is not listed there', async (t) => {
    const bin = rustPeer(t)
    if (bin === null) return
    const point = await theirs(bin, 'rendezvous-point', [])
    const box = sandbox({ [`${P}RENDEZVOUS`]: '1', [`${P}RENDEZVOUS_NS`]: NS, [`${P}RENDEZVOUS_POINTS`]: point.multiaddr })
    cleanups.push(box.cleanup)
    const svc = await startDaemon('serve', [], box.env)
    cleanups.push(async () => { await svc.stop() })
    await until(`${svc.peerId} connected to their point`, 30_000, async () => (point.values('connected') as Obj[]).find((c) => c.peer_id === svc.peerId) ?? null)
    // Our registrar sends REGISTER as soon as it is connected; give it time to be read.
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const probe = await theirs(bin, 'rendezvous-client', ['--point', point.multiaddr, '--ns', NS, '--discover'])
    const found = await probe.value('discovered', 40_000) as Obj
    assert.deepEqual([found.ok, found.registrations], [true, []], JSON.stringify(found))
    assert.deepEqual(point.values('registered'), [], 'their point registered nobody')
  })
})

describeKadProviders(RUST_PEER)

describeCircuitRelay(RUST_PEER)
