/**
 * Hand-written protobuf codec for the libp2p rendezvous protocol (`/rendezvous/1.0.0`,
 * libp2p/specs rendezvous/README.md). Field numbers follow the spec's proto exactly.
 * Decoding never throws anything but RendezvousProtocolError, so a point can drop a
 * peer's garbage without caring what went wrong inside the reader.
 */
import { reader as createReader, writer as createWriter } from 'protons-runtime'
import type { Reader, Writer } from 'protons-runtime'

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
const utf8Decoder = new TextDecoder()

/** Byte length as the spec counts namespaces (UTF-8), not UTF-16 units. */
export function utf8Length (s: string): number {
  return utf8Encoder.encode(s).byteLength
}

// ---------------------------------------------------------------- encoding

const WIRE_VARINT = 0
const WIRE_BYTES = 2
const tag = (field: number, wire: number): number => (field << 3) | wire

function writeString (w: Writer, field: number, value: string | undefined): void {
  if (value !== undefined) w.uint32(tag(field, WIRE_BYTES)).string(value)
}

function writeBytesField (w: Writer, field: number, value: Uint8Array | undefined): void {
  if (value !== undefined) w.uint32(tag(field, WIRE_BYTES)).bytes(value)
}

function writeVarint (w: Writer, field: number, value: number | undefined): void {
  // int64 and uint64 share the varint encoding for the non-negative values we send.
  if (value !== undefined) w.uint32(tag(field, WIRE_VARINT)).uint64Number(Math.max(0, Math.floor(value)))
}

function writeNested (w: Writer, field: number, body: ((w: Writer) => void) | undefined): void {
  if (body === undefined) return
  w.uint32(tag(field, WIRE_BYTES)).fork()
  body(w)
  w.ldelim()
}

function registerBody (m: RegisterMessage): (w: Writer) => void {
  return (w) => {
    writeString(w, 1, m.ns)
    writeBytesField(w, 2, m.signedPeerRecord)
    writeVarint(w, 3, m.ttl)
  }
}

export function encodeMessage (m: RendezvousMessage): Uint8Array {
  const w = createWriter()
  writeVarint(w, 1, m.type)
  const reg = m.register
  writeNested(w, 2, reg === undefined ? undefined : registerBody(reg))
  const rr = m.registerResponse
  writeNested(w, 3, rr === undefined
    ? undefined
    : (w) => {
        writeVarint(w, 1, rr.status)
        writeString(w, 2, rr.statusText)
        writeVarint(w, 3, rr.ttl)
      })
  const un = m.unregister
  writeNested(w, 4, un === undefined
    ? undefined
    : (w) => {
        writeString(w, 1, un.ns)
        writeBytesField(w, 2, un.id)
      })
  const d = m.discover
  writeNested(w, 5, d === undefined
    ? undefined
    : (w) => {
        writeString(w, 1, d.ns)
        writeVarint(w, 2, d.limit)
        writeBytesField(w, 3, d.cookie)
      })
  const dr = m.discoverResponse
  writeNested(w, 6, dr === undefined
    ? undefined
    : (w) => {
        for (const r of dr.registrations) writeNested(w, 1, registerBody(r))
        writeBytesField(w, 2, dr.cookie)
        writeVarint(w, 3, dr.status)
        writeString(w, 4, dr.statusText)
      })
  return w.finish()
}

// ---------------------------------------------------------------- decoding

/** uint64 varint as a JS number; values past 2^53 saturate (they are invalid anyway). */
function readCount (r: Reader): number {
  const v = r.uint64()
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
}

const readString = (r: Reader): string => utf8Decoder.decode(r.bytes())
/**
 * Copies, because the reader's view aliases a buffer the stream may reuse (and the
 * input may be a Node Buffer, whose slice() does not copy).
 */
const readOwnedBytes = (r: Reader): Uint8Array => new Uint8Array(r.bytes())

/** Walks the fields of one (sub)message, calling `field` for each and skipping unknown ones. */
function readFields (r: Reader, end: number, field: (no: number, wire: number) => boolean): void {
  while (r.pos < end) {
    const t = r.uint32()
    const no = t >>> 3
    const wire = t & 7
    if (no === 0) throw new RendezvousProtocolError('field number 0')
    // Groups are not part of this protocol, and skipping them recurses per nesting level.
    if (wire === 3 || wire === 4) throw new RendezvousProtocolError('groups are not supported')
    if (!field(no, wire)) r.skipType(wire)
  }
  if (r.pos !== end) throw new RendezvousProtocolError('field overruns its message')
}

function expectWire (wire: number, want: number, name: string): void {
  if (wire !== want) throw new RendezvousProtocolError(`field ${name} has wire type ${wire}`)
}

