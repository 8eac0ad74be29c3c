/**
 * mDNS candidate handling without multicast: the address filter, the not_taskqueue
 * memory, and the discoverer driven by a stand-in mdns service that injects responders,
 * against real libp2p nodes on 127.0.0.1 (no packet leaves loopback).
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { PeerInfo } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { MulticastDNSComponents } from '@libp2p/mdns'
import {
  addrRank, classifyAddr, filterMdnsAddrs, mdnsDiscoverer, mdnsParts, findMdns, NotTaskQueueMemory, TaskQueueMdns, SILENT_GIVE_UP_MS
} from '../../src/discovery/mdns.js'
import type { MdnsLease } from '../../src/discovery/mdns.js'
import type { AttemptRecord, DiscoveryScope, ProbeResult } from '../../src/discovery/types.js'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import { MCP_PROTOCOL } from '../../src/protocol/ids.js'
import type { PeerLink } from '../../src/client/peer-link.js'

describe('mdns address filter', () => {
  it('classifies unspecified, link-local and loopback addresses', () => {
    assert.equal(classifyAddr('/ip4/0.0.0.0/tcp/1'), 'unspecified')
    assert.equal(classifyAddr('/ip6/::/tcp/1'), 'unspecified')
    assert.equal(classifyAddr('/ip6/0:0:0:0:0:0:0:0/tcp/1'), 'unspecified')
    assert.equal(classifyAddr('/ip4/169.254.3.4/tcp/1'), 'link-local')
    assert.equal(classifyAddr('/ip6/fe80::1/tcp/1'), 'link-local')
    assert.equal(classifyAddr('/ip6/febf::1/tcp/1'), 'link-local')
    assert.equal(classifyAddr('/ip6/fec0::1/tcp/1'), 'usable')
    assert.equal(classifyAddr('/ip4/127.0.0.1/tcp/1'), 'loopback')
    assert.equal(classifyAddr('/ip4/127.9.9.9/tcp/1'), 'loopback')
    assert.equal(classifyAddr('/ip6/::1/tcp/1'), 'loopback')
    assert.equal(classifyAddr('/ip6/::ffff:127.0.0.1/tcp/1'), 'loopback')
    assert.equal(classifyAddr('/ip4/10.77.0.2/tcp/1'), 'usable')
    assert.equal(classifyAddr('/ip4/192.168.1.5/tcp/1'), 'usable')
    assert.equal(classifyAddr('/dns4/example.lan/tcp/1'), 'usable')
  })

  it('drops what no other host can dial, keeps loopback only when allowed, puts IPv4 TCP first', () => {
    const input = [
      multiaddr('/ip6/fd00::5/tcp/4001'),
      multiaddr('/ip4/127.0.0.1/tcp/4001'),
      multiaddr('/ip4/0.0.0.0/tcp/4001'),
      multiaddr('/ip4/169.254.1.1/tcp/4001'),
      multiaddr('/ip6/fe80::1/tcp/4001'),
      multiaddr('/ip4/10.77.0.2/tcp/4001/ws'),
      multiaddr('/ip4/10.77.0.2/tcp/4001'),
      '/ip4/10.77.0.2/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'
    ]
    const strict = filterMdnsAddrs(input, false)
    assert.deepEqual(strict.usable, ['/ip4/10.77.0.2/tcp/4001', '/ip6/fd00::5/tcp/4001', '/ip4/10.77.0.2/tcp/4001/ws'])
    assert.deepEqual(strict.dropped.map((d) => d.reason).sort(), ['link-local', 'link-local', 'loopback', 'unspecified'])
    const lax = filterMdnsAddrs(input, true)
    assert.ok(lax.usable.includes('/ip4/127.0.0.1/tcp/4001'))
    assert.equal(lax.usable[0], '/ip4/127.0.0.1/tcp/4001', 'IPv4 TCP ranks first; equal ranks keep order')
    assert.deepEqual(filterMdnsAddrs([multiaddr('/ip4/127.0.0.1/tcp/1'), multiaddr('/ip6/::1/tcp/1')], false).usable, [], 'loopback-only responder has nothing usable')
    assert.equal(addrRank('/ip4/1.2.3.4/tcp/1/p2p/x/p2p-circuit'), 3)
  })
})

describe('not_taskqueue memory', () => {
  it('remembers a peer for 10 minutes, then forgets it', () => {
    let now = 1_000_000
    const m = new NotTaskQueueMemory(() => now)
    assert.equal(m.has('peerA'), false)
    m.mark('peerA')
    now += 9 * 60_000
    assert.equal(m.has('peerA'), true)
    assert.equal(m.has('peerB'), false)
    now += 60_000
    assert.equal(m.has('peerA'), false, 'expired at 10 min')
    assert.equal(m.size, 0)
    m.mark('peerB')
    m.clear()
    assert.equal(m.has('peerB'), false)
  })
})

/** An mdns service that never opens a socket: tests inject responders by hand. */
class FakeMdns extends TaskQueueMdns {
  leases = 0
  released = 0
  failWith: string | null = null
  override acquire (): MdnsLease {
    this.leases++
    const failed = this.failWith === null ? new Promise<string>(() => {}) : Promise.resolve(this.failWith)
    return { ready: Promise.resolve(this.failWith === null), failed, release: async () => { this.released++ } }
  }

