import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { FrameTooLargeError, StreamReader, TruncatedFrameError } from '../../src/protocol/framing.js'
import {
  MessageType, RendezvousProtocolError, ResponseStatus, decodeMessage, encodeMessage, encodeLengthPrefixed,
  readLengthPrefixed, sealPeerRecord, verifySignedPeerRecord, InvalidPeerRecordError, recordAddresses, statusName
} from '../../src/discovery/rendezvous/index.js'
import { RUST_LEGACY_PEER_RECORD } from '../../src/discovery/rendezvous/record.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

test('field numbers match the spec proto (hand-built vectors)', () => {
  // Message{type=DISCOVER(3) [f1 varint], discover [f5] {ns="a" [f1], limit=5 [f2], cookie=0x01 [f3]}}
  const discover = encodeMessage({ type: MessageType.DISCOVER, discover: { ns: 'a', limit: 5, cookie: Uint8Array.of(1) } })
  assert.equal(hex(discover), '0803' + '2a08' + '0a0161' + '1005' + '1a0101')
  // Message{type=REGISTER_RESPONSE(1), registerResponse [f3] {status=E_INVALID_TTL(102) [f1], statusText="x" [f2], ttl=120 [f3]}}
  const rr = encodeMessage({ type: MessageType.REGISTER_RESPONSE, registerResponse: { status: 102, statusText: 'x', ttl: 120 } })
  assert.equal(hex(rr), '0801' + '1a07' + '0866' + '120178' + '1878')
  // Message{type=REGISTER(0), register [f2] {ns="n" [f1], signedPeerRecord=0xff [f2], ttl=7200 [f3]}}
  const reg = encodeMessage({ type: MessageType.REGISTER, register: { ns: 'n', signedPeerRecord: Uint8Array.of(0xff), ttl: 7200 } })
  assert.equal(hex(reg), '0800' + '1209' + '0a016e' + '1201ff' + '18a038')
  // Message{type=UNREGISTER(2), unregister [f4] {ns="n"}}
  assert.equal(hex(encodeMessage({ type: MessageType.UNREGISTER, unregister: { ns: 'n' } })), '0802' + '2203' + '0a016e')
  // DiscoverResponse [f6] {registrations [f1], cookie [f2], status [f3], statusText [f4]}
  const dr = encodeMessage({ type: MessageType.DISCOVER_RESPONSE, discoverResponse: { registrations: [{ ns: 'n' }], cookie: Uint8Array.of(7), status: 0, statusText: '' } })
  assert.equal(hex(dr), '0804' + '320c' + '0a03' + '0a016e' + '120107' + '1800' + '2200')
})

test('decoding hand-built vectors: the spec field numbers, unknown statuses and types kept, huge counts saturate', () => {
  const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'))
  // DiscoverResponse [f6] {registrations [f1] {ns="n", signedPeerRecord=0xff, ttl=7200}, cookie=0x07, status=OK}
  assert.deepEqual(decodeMessage(bytes('0804' + '3210' + '0a09' + '0a016e' + '1201ff' + '18a038' + '120107' + '1800')), {
    type: MessageType.DISCOVER_RESPONSE,
    discoverResponse: { registrations: [{ ns: 'n', signedPeerRecord: Uint8Array.of(0xff), ttl: 7200 }], cookie: Uint8Array.of(7), status: ResponseStatus.OK }
  })
  // RegisterResponse [f3] {status=999}: outside the spec, kept as its number (statusName: E_UNKNOWN_999)
  assert.deepEqual(decodeMessage(bytes('0801' + '1a03' + '08e707')), { type: MessageType.REGISTER_RESPONSE, registerResponse: { status: 999 } })
  // An unknown type decodes; the point refuses it as a protocol violation, not the codec.
  assert.deepEqual(decodeMessage(bytes('084d')), { type: 77 })
  // Register [f2] {ttl=2^63}: a valid uint64 past 2^53 saturates (and the point refuses it as E_INVALID_TTL)
  assert.deepEqual(decodeMessage(bytes('0800' + '120b' + '18' + '80808080808080808001')), { type: MessageType.REGISTER, register: { ttl: Number.MAX_SAFE_INTEGER } })
  // Discover [f5] {ns="é" (UTF-8 c3a9), limit=300}
  assert.deepEqual(decodeMessage(bytes('0803' + '2a07' + '0a02c3a9' + '10ac02')), { type: MessageType.DISCOVER, discover: { ns: 'é', limit: 300 } })
  // Negative and fractional counts are sent as the spec's non-negative integers.
  assert.equal(hex(encodeMessage({ type: MessageType.DISCOVER, discover: { limit: -5 } })), '0803' + '2a02' + '1000')
  assert.equal(hex(encodeMessage({ type: MessageType.REGISTER, register: { ttl: 7.9 } })), '0800' + '1202' + '1807')
  // The frame: an unsigned varint of the body's length (300 = ac02).
  assert.equal(hex(encodeLengthPrefixed(new Uint8Array(300)).subarray(0, 2)), 'ac02')
})

