/**
 * The two tiny protobuf messages our NAT services speak (AutoNAT v1 and DCUtR), with
 * unsigned-varint length-prefixed framing on a libp2p stream. Hand-written because the
 * libraries that define them do not export their codecs, and both messages are a few
 * fields of varints and bytes: a generated codec would be larger than this file.
 */
import type { Stream } from '@libp2p/interface'
import { StreamReader, writeBytes } from '../protocol/framing.js'

// ---- wire primitives -------------------------------------------------------------------

function encodeVarint (value: number): number[] {
  const out: number[] = []
  let v = value
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return out
}

interface Field { no: number, varint?: number, bytes?: Uint8Array }

class Writer {
  private readonly parts: number[] = []
  varint (no: number, value: number | undefined): this {
    if (value === undefined) return this
    this.parts.push(...encodeVarint(no << 3), ...encodeVarint(value))
    return this
  }

  bytes (no: number, value: Uint8Array | undefined): this {
    if (value === undefined) return this
    this.parts.push(...encodeVarint((no << 3) | 2), ...encodeVarint(value.byteLength), ...value)
    return this
  }

  finish (): Uint8Array {
    return Uint8Array.from(this.parts)
  }
}

/** Splits a message into fields; unknown wire types make it invalid. */
function readFields (buf: Uint8Array): Field[] {
  const fields: Field[] = []
  let i = 0
  const varint = (): number => {
    let result = 0
    let scale = 1
    for (let n = 0; n < 10; n++) {
      if (i >= buf.byteLength) throw new Error('truncated varint')
      const b = buf[i++]
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return result
      scale *= 0x80
    }
    throw new Error('varint too long')
  }
  while (i < buf.byteLength) {
    const key = varint()
    const no = Math.floor(key / 8)
    const wire = key % 8
    if (wire === 0) fields.push({ no, varint: varint() })
    else if (wire === 2) {
      const len = varint()
      if (i + len > buf.byteLength) throw new Error('truncated field')
      fields.push({ no, bytes: buf.subarray(i, i + len) })
      i += len
    } else throw new Error(`unsupported wire type ${wire}`)
  }
  return fields
}

const text = new TextDecoder()

// ---- AutoNAT v1 (/libp2p/autonat/1.0.0) ---------------------------------------------------

export const AUTONAT_PROTOCOL = '/libp2p/autonat/1.0.0'

export enum AutoNatStatus { OK = 0, E_DIAL_ERROR = 100, E_DIAL_REFUSED = 101, E_BAD_REQUEST = 200, E_INTERNAL_ERROR = 300 }

export interface AutoNatDial { peerId: Uint8Array, addrs: Uint8Array[] }
export interface AutoNatDialResponse { status: AutoNatStatus, statusText: string, addr?: Uint8Array }
export interface AutoNatMessage { dial?: AutoNatDial, dialResponse?: AutoNatDialResponse }

export function encodeAutoNat (m: AutoNatMessage): Uint8Array {
  const w = new Writer()
  if (m.dial !== undefined) {
    const peer = new Writer().bytes(1, m.dial.peerId)
    for (const a of m.dial.addrs) peer.bytes(2, a)
    w.varint(1, 0).bytes(2, new Writer().bytes(1, peer.finish()).finish())
  }
  if (m.dialResponse !== undefined) {
    const r = m.dialResponse
    w.varint(1, 1).bytes(3, new Writer().varint(1, r.status).bytes(2, new TextEncoder().encode(r.statusText)).bytes(3, r.addr).finish())
  }
  return w.finish()
}

export function decodeAutoNat (buf: Uint8Array): AutoNatMessage {
  const out: AutoNatMessage = {}
  for (const f of readFields(buf)) {
    if (f.no === 2 && f.bytes !== undefined) {
      const dial: AutoNatDial = { peerId: new Uint8Array(), addrs: [] }
      for (const d of readFields(f.bytes)) {
        if (d.no !== 1 || d.bytes === undefined) continue
        for (const p of readFields(d.bytes)) {
          if (p.no === 1 && p.bytes !== undefined) dial.peerId = p.bytes
          if (p.no === 2 && p.bytes !== undefined) dial.addrs.push(p.bytes)
        }
      }
      out.dial = dial
    } else if (f.no === 3 && f.bytes !== undefined) {
      const r: AutoNatDialResponse = { status: AutoNatStatus.E_INTERNAL_ERROR, statusText: '' }
      for (const d of readFields(f.bytes)) {
        if (d.no === 1 && d.varint !== undefined) r.status = d.varint
        if (d.no === 2 && d.bytes !== undefined) r.statusText = text.decode(d.bytes)
        if (d.no === 3 && d.bytes !== undefined) r.addr = d.bytes
      }
      out.dialResponse = r
    }
  }
  return out
}

// ---- DCUtR (/libp2p/dcutr) ----------------------------------------------------------------

export const DCUTR_PROTOCOL = '/libp2p/dcutr'

export enum HolePunchType { CONNECT = 100, SYNC = 300 }
export interface HolePunchMessage { type: HolePunchType, addrs: Uint8Array[] }

export function encodeHolePunch (m: HolePunchMessage): Uint8Array {
  const w = new Writer().varint(1, m.type)
  for (const a of m.addrs) w.bytes(2, a)
  return w.finish()
}

export function decodeHolePunch (buf: Uint8Array): HolePunchMessage {
  const out: HolePunchMessage = { type: HolePunchType.CONNECT, addrs: [] }
  for (const f of readFields(buf)) {
    if (f.no === 1 && f.varint !== undefined) out.type = f.varint
    if (f.no === 2 && f.bytes !== undefined) out.addrs.push(f.bytes)
  }
  return out
}

// ---- framing ----------------------------------------------------------------------------

/** Length-prefixed message IO on one stream; every read is bounded by `maxBytes`. */
export class PbStream {
  private readonly reader: StreamReader
  constructor (readonly stream: Stream, private readonly maxBytes = 8192) {
    this.reader = new StreamReader(stream)
  }

  async write (body: Uint8Array): Promise<void> {
    const prefix = Uint8Array.from(encodeVarint(body.byteLength))
    const out = new Uint8Array(prefix.byteLength + body.byteLength)
    out.set(prefix, 0)
    out.set(body, prefix.byteLength)
    await writeBytes(this.stream, out)
  }

  async read (): Promise<Uint8Array> {
    let len = 0
    let scale = 1
    for (let n = 0; ; n++) {
      if (n >= 5) throw new Error('length prefix too long')
      const b = await this.reader.readExactly(1)
      if (b === null) throw new Error('stream ended before a message')
      len += (b[0] & 0x7f) * scale
      if ((b[0] & 0x80) === 0) break
      scale *= 0x80
    }
    if (len > this.maxBytes) throw new Error(`message of ${len} bytes exceeds ${this.maxBytes}`)
    const body = await this.reader.readExactly(len)
    if (body === null) throw new Error('stream ended inside a message')
    return body
  }
}

/** Rejects with the signal's reason if it fires first, so a silent peer cannot hold us. */
export async function withSignal<T> (p: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort()
    throw signal.reason
  }
  let listener: (() => void) | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => {
      listener = () => { onAbort(); reject(signal.reason) }
      signal.addEventListener('abort', listener, { once: true })
    })])
  } finally {
    if (listener !== undefined) signal.removeEventListener('abort', listener)
  }
}