  announce (info: PeerInfo): void {
    this.dispatchEvent(new CustomEvent<PeerInfo>('peer', { detail: info }))
  }
}

const quietLogger = {
  forComponent: () => Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
}

function fakeScope (signal: AbortSignal): { scope: DiscoveryScope, records: AttemptRecord[], probes: string[][] } {
  const records: AttemptRecord[] = []
  const probes: string[][] = []
  const base = { method: 'mdns' as const, ok: false, peer_id: '', multiaddr: '', response: null, elapsed_ms: 0 }
  const scope: DiscoveryScope = {
    method: 'mdns',
    signal,
    peerIdFilter: null,
    fail: (error, d = {}) => {
      const r: AttemptRecord = { ...base, error, peer_id: d.peer_id ?? '', multiaddr: d.multiaddr ?? '', source: d.source }
      records.push(r)
      return r
    },
    probe: async (addrs, source, expected): Promise<ProbeResult> => {
      probes.push(addrs)
      const r: AttemptRecord = { ...base, ok: true, error: '', peer_id: expected ?? '', multiaddr: addrs[0], source }
      records.push(r)
      return { ok: true, record: r, link: { close: () => {} } as unknown as PeerLink }
    }
  }
  return { scope, records, probes }
}

describe('mdns discoverer (stand-in mdns, loopback libp2p nodes)', () => {
  let client: TaskQueueNode
  let plain: TaskQueueNode
  let tq: TaskQueueNode
  let fake: FakeMdns

  before(async () => {
    client = await createTaskQueueNode({
      parts: [{ services: { mdns: (c: MulticastDNSComponents) => { fake = new FakeMdns({ addressManager: c.addressManager, logger: quietLogger } as unknown as MulticastDNSComponents, { role: 'client' }); return fake } } }]
    })
    plain = await createTaskQueueNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    tq = await createTaskQueueNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    await tq.handle(MCP_PROTOCOL, () => {})
  })
  after(async () => { await Promise.all([client.stop(), plain.stop(), tq.stop()]) })

  const info = (n: TaskQueueNode): PeerInfo => ({ id: n.peerId, multiaddrs: n.getMultiaddrs().map((a) => a.decapsulateCode(421)) })

  it('finds the capability on the node', () => {
    assert.ok(findMdns(client.services) instanceof TaskQueueMdns)
    assert.equal(findMdns({}), null)
    assert.ok(mdnsParts({ role: 'service' }).services?.mdns !== undefined)
  })

  it('records a non-TaskQueue responder as not_taskqueue, disconnects and remembers it; probes a TaskQueue one', async () => {
    const memory = new NotTaskQueueMemory()
    const d = mdnsDiscoverer({ enabled: true, node: async () => client, allowLoopback: true, maxAttemptsPerPoll: 4, memory })
    const ac = new AbortController()
    const { scope, records, probes } = fakeScope(ac.signal)
    const running = d.run(scope)
    await new Promise((resolve) => setTimeout(resolve, 50))
    fake.announce(info(client)) // self: ignored
    fake.announce(info(plain))
    await waitFor(() => records.some((r) => r.error === 'not_taskqueue'))
    const nt = records.find((r) => r.error === 'not_taskqueue') as AttemptRecord
    assert.equal(nt.peer_id, plain.peerId.toString())
    assert.match(nt.multiaddr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//, 'records the dialled address')
    assert.ok(memory.has(plain.peerId.toString()))
    await waitFor(() => client.getConnections(plain.peerId).length === 0)

    fake.announce(info(tq))
    const won = await running
    assert.ok(won !== null && won.ok)
    assert.equal(probes.length, 1)
    assert.match(probes[0][0], new RegExp(`/p2p/${tq.peerId.toString()}$`))
    assert.equal(records.filter((r) => r.peer_id === client.peerId.toString()).length, 0, 'self never recorded')
    assert.equal(fake.released, fake.leases, 'lease released')
    ac.abort()
  })

  it('does not dial a remembered peer again; concludes no_taskqueue_peers before the window ends', async () => {
    const memory = new NotTaskQueueMemory()
    memory.mark(plain.peerId.toString())
    const d = mdnsDiscoverer({ enabled: true, node: async () => client, allowLoopback: true, maxAttemptsPerPoll: 4, memory, windowMs: 800 })
    const { scope, records } = fakeScope(new AbortController().signal)
    const running = d.run(scope)
    await new Promise((resolve) => setTimeout(resolve, 50))
    fake.announce(info(plain))
    assert.equal(await running, null)
    assert.deepEqual(records.map((r) => [r.error, r.source]), [['not_taskqueue', 'mdns-cache'], ['no_taskqueue_peers', undefined]])
  })

  it('drops loopback-only responders unless allowed; ends quietly on abort with no responder', async () => {
    const d = mdnsDiscoverer({ enabled: true, node: async () => client, allowLoopback: false, maxAttemptsPerPoll: 4, memory: new NotTaskQueueMemory() })
    const ac = new AbortController()
    const { scope, records, probes } = fakeScope(ac.signal)
    const running = d.run(scope)
    await new Promise((resolve) => setTimeout(resolve, 50))
    fake.announce(info(tq))
    await new Promise((resolve) => setTimeout(resolve, 100))
    ac.abort(new Error('timeout'))
    assert.equal(await running, null)
    assert.equal(probes.length, 0)
    assert.deepEqual(records.map((r) => r.error), ['no_usable_address'], 'no timeout record of its own: the chain writes it')
  })

  it('gives up after two silent queries when nothing else could find a service, not before; waits its window otherwise', async () => {
    let nothingElse = true
    const d = mdnsDiscoverer({ enabled: true, node: async () => client, allowLoopback: true, maxAttemptsPerPoll: 4, memory: new NotTaskQueueMemory(), windowMs: 5000, giveUpWhenSilent: () => nothingElse })
    const quiet = fakeScope(new AbortController().signal)
    const t = performance.now()
    assert.equal(await d.run(quiet.scope), null)
    const took = performance.now() - t
    assert.ok(took >= SILENT_GIVE_UP_MS - 50 && took < 4000, `ended after ${Math.round(took)} ms, not at the 5 s window`)
    assert.deepEqual(quiet.records.map((r) => r.error), ['timeout'], 'discovery.md §7: timeout = no responder')

    // Something else is configured: the step keeps listening for its whole window.
    nothingElse = false
    const ac = new AbortController()
    const configured = fakeScope(ac.signal)
    const running = d.run(configured.scope)
    await new Promise((resolve) => setTimeout(resolve, SILENT_GIVE_UP_MS + 300))
    assert.deepEqual(configured.records, [], 'still running past the silent give-up')
    // A responder heard before the give-up is always followed up.
    nothingElse = true
    fake.announce(info(tq))
    const won = await running
    assert.ok(won !== null && won.ok)
    ac.abort()
  })

  it('reports mdns_unavailable and disabled', async () => {
    fake.failWith = 'EADDRINUSE (bind EADDRINUSE 0.0.0.0:5353)'
    try {
      const d = mdnsDiscoverer({ enabled: true, node: async () => client, allowLoopback: false, maxAttemptsPerPoll: 4 })
      const { scope, records } = fakeScope(new AbortController().signal)
      assert.equal(await d.run(scope), null)
      assert.deepEqual(records.map((r) => r.error), ['mdns_unavailable: EADDRINUSE (bind EADDRINUSE 0.0.0.0:5353)'])
    } finally {
      fake.failWith = null
    }
    const bare = mdnsDiscoverer({ enabled: true, node: async () => plain, allowLoopback: false, maxAttemptsPerPoll: 4 })
    const { scope, records } = fakeScope(new AbortController().signal)
    assert.equal(await bare.run(scope), null)
    assert.match(records[0].error, /^mdns_unavailable: /)
    assert.equal(mdnsDiscoverer({ enabled: false, node: async () => client, allowLoopback: false, maxAttemptsPerPoll: 4 }).skipReason(), 'disabled')
  })
})

async function waitFor (cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
