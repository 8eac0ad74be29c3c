/**
 * Unsigned-varint length-prefixed framing of rendezvous messages over a libp2p v3
 * stream, built on the project's StreamReader so limits hold before a body is buffered.
 * Not @libp2p/utils' pbStream (which nat/ uses for its one-message exchanges): a point
 * serves many messages per stream and must tell a peer that finished (a clean end before
 * a prefix: null) from one that stopped mid-frame (TruncatedFrameError, a protocol
 * violation it counts); pbStream reports both as the same UnexpectedEOFError.
 */
import { writer as createWriter } from 'protons-runtime'
import type { Stream } from '@libp2p/interface'
import { FrameTooLargeError, StreamReader, TruncatedFrameError, writeBytes } from '../../protocol/framing.js'
import { MAX_MESSAGE_BYTES, RendezvousProtocolError, decodeMessage, encodeMessage } from './proto.js'
import type { RendezvousMessage } from './proto.js'

/** 1 MiB needs 3 varint bytes; anything longer than 5 is either overlong or oversize. */
const MAX_VARINT_BYTES = 5

/** The body behind its unsigned-varint length, as protobuf writes a bytes field's value. */
export function encodeLengthPrefixed (body: Uint8Array): Uint8Array {
  return createWriter().bytes(body).finish()
}

/**
 * Reads one length-prefixed body. Null on a clean end of stream before any byte;
 * FrameTooLargeError before buffering an oversized body; TruncatedFrameError when the
 * stream ends mid-frame; RendezvousProtocolError for an unterminated varint.
 */
export async function readLengthPrefixed (reader: StreamReader, maxBytes: number = MAX_MESSAGE_BYTES): Promise<Uint8Array | null> {
  let size = 0
  for (let i = 0; ; i++) {
    if (i >= MAX_VARINT_BYTES) throw new RendezvousProtocolError('length prefix is not a valid varint')
    const byte = await reader.readExactly(1)
    if (byte === null) {
      if (i === 0) return null
      throw new TruncatedFrameError('stream ended inside a length prefix')
    }
    size += (byte[0] & 0x7f) * 2 ** (7 * i)
    if ((byte[0] & 0x80) === 0) break
    // Refuse as soon as the prefix alone proves the frame oversize.
    if (size > maxBytes) throw new FrameTooLargeError(size, maxBytes)
  }
  if (size > maxBytes) throw new FrameTooLargeError(size, maxBytes)
  const body = await reader.readExactly(size)
  if (body === null) throw new TruncatedFrameError()
  return body
}

/** Reads and decodes one message; null at a clean end of stream. */
export async function readMessage (reader: StreamReader, maxBytes: number = MAX_MESSAGE_BYTES): Promise<RendezvousMessage | null> {
  const body = await readLengthPrefixed(reader, maxBytes)
  return body === null ? null : decodeMessage(body)
}

export async function writeMessage (stream: Stream, message: RendezvousMessage): Promise<void> {
  await writeBytes(stream, encodeLengthPrefixed(encodeMessage(message)))
}

/** Rejects with `signal`'s reason as soon as it aborts, so a stalled read never outlives it. */
export async function raceSignal<T> (promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await promise
  if (signal.aborted) throw abortReason(signal)
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        onAbort = () => reject(abortReason(signal))
        signal.addEventListener('abort', onAbort, { once: true })
      })
    ])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}

export function abortReason (signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof Error ? reason : new Error('aborted')
}
