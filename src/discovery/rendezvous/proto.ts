/**
 * The libp2p rendezvous messages (`/rendezvous/1.0.0`, libp2p/specs rendezvous/README.md)
 * on the codec protons generates from proto/rendezvous.proto (`npm run gen:proto`). This
 * file gives the point and the client numeric message types and statuses and plain
 * shapes; the bytes are the generated codec's (test/unit/rendezvous-proto.test.ts pins
 * them against hand-built vectors). Decoding never throws anything but
 * RendezvousProtocolError, so a point can drop a peer's garbage without caring what went
 * wrong inside the reader.
 */
import { reader as createReader } from 'protons-runtime'
import { Message } from './proto/rendezvous.js'

export const RENDEZVOUS_PROTOCOL = '/rendezvous/1.0.0'

/** Largest message either side accepts (discovery.md §5). */
export const MAX_MESSAGE_BYTES = 1024 * 1024

export const MessageType = {
  REGISTER: 0,
  REGISTER_RESPONSE: 1,
  UNREGISTER: 2,
  DISCOVER: 3,
  DISCOVER_RESPONSE: 4
} as const
export type MessageTypeValue = typeof MessageType[keyof typeof MessageType]

export const ResponseStatus = {
  OK: 0,
  E_INVALID_NAMESPACE: 100,
  E_INVALID_SIGNED_PEER_RECORD: 101,
  E_INVALID_TTL: 102,
  E_INVALID_COOKIE: 103,
  E_NOT_AUTHORIZED: 200,
  E_INTERNAL_ERROR: 300,
  E_UNAVAILABLE: 400
} as const
export type ResponseStatusName = keyof typeof ResponseStatus
export type ResponseStatusValue = typeof ResponseStatus[ResponseStatusName]

/** `E_…` name of a status; statuses outside the spec keep their number so nothing is lost. */
export function statusName (status: number): string {
  for (const [name, value] of Object.entries(ResponseStatus)) if (value === status) return name
  return `E_UNKNOWN_${status}`
}

export interface RegisterMessage {
  ns?: string
  signedPeerRecord?: Uint8Array
  /** Seconds; absent means the point's default. */
  ttl?: number
}

export interface RegisterResponseMessage {
  status: number
  statusText?: string
  ttl?: number
}

export interface UnregisterMessage {
  ns?: string
  /** Ignored by points: only the sender's own registration can be removed. */
  id?: Uint8Array
}

export interface DiscoverMessage {
  ns?: string
  limit?: number
  cookie?: Uint8Array
}

export interface DiscoverResponseMessage {
  registrations: RegisterMessage[]
  cookie?: Uint8Array
  status: number
  statusText?: string
}

export interface RendezvousMessage {
  type: number
  register?: RegisterMessage
  registerResponse?: RegisterResponseMessage
  unregister?: UnregisterMessage
  discover?: DiscoverMessage
  discoverResponse?: DiscoverResponseMessage
}

export class RendezvousProtocolError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'RendezvousProtocolError'
  }
}

const utf8Encoder = new TextEncoder()

/** Byte length as the spec counts namespaces (UTF-8), not UTF-16 units. */
export function utf8Length (s: string): number {
  return utf8Encoder.encode(s).byteLength
}

// ---------------------------------------------------------------- to and from the codec

/** The spec's counts are non-negative integers; the hand-off to the codec keeps them so. */
const count = (value: number | undefined): number | undefined => value === undefined ? undefined : Math.max(0, Math.floor(value))
const count64 = (value: number | undefined): bigint | undefined =>
  value === undefined ? undefined : BigInt(Math.min(Number.MAX_SAFE_INTEGER, count(value) ?? 0) || 0)

/** uint64 as a JS number; values past 2^53 saturate (they are invalid anyway, and refused as such). */
const fromCount64 = (value: bigint | undefined): number | undefined =>
  value === undefined ? undefined : value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value)

/**
 * Copies, because the generated decoder returns views of its input, which may be a
 * buffer the stream reuses (or a Node Buffer, whose slice() does not copy).
 */
const owned = (bytes: Uint8Array | undefined): Uint8Array | undefined => bytes === undefined ? undefined : new Uint8Array(bytes)

