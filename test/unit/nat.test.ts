/**
 * NAT building blocks without a network: address classification (must agree with
 * libp2p's), the AutoNAT / DCUtR codecs, the announce filter and the doctor's verdicts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { ipPortOf, isCircuitAddr, isPrivateIp, isPublicTcpAddr } from '../../src/nat/addrs.js'
import { AutoNatStatus, HolePunchType, decodeAutoNat, decodeHolePunch, encodeAutoNat, encodeHolePunch } from '../../src/nat/pb.js'
import { reachableAnnounceFilter } from '../../src/nat/parts.js'
import { clientVerdict, serviceVerdict } from '../../src/nat/diagnose.js'
import type { PeerCheck, ServiceFacts } from '../../src/nat/diagnose.js'

test('private ranges match libp2p: RFC 1918, CGNAT, TEST-NETs private; the test WAN range public', () => {
  for (const ip of ['10.1.0.2', '172.16.5.4', '192.168.1.1', '100.64.0.1', '127.0.0.1', '203.0.113.7', '198.51.100.1', '192.0.2.1', '198.19.0.1', '::1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1']) {
    assert.equal(isPrivateIp(ip), true, ip)
  }
  for (const ip of ['203.0.114.2', '8.8.8.8', '100.128.0.1', '172.32.0.1', '2001:db9::1', '::ffff:8.8.8.8']) {
    assert.equal(isPrivateIp(ip), false, ip)
  }
})

test('address helpers', () => {
  const relayed = '/ip4/203.0.114.2/tcp/9710/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit'
  assert.equal(isCircuitAddr(relayed), true)
  assert.equal(isPublicTcpAddr(relayed), false)
  assert.equal(isPublicTcpAddr('/ip4/203.0.114.3/tcp/9711'), true)
  assert.equal(isPublicTcpAddr('/ip4/10.1.0.2/tcp/9710'), false)
  assert.deepEqual(ipPortOf('/ip6/::1/tcp/5'), { family: 6, ip: '::1', port: 5 })
  assert.equal(ipPortOf('/dns4/example.com/tcp/1'), null)
})

test('AutoNAT messages round-trip', () => {
  const peerId = Uint8Array.from([0, 36, 8, 1, 18, 32, ...new Array(32).fill(7)])
  const addrs = [multiaddr('/ip4/203.0.114.11/tcp/9710').bytes]
  const dial = decodeAutoNat(encodeAutoNat({ dial: { peerId, addrs } }))
  assert.deepEqual(dial.dial?.peerId, peerId)
  assert.deepEqual(dial.dial?.addrs, addrs)
  const resp = decodeAutoNat(encodeAutoNat({ dialResponse: { status: AutoNatStatus.E_DIAL_ERROR, statusText: 'no route', addr: addrs[0] } }))
  assert.deepEqual(resp.dialResponse, { status: AutoNatStatus.E_DIAL_ERROR, statusText: 'no route', addr: addrs[0] })
  // A wire detail other implementations rely on: field 1 is the type, DIAL = 0.
  assert.deepEqual([...encodeAutoNat({ dial: { peerId: new Uint8Array([1]), addrs: [] } }).subarray(0, 2)], [0x08, 0x00])
})

test('DCUtR messages round-trip with the spec type values', () => {
  const addrs = [multiaddr('/ip4/203.0.114.12/tcp/40002').bytes]
  const bytes = encodeHolePunch({ type: HolePunchType.CONNECT, addrs })
  assert.deepEqual([...bytes.subarray(0, 2)], [0x08, 100])
  assert.deepEqual(decodeHolePunch(bytes), { type: HolePunchType.CONNECT, addrs })
  assert.equal(decodeHolePunch(encodeHolePunch({ type: HolePunchType.SYNC, addrs: [] })).type, 300)
  // Malformed input is refused, never half-read: a bytes field where the type belongs, a cut-off field.
  assert.throws(() => decodeHolePunch(Uint8Array.from([0x0a, 0x05, 1])))
  assert.throws(() => decodeHolePunch(Uint8Array.from([0x12, 0x05, 1])))
})

/** Bytes the hand-written codecs produced before protons generated them: the wire must not move. */
test('AutoNAT and DCUtR bytes are exactly the golden bytes', () => {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
  const peerId = Uint8Array.from([0, 36, 8, 1, 18, 32, ...new Array(32).fill(7)])
  const a1 = Uint8Array.from([4, 203, 0, 114, 11, 6, 0x25, 0xe6])
  const a2 = Uint8Array.from([4, 10, 0, 0, 2, 6, 0x25, 0xe6])
  const golden: Array<[Uint8Array, string]> = [
    [encodeAutoNat({ dial: { peerId, addrs: [a1, a2] } }), '0800123e0a3c0a260024080112200707070707070707070707070707070707070707070707070707070707070707120804cb00720b0625e61208040a0000020625e6'],
    [encodeAutoNat({ dial: { peerId: new Uint8Array([1]), addrs: [] } }), '080012050a030a0101'],
    [encodeAutoNat({ dialResponse: { status: AutoNatStatus.OK, statusText: '', addr: a1 } }), '08011a0e080012001a0804cb00720b0625e6'],
    [encodeAutoNat({ dialResponse: { status: AutoNatStatus.E_DIAL_ERROR, statusText: 'no route' } }), '08011a0c086412086e6f20726f757465'],
    [encodeHolePunch({ type: HolePunchType.CONNECT, addrs: [a1, a2] }), '0864120804cb00720b0625e61208040a0000020625e6'],
    [encodeHolePunch({ type: HolePunchType.SYNC, addrs: [] }), '08ac02']
  ]
  for (const [bytes, want] of golden) assert.equal(hex(bytes), want)
  assert.deepEqual(decodeAutoNat(new Uint8Array(Buffer.from(golden[0][1], 'hex'))), { dial: { peerId, addrs: [a1, a2] } })
  assert.deepEqual(decodeAutoNat(new Uint8Array(Buffer.from(golden[2][1], 'hex'))), { dialResponse: { status: AutoNatStatus.OK, statusText: '', addr: a1 } })
})

