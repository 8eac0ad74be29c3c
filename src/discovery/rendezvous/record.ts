/**
 * Signed peer records as rendezvous carries them: an Envelope (domain
 * `libp2p-peer-record`, payload type 0x0301) whose payload is a PeerRecord. A record is
 * only trusted when the signature verifies AND the record names the key that signed it.
 *
 * rust-libp2p (libp2p-core's `PeerRecord::new`, used by libp2p-rendezvous 0.17 and 0.18)
 * signs the same PeerRecord payload under its legacy domain `libp2p-routing-state` with
 * payload type `/libp2p/routing-state-record` (rust-libp2p#6204). We accept that variant
 * too (README "Interoperability"): its signature is still verified, under its own
 * domain, so domain separation holds; we never produce it.
 */
import { PeerRecord, RecordEnvelope } from '@libp2p/peer-record'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const CODE_P2P = 421

export class InvalidPeerRecordError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidPeerRecordError'
  }
}

export interface VerifiedPeerRecord {
  peerId: PeerId
  multiaddrs: Multiaddr[]
  seqNumber: bigint
  /** `standard` (RFC 0003) or rust-libp2p's `rust-legacy` domain and payload type. */
  format: PeerRecordFormat
}

export type PeerRecordFormat = 'standard' | 'rust-legacy'

/** rust-libp2p's pre-RFC-0003 envelope constants (libp2p-core `peer_record.rs`). */
export const RUST_LEGACY_PEER_RECORD = {
  domain: 'libp2p-routing-state',
  payloadType: new TextEncoder().encode('/libp2p/routing-state-record')
} as const

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i])
}

/** Throws InvalidPeerRecordError unless `bytes` is a well-signed, self-consistent peer record. */
export async function verifySignedPeerRecord (bytes: Uint8Array): Promise<VerifiedPeerRecord> {
  let envelope: RecordEnvelope
  try {
    envelope = RecordEnvelope.createFromProtobuf(bytes)
  } catch (err) {
    throw new InvalidPeerRecordError(`envelope is malformed: ${err instanceof Error ? err.message : String(err)}`)
  }
  // The payload type names the format, and the format fixes the one domain the signature may be under.
  const format: PeerRecordFormat | null = sameBytes(envelope.payloadType, PeerRecord.CODEC)
    ? 'standard'
    : sameBytes(envelope.payloadType, RUST_LEGACY_PEER_RECORD.payloadType) ? 'rust-legacy' : null
  if (format === null) throw new InvalidPeerRecordError('envelope payload is not a peer record')
  let valid: boolean
  try {
    valid = await envelope.validate(format === 'standard' ? PeerRecord.DOMAIN : RUST_LEGACY_PEER_RECORD.domain)
  } catch (err) {
    throw new InvalidPeerRecordError(`envelope does not verify: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (!valid) throw new InvalidPeerRecordError('envelope does not verify: bad signature')
  let record: PeerRecord
  let signer: PeerId
  try {
    record = PeerRecord.createFromProtobuf(envelope.payload)
    signer = peerIdFromPublicKey(envelope.publicKey)
  } catch (err) {
    throw new InvalidPeerRecordError(`peer record is malformed: ${err instanceof Error ? err.message : String(err)}`)
  }
  // A valid signature over a record naming someone else proves nothing about that peer.
  if (!record.peerId.equals(signer)) throw new InvalidPeerRecordError('peer record names a peer other than its signer')
  return { peerId: signer, multiaddrs: record.multiaddrs, seqNumber: record.seqNumber, format }
}

/**
 * The addresses that belong in our own record: announced addresses without the
 * trailing `/p2p/<self>` (the record already names the peer), deduplicated.
 */
export function recordAddresses (announced: Multiaddr[]): Multiaddr[] {
  const seen = new Set<string>()
  const out: Multiaddr[] = []
  for (const addr of announced) {
    const components = addr.getComponents()
    const bare = components.length > 0 && components[components.length - 1].code === CODE_P2P ? addr.decapsulateCode(CODE_P2P) : addr
    const key = bare.toString()
    if (!seen.has(key)) {
      seen.add(key)
      out.push(bare)
    }
  }
  return out
}

/** Signs a fresh peer record for `privateKey` over `multiaddrs`; returns the marshalled envelope. */
export async function sealPeerRecord (privateKey: PrivateKey, multiaddrs: Multiaddr[]): Promise<Uint8Array> {
  const record = new PeerRecord({ peerId: peerIdFromPublicKey(privateKey.publicKey), multiaddrs: recordAddresses(multiaddrs) })
  const envelope = await RecordEnvelope.seal(record, privateKey)
  return envelope.marshal()
}

/** The peer id a multiaddr ends in (`…/p2p/<id>`), or null. */
export function peerIdOfMultiaddr (addr: Multiaddr): string | null {
  const components = addr.getComponents()
  for (let i = components.length - 1; i >= 0; i--) {
    const c = components[i]
    if (c.code === CODE_P2P) return c.value ?? null
    // The p2p before a circuit hop is the relay, not the target.
    if (c.name === 'p2p-circuit') return null
  }
  return null
}