function subEnd (r: Reader): number {
  const len = r.uint32()
  const end = r.pos + len
  if (end > r.len) throw new RendezvousProtocolError('nested message overruns the buffer')
  return end
}

function decodeRegister (r: Reader): RegisterMessage {
  const out: RegisterMessage = {}
  readFields(r, subEnd(r), (no, wire) => {
    switch (no) {
      case 1: expectWire(wire, WIRE_BYTES, 'ns'); out.ns = readString(r); return true
      case 2: expectWire(wire, WIRE_BYTES, 'signedPeerRecord'); out.signedPeerRecord = readOwnedBytes(r); return true
      case 3: expectWire(wire, WIRE_VARINT, 'ttl'); out.ttl = readCount(r); return true
      default: return false
    }
  })
  return out
}

function decodeRegisterResponse (r: Reader): RegisterResponseMessage {
  const out: RegisterResponseMessage = { status: 0 }
  readFields(r, subEnd(r), (no, wire) => {
    switch (no) {
      case 1: expectWire(wire, WIRE_VARINT, 'status'); out.status = readCount(r); return true
      case 2: expectWire(wire, WIRE_BYTES, 'statusText'); out.statusText = readString(r); return true
      case 3: expectWire(wire, WIRE_VARINT, 'ttl'); out.ttl = readCount(r); return true
      default: return false
    }
  })
  return out
}

function decodeUnregister (r: Reader): UnregisterMessage {
  const out: UnregisterMessage = {}
  readFields(r, subEnd(r), (no, wire) => {
    switch (no) {
      case 1: expectWire(wire, WIRE_BYTES, 'ns'); out.ns = readString(r); return true
      case 2: expectWire(wire, WIRE_BYTES, 'id'); out.id = readOwnedBytes(r); return true
      default: return false
    }
  })
  return out
}

function decodeDiscover (r: Reader): DiscoverMessage {
  const out: DiscoverMessage = {}
  readFields(r, subEnd(r), (no, wire) => {
    switch (no) {
      case 1: expectWire(wire, WIRE_BYTES, 'ns'); out.ns = readString(r); return true
      case 2: expectWire(wire, WIRE_VARINT, 'limit'); out.limit = readCount(r); return true
      case 3: expectWire(wire, WIRE_BYTES, 'cookie'); out.cookie = readOwnedBytes(r); return true
      default: return false
    }
  })
  return out
}

function decodeDiscoverResponse (r: Reader): DiscoverResponseMessage {
  const out: DiscoverResponseMessage = { registrations: [], status: 0 }
  readFields(r, subEnd(r), (no, wire) => {
    switch (no) {
      case 1: expectWire(wire, WIRE_BYTES, 'registrations'); out.registrations.push(decodeRegister(r)); return true
      case 2: expectWire(wire, WIRE_BYTES, 'cookie'); out.cookie = readOwnedBytes(r); return true
      case 3: expectWire(wire, WIRE_VARINT, 'status'); out.status = readCount(r); return true
      case 4: expectWire(wire, WIRE_BYTES, 'statusText'); out.statusText = readString(r); return true
      default: return false
    }
  })
  return out
}

/** Decodes one message body (without its length prefix). */
export function decodeMessage (bytes: Uint8Array): RendezvousMessage {
  if (bytes.byteLength > MAX_MESSAGE_BYTES) throw new RendezvousProtocolError(`message of ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`)
  // proto2 semantics: an absent type reads as the enum's first value (REGISTER).
  const out: RendezvousMessage = { type: MessageType.REGISTER }
  try {
    const r = createReader(bytes)
    readFields(r, r.len, (no, wire) => {
      switch (no) {
        case 1: expectWire(wire, WIRE_VARINT, 'type'); out.type = r.uint32(); return true
        case 2: expectWire(wire, WIRE_BYTES, 'register'); out.register = decodeRegister(r); return true
        case 3: expectWire(wire, WIRE_BYTES, 'registerResponse'); out.registerResponse = decodeRegisterResponse(r); return true
        case 4: expectWire(wire, WIRE_BYTES, 'unregister'); out.unregister = decodeUnregister(r); return true
        case 5: expectWire(wire, WIRE_BYTES, 'discover'); out.discover = decodeDiscover(r); return true
        case 6: expectWire(wire, WIRE_BYTES, 'discoverResponse'); out.discoverResponse = decodeDiscoverResponse(r); return true
        default: return false
      }
    })
  } catch (err) {
    if (err instanceof RendezvousProtocolError) throw err
    throw new RendezvousProtocolError(`malformed message: ${err instanceof Error ? err.message : String(err)}`)
  }
  return out
}
