/**
 * The messages our NAT services speak — AutoNAT v1 and DCUtR — on the codecs protons
 * generates from proto/autonat.proto and proto/dcutr.proto (`npm run gen:proto`), in
 * varint length-prefixed frames read and written with @libp2p/utils' pbStream. This file
 * only gives the services numeric enums and flat shapes; the bytes are the generated
 * codecs' (test/unit/nat.test.ts pins them against golden bytes).
 */
import type { Stream } from '@libp2p/interface'
import { pbStream } from '@libp2p/utils'
import { Message } from './proto/autonat.js'
import { HolePunch } from './proto/dcutr.js'

// ---- AutoNAT v1 (/libp2p/autonat/1.0.0) ---------------------------------------------------

export const AUTONAT_PROTOCOL = '/libp2p/autonat/1.0.0'

export enum AutoNatStatus { OK = 0, E_DIAL_ERROR = 100, E_DIAL_REFUSED = 101, E_BAD_REQUEST = 200, E_INTERNAL_ERROR = 300 }

export interface AutoNatDial { peerId: Uint8Array, addrs: Uint8Array[] }
export interface AutoNatDialResponse { status: AutoNatStatus, statusText: string, addr?: Uint8Array }
export interface AutoNatMessage { dial?: AutoNatDial, dialResponse?: AutoNatDialResponse }

const STATUS_NAME: Record<AutoNatStatus, Message.ResponseStatus> = {
  [AutoNatStatus.OK]: Message.ResponseStatus.OK,
  [AutoNatStatus.E_DIAL_ERROR]: Message.ResponseStatus.E_DIAL_ERROR,
  [AutoNatStatus.E_DIAL_REFUSED]: Message.ResponseStatus.E_DIAL_REFUSED,
  [AutoNatStatus.E_BAD_REQUEST]: Message.ResponseStatus.E_BAD_REQUEST,
  [AutoNatStatus.E_INTERNAL_ERROR]: Message.ResponseStatus.E_INTERNAL_ERROR
}

function toWire (m: AutoNatMessage): Message {
  const out: Message = {}
  if (m.dial !== undefined) {
    out.type = Message.MessageType.DIAL
    out.dial = { peer: { id: m.dial.peerId as Uint8Array<ArrayBuffer>, addrs: m.dial.addrs as Array<Uint8Array<ArrayBuffer>> } }
  }
  if (m.dialResponse !== undefined) {
    const r = m.dialResponse
    out.type = Message.MessageType.DIAL_RESPONSE
    out.dialResponse = { status: STATUS_NAME[r.status], statusText: r.statusText }
    if (r.addr !== undefined) out.dialResponse.addr = r.addr as Uint8Array<ArrayBuffer>
  }
  return out
}

function fromWire (m: Message): AutoNatMessage {
  const out: AutoNatMessage = {}
  if (m.dial !== undefined) out.dial = { peerId: m.dial.peer?.id ?? new Uint8Array(), addrs: m.dial.peer?.addrs ?? [] }
  if (m.dialResponse !== undefined) {
    const r = m.dialResponse
    out.dialResponse = {
      status: r.status !== undefined ? AutoNatStatus[r.status as keyof typeof AutoNatStatus] : AutoNatStatus.E_INTERNAL_ERROR,
      statusText: r.statusText ?? ''
    }
    if (r.addr !== undefined) out.dialResponse.addr = r.addr
  }
  return out
}

export function encodeAutoNat (m: AutoNatMessage): Uint8Array {
  return Message.encode(toWire(m))
}

export function decodeAutoNat (buf: Uint8Array): AutoNatMessage {
  return fromWire(Message.decode(buf))
}

// ---- DCUtR (/libp2p/dcutr) ----------------------------------------------------------------

export const DCUTR_PROTOCOL = '/libp2p/dcutr'

export enum HolePunchType { CONNECT = 100, SYNC = 300 }
export interface HolePunchMessage { type: HolePunchType, addrs: Uint8Array[] }

export function encodeHolePunch (m: HolePunchMessage): Uint8Array {
  return HolePunch.encode(holePunchToWire(m))
}

export function decodeHolePunch (buf: Uint8Array): HolePunchMessage {
  return holePunchFromWire(HolePunch.decode(buf))
}

function holePunchToWire (m: HolePunchMessage): HolePunch {
  return { type: m.type === HolePunchType.SYNC ? HolePunch.Type.SYNC : HolePunch.Type.CONNECT, ObsAddrs: m.addrs as Array<Uint8Array<ArrayBuffer>> }
}

function holePunchFromWire (m: HolePunch): HolePunchMessage {
  return { type: m.type === HolePunch.Type.SYNC ? HolePunchType.SYNC : HolePunchType.CONNECT, addrs: m.ObsAddrs }
}

// ---- framing ----------------------------------------------------------------------------

/** Length-prefixed AutoNAT and DCUtR messages on one stream; every read is bounded by `maxBytes`. */
export class PbStream {
  private readonly pb: ReturnType<typeof pbStream>
  constructor (readonly stream: Stream, maxBytes = 8192) {
    this.pb = pbStream(stream, { maxDataLength: maxBytes })
  }

  async writeAutoNat (m: AutoNatMessage): Promise<void> {
    await this.pb.write(toWire(m), Message)
  }

  async readAutoNat (): Promise<AutoNatMessage> {
    return fromWire(await this.pb.read(Message))
  }

  async writeHolePunch (m: HolePunchMessage): Promise<void> {
    await this.pb.write(holePunchToWire(m), HolePunch)
  }

  async readHolePunch (): Promise<HolePunchMessage> {
    return holePunchFromWire(await this.pb.read(HolePunch))
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