test('announce filter: private reachability keeps circuits and LAN addresses only; relay loopback circuits never', () => {
  const relay = '/ip4/203.0.114.2/tcp/9710/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit'
  const addrs = [relay, '/ip4/10.1.0.2/tcp/9710', '/ip4/203.0.114.11/tcp/9710', relay.replace('203.0.114.2', '127.0.0.1')].map((a) => multiaddr(a))
  let state: 'unknown' | 'public' | 'private' = 'private'
  const filter = reachableAnnounceFilter(() => state)
  assert.deepEqual(filter(addrs).map(String), [relay, '/ip4/10.1.0.2/tcp/9710'])
  state = 'public'
  assert.equal(filter(addrs).length, 3)
})

const peer = (over: Partial<PeerCheck> = {}): PeerCheck => ({
  addr: '/ip4/203.0.114.2/tcp/9710/p2p/R', role: 'BOOTSTRAP_PEERS', peer_id: 'R', reachable: true, error: '', hop: true, rendezvous: true, dht: true, taskqueue: false, elapsed_ms: 3, ...over
})
const facts = (over: Partial<ServiceFacts> = {}): ServiceFacts => ({
  running: true, port: 9710, reachability: 'private', relayEnabled: false, reservations: [], holepunch: false, peers: [peer()], announced: [], ...over
})

test('service verdicts name the fix', () => {
  const v = serviceVerdict(facts())
  assert.equal(v.code, 'nat_no_relay')
  assert.equal(v.text, 'behind NAT with no relay: clients outside your LAN cannot reach this service')
  assert.equal(v.fix, 'set RELAY=1 and BOOTSTRAP_PEERS=/ip4/203.0.114.2/tcp/9710/p2p/R, or forward TCP port 9710 to this host')
  assert.equal(serviceVerdict(facts({ reachability: 'public' })).code, 'public')
  assert.equal(serviceVerdict(facts({ relayEnabled: true, reservations: [{ relay_peer_id: 'R', addr: 'x' }] })).code, 'relayed')
  assert.equal(serviceVerdict(facts({ relayEnabled: true, peers: [peer({ reachable: false, error: 'ECONNREFUSED' })] })).code, 'relay_unreachable')
  assert.equal(serviceVerdict(facts({ relayEnabled: true, peers: [peer({ hop: false })] })).code, 'no_hop_peer')
  assert.equal(serviceVerdict(facts({ relayEnabled: true, peers: [] })).code, 'relay_without_peers')
  assert.equal(serviceVerdict(facts({ running: false })).code, 'service_not_running')
  assert.equal(serviceVerdict(facts({ reachability: 'unknown', peers: [] })).code, 'lan_only')
  const noPeer = serviceVerdict(facts({ peers: [] }))
  assert.ok(noPeer.fix.includes('<relay multiaddr>'))
  for (const f of [facts(), facts({ relayEnabled: true, peers: [] }), facts({ running: false })]) assert.equal(serviceVerdict(f).ok, false)
})

test('client verdicts', () => {
  const base = { found: true, method: 'dht', connection: 'relayed' as const, serviceReach: 'private', bootstrapConfigured: true, mdns: false, peers: [peer()], holepunch: false, error: '' }
  assert.equal(clientVerdict(base).code, 'relayed')
  assert.equal(clientVerdict({ ...base, connection: 'direct' }).code, 'direct')
  assert.equal(clientVerdict({ ...base, found: false }).code, 'not_found')
  assert.equal(clientVerdict({ ...base, found: false, peers: [peer({ reachable: false, error: 'timeout' })] }).code, 'bootstrap_unreachable')
  assert.equal(clientVerdict({ ...base, found: false, bootstrapConfigured: false, peers: [] }).code, 'nothing_to_search')
})
