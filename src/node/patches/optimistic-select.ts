/**
 * Optimistic ("lazy") multistream-select for the client's MCP streams.
 *
 * Why: libp2p's `connection.newStream` sends the multistream header and protocol id,
 * then waits for the peer to echo both before the first byte of the protocol may be
 * written, so every new MCP stream cost a full round trip (and a turn of the service's
 * event loop) before `initialize` could even leave. multistream-select lets the
 * proposer write protocol data right behind its proposal (go-libp2p's lazy negotiation
 * does), and listeners read the proposal with length-prefixed reads and hand whatever
 * follows to the protocol handler: js-libp2p pushes it back onto the stream, py-libp2p
 * (the original service) reads exactly the prefixed lengths. Bytes on the wire are the
 * same as with `newStream` followed by a write; only the waiting goes.
 *
 * How: the stream is taken from the muxer directly, the header and protocol are sent
 * at once, and the echo is checked as it arrives. Until it has been consumed, our
 * 'message' listener — registered first, so it runs before the session's reader —
 * strips those bytes from each event's `data`; afterwards it removes itself and the
 * stream is an ordinary negotiated stream. A refusal (`na`) rejects `negotiated` with
 * an UnsupportedProtocolError and aborts the stream; what was written behind the
 * proposal never reaches a handler (the peer reads it as a further, invalid proposal).
 *
 * `connection.muxer` is an implementation detail of js-libp2p 3; for anything else the
 * caller falls back to `newStream` (null is returned).
 */
import { UnsupportedProtocolError } from '@libp2p/interface'
import type { Connection, Stream, StreamMuxer } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { reportPatch } from './report.js'

const MULTISTREAM_ID = '/multistream/1.0.0'
/** multistream-select caps a protocol line at 1024 bytes: a 2-byte varint. */
const MAX_LINE = 1024

export interface OptimisticStream {
  stream: Stream
  /** Resolves once the peer accepted the protocol; rejects on refusal or an early close. */
  negotiated: Promise<void>
}

export class NegotiationError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'NegotiationError'
  }
}

/** Opens a stream for `protocol` without waiting for the peer to accept it; null when the connection is not one we recognise. */
export async function openOptimisticStream (connection: Connection, protocol: string): Promise<OptimisticStream | null> {
  const muxer = (connection as unknown as { muxer?: StreamMuxer }).muxer
  if (muxer === undefined || typeof muxer.createStream !== 'function') {
    reportPatch('optimistic-select', false, 'no muxer on the connection')
    return null
  }
  if (muxer.status !== 'open' || connection.status !== 'open') return null
  reportPatch('optimistic-select', true)
  const stream = await muxer.createStream()
  stream.protocol = protocol
  const negotiated = expectEcho(stream, protocol)
  stream.send(new Uint8ArrayList(encodeLine(MULTISTREAM_ID), encodeLine(protocol)))
  return { stream, negotiated }
}

/** Consumes the peer's two answer lines (header, then our protocol or `na`) from the front of the stream. */
function expectEcho (stream: Stream, protocol: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const pending = new Uint8ArrayList()
    const lines: string[] = []
    const done = (err?: Error): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      if (err === undefined) {
        resolve()
        return
      }
      reject(err)
      stream.abort(err)
    }
    const onMessage = (evt: Event & { data: Uint8Array | Uint8ArrayList }): void => {
      pending.append(evt.data)
      // Listeners after us must see only what follows the answer.
      evt.data = new Uint8ArrayList()
      try {
        let line: string | null
        while (lines.length < 2 && (line = takeLine(pending)) !== null) lines.push(line)
      } catch (err) {
        done(err as Error)
        return
      }
      if (lines.length > 0 && lines[0] !== MULTISTREAM_ID) {
        done(new NegotiationError(`peer answered ${JSON.stringify(lines[0])} instead of the multistream-select header`))
        return
      }
      if (lines.length < 2) return
      if (lines[1] !== protocol) {
        done(new UnsupportedProtocolError(`peer does not speak ${protocol} (answered ${JSON.stringify(lines[1])})`))
        return
      }
      evt.data = pending
      done()
    }
    const onClose = (): void => { done(new NegotiationError(`stream closed before the peer accepted ${protocol}`)) }
    stream.addEventListener('message', onMessage as (evt: Event) => void)
    stream.addEventListener('close', onClose)
  })
}

function encodeLine (text: string): Uint8Array {
  const body = Buffer.from(`${text}\n`)
  const len = body.byteLength
  const prefix = len < 0x80 ? [len] : [(len & 0x7f) | 0x80, len >> 7]
  const out = new Uint8Array(prefix.length + len)
  out.set(prefix, 0)
  out.set(body, prefix.length)
  return out
}

/** One varint-length-prefixed, newline-terminated line from the front of `buf`, or null if incomplete. */
function takeLine (buf: Uint8ArrayList): string | null {
  if (buf.byteLength < 1) return null
  let len = buf.get(0)
  let at = 1
  if ((len & 0x80) !== 0) {
    if (buf.byteLength < 2) return null
    const high = buf.get(1)
    if ((high & 0x80) !== 0) throw new NegotiationError('multistream-select line length over two bytes')
    len = (len & 0x7f) | (high << 7)
    at = 2
  }
  if (len === 0 || len > MAX_LINE + 1) throw new NegotiationError(`invalid multistream-select line length ${len}`)
  if (buf.byteLength < at + len) return null
  const body = buf.subarray(at, at + len)
  buf.consume(at + len)
  if (body[len - 1] !== 0x0a) throw new NegotiationError('multistream-select line without a newline')
  return Buffer.from(body.buffer, body.byteOffset, len - 1).toString('utf8')
}