test('decode(encode(m)) round-trips every message type', () => {
  const messages = [
    { type: MessageType.REGISTER, register: { ns: 'ns', signedPeerRecord: Uint8Array.of(1, 2, 3), ttl: 259200 } },
    { type: MessageType.REGISTER_RESPONSE, registerResponse: { status: ResponseStatus.E_NOT_AUTHORIZED, statusText: 'no', ttl: 0 } },
    { type: MessageType.UNREGISTER, unregister: { ns: 'ns', id: Uint8Array.of(9) } },
    { type: MessageType.DISCOVER, discover: { ns: 'ns', limit: 1000, cookie: Uint8Array.of(4, 5) } },
    { type: MessageType.DISCOVER_RESPONSE, discoverResponse: { registrations: [{ ns: 'a', signedPeerRecord: Uint8Array.of(1), ttl: 5 }, { ns: 'b', ttl: 6 }], cookie: Uint8Array.of(8), status: 0, statusText: 'ok' } }
  ]
  for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m)
})

test('unknown fields are skipped; absent type reads as REGISTER', () => {
  // field 15 varint 1, then field 5 discover {ns="z"}
  const bytes = Uint8Array.from([0x78, 0x01, 0x2a, 0x03, 0x0a, 0x01, 0x7a])
  assert.deepEqual(decodeMessage(bytes), { type: MessageType.REGISTER, discover: { ns: 'z' } })
})

test('malformed bytes give RendezvousProtocolError, never anything else', () => {
  const bad = [
    Uint8Array.of(0x12, 0x05, 0x0a), // nested length past the end
    Uint8Array.of(0x08), // truncated varint
    Uint8Array.of(0x0a, 0x01), // type with wrong wire type, truncated
    Uint8Array.of(0x00, 0x01), // field number 0
    Uint8Array.of(0x2a, 0x02, 0x0a, 0x05), // inner string overruns its message
    Uint8Array.of(0x0f), // wire type 7
    Uint8Array.of(0x2a, 0x02, 0x10, 0x80), // inner varint runs off its message
    new Uint8Array(100_000).fill(0x0b) // deeply nested groups
  ]
  for (const b of bad) assert.throws(() => decodeMessage(b), RendezvousProtocolError, hex(b))
  // Fuzz: random inputs may decode or fail, but only with our error type.
  let seed = 42
  const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed }
  for (let i = 0; i < 2000; i++) {
    const b = Uint8Array.from({ length: rand() % 40 }, () => rand() & 0xff)
    try { decodeMessage(b) } catch (err) { assert.ok(err instanceof RendezvousProtocolError, `${hex(b)}: ${String(err)}`) }
  }
})

function sourceOf (chunks: Uint8Array[], onExtraPull: () => void): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => {
      let i = 0
      return {
        next: async () => {
          if (i < chunks.length) return { done: false, value: chunks[i++] }
          onExtraPull()
          return { done: true, value: undefined }
        }
      }
    }
  }
}