/** The message without its absent fields, so a decoded message equals the one encoded. */
function defined<T extends object> (fields: T): T {
  for (const key of Object.keys(fields) as Array<keyof T>) if (fields[key] === undefined) delete fields[key]
  return fields
}

const asBytes = (bytes: Uint8Array | undefined): Uint8Array<ArrayBuffer> | undefined => bytes as Uint8Array<ArrayBuffer> | undefined

function registerToWire (m: RegisterMessage): Message.Register {
  return { ns: m.ns, signedPeerRecord: asBytes(m.signedPeerRecord), ttl: count64(m.ttl) }
}

function registerFromWire (m: Message.Register): RegisterMessage {
  return defined({ ns: m.ns, signedPeerRecord: owned(m.signedPeerRecord), ttl: fromCount64(m.ttl) })
}

/** The codec leaves out every absent (undefined) field, as the spec's optional fields want. */
function toWire (m: RendezvousMessage): Message {
  const { register: reg, registerResponse: rr, unregister: un, discover: d, discoverResponse: dr } = m
  return {
    type: count(m.type),
    register: reg === undefined ? undefined : registerToWire(reg),
    registerResponse: rr === undefined ? undefined : { status: count(rr.status), statusText: rr.statusText, ttl: count64(rr.ttl) },
    unregister: un === undefined ? undefined : { ns: un.ns, id: asBytes(un.id) },
    discover: d === undefined ? undefined : { ns: d.ns, limit: count64(d.limit), cookie: asBytes(d.cookie) },
    discoverResponse: dr === undefined
      ? undefined
      : { registrations: dr.registrations.map(registerToWire), cookie: asBytes(dr.cookie), status: count(dr.status), statusText: dr.statusText }
  }
}

function fromWire (m: Message): RendezvousMessage {
  const { register: reg, registerResponse: rr, unregister: un, discover: d, discoverResponse: dr } = m
  return defined({
    // proto2 semantics, as the spec's proto: an absent type reads as the enum's first value (REGISTER).
    type: m.type ?? MessageType.REGISTER,
    register: reg === undefined ? undefined : registerFromWire(reg),
    registerResponse: rr === undefined
      ? undefined
      : defined({ status: rr.status ?? ResponseStatus.OK, statusText: rr.statusText, ttl: fromCount64(rr.ttl) }),
    unregister: un === undefined ? undefined : defined({ ns: un.ns, id: owned(un.id) }),
    discover: d === undefined ? undefined : defined({ ns: d.ns, limit: fromCount64(d.limit), cookie: owned(d.cookie) }),
    discoverResponse: dr === undefined
      ? undefined
      : defined({ registrations: dr.registrations.map(registerFromWire), cookie: owned(dr.cookie), status: dr.status ?? ResponseStatus.OK, statusText: dr.statusText })
  })
}

export function encodeMessage (m: RendezvousMessage): Uint8Array {
  return Message.encode(toWire(m))
}

// ---------------------------------------------------------------- decoding

/**
 * The generated decoder reads a known field whatever its wire type and skips unknown ones
 * (groups recursively); the spec's peers refuse such messages, and so do we: every
 * top-level field has a number, a wire type of this protocol (varint or length-delimited)
 * and fits the message.
 */
function checkTopLevelFields (bytes: Uint8Array): void {
  const r = createReader(bytes)
  while (r.pos < r.len) {
    const tag = r.uint32()
    const wire = tag & 7
    if (tag >>> 3 === 0) throw new RendezvousProtocolError('field number 0')
    if (wire === 0) r.skip()
    else if (wire === 2) r.skip(r.uint32())
    else throw new RendezvousProtocolError(`wire type ${wire} is not part of this protocol`)
  }
}

/** Decodes one message body (without its length prefix). */
export function decodeMessage (bytes: Uint8Array): RendezvousMessage {
  if (bytes.byteLength > MAX_MESSAGE_BYTES) throw new RendezvousProtocolError(`message of ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`)
  try {
    checkTopLevelFields(bytes)
    return fromWire(Message.decode(bytes))
  } catch (err) {
    if (err instanceof RendezvousProtocolError) throw err
    throw new RendezvousProtocolError(`malformed message: ${err instanceof Error ? err.message : String(err)}`)
  }
}