test('oversize frame is refused from its prefix, before the body is read', async () => {
  let pulledBeyondPrefix = false
  // varint(2 MiB) = 0x80 0x80 0x80 0x01
  const reader = new StreamReader(sourceOf([Uint8Array.of(0x80, 0x80, 0x80, 0x01)], () => { pulledBeyondPrefix = true }))
  await assert.rejects(readLengthPrefixed(reader, 1024 * 1024), FrameTooLargeError)
  assert.equal(pulledBeyondPrefix, false)
  const overlong = new StreamReader(sourceOf([Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x00)], () => {}))
  await assert.rejects(readLengthPrefixed(overlong, 1024 * 1024), /varint/)
  const truncated = new StreamReader(sourceOf([encodeLengthPrefixed(Uint8Array.of(1, 2, 3)).subarray(0, 3)], () => {}))
  await assert.rejects(readLengthPrefixed(truncated), TruncatedFrameError)
  const exact = new StreamReader(sourceOf([encodeLengthPrefixed(new Uint8Array(300).fill(7))], () => {}))
  assert.equal((await readLengthPrefixed(exact))?.byteLength, 300)
  assert.equal(await readLengthPrefixed(exact), null)
})

test('signed peer records verify, and a record naming another peer does not', async () => {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  const bytes = await sealPeerRecord(key, [multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${id}`), multiaddr('/ip4/127.0.0.1/tcp/4001')])
  const verified = await verifySignedPeerRecord(bytes)
  assert.equal(verified.peerId.toString(), id)
  assert.deepEqual(verified.multiaddrs.map(String), ['/ip4/127.0.0.1/tcp/4001'])
  const tampered = Uint8Array.from(bytes)
  tampered[tampered.length - 1] ^= 0xff
  await assert.rejects(verifySignedPeerRecord(tampered), InvalidPeerRecordError)
  await assert.rejects(verifySignedPeerRecord(Uint8Array.of(1, 2, 3)), InvalidPeerRecordError)
  const circuit = recordAddresses([multiaddr(`/ip4/1.2.3.4/tcp/1/p2p/${id}/p2p-circuit/p2p/${id}`)])
  assert.deepEqual(circuit.map(String), [`/ip4/1.2.3.4/tcp/1/p2p/${id}/p2p-circuit`])
})

test("rust-libp2p's legacy peer records (libp2p-routing-state) verify under their own domain only", async () => {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key)
  const record = new PeerRecord({ peerId, multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/4001')] })
  // The same PeerRecord payload as rust's `PeerRecord::new` signs it, and both cross-overs.
  const sealed = async (domain: string, codec: Uint8Array): Promise<Uint8Array> =>
    (await RecordEnvelope.seal({ domain, codec, marshal: () => record.marshal(), equals: () => false }, key)).marshal()
  const legacy = await verifySignedPeerRecord(await sealed(RUST_LEGACY_PEER_RECORD.domain, RUST_LEGACY_PEER_RECORD.payloadType))
  assert.deepEqual([legacy.peerId.toString(), legacy.multiaddrs.map(String), legacy.format], [peerId.toString(), ['/ip4/127.0.0.1/tcp/4001'], 'rust-legacy'])
  assert.equal((await verifySignedPeerRecord(await sealPeerRecord(key, record.multiaddrs))).format, 'standard')
  await assert.rejects(verifySignedPeerRecord(await sealed(PeerRecord.DOMAIN, RUST_LEGACY_PEER_RECORD.payloadType)), InvalidPeerRecordError)
  await assert.rejects(verifySignedPeerRecord(await sealed(RUST_LEGACY_PEER_RECORD.domain, PeerRecord.CODEC)), InvalidPeerRecordError)
  await assert.rejects(verifySignedPeerRecord(await sealed(RUST_LEGACY_PEER_RECORD.domain, new TextEncoder().encode('/other/record'))), InvalidPeerRecordError)
})

test('statusName maps spec codes and keeps unknown ones', () => {
  assert.equal(statusName(103), 'E_INVALID_COOKIE')
  assert.equal(statusName(999), 'E_UNKNOWN_999')
})
