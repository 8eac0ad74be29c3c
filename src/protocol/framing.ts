/**
 * Byte-level framing for both TaskQueue protocols over a libp2p stream:
 * MCP++ frames (u32 big-endian length + JSON, wire-protocol.md §2.1) and legacy
 * NDJSON lines (§3). Limits are enforced before a body is buffered.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream } from '@libp2p/interface'

export class FrameTooLargeError extends Error {
  readonly size: number
  readonly limit: number
  constructor (size: number, limit: number) {
    super(`frame of ${size} bytes exceeds the limit of ${limit} bytes`)
    this.name = 'FrameTooLargeError'
    this.size = size
    this.limit = limit
  }
}

export class TruncatedFrameError extends Error {
  constructor (message = 'stream ended inside a frame') {
    super(message)
    this.name = 'TruncatedFrameError'
  }
}

/** Pull-based reader over a stream's async iterator, buffering only what a frame needs. */
export class StreamReader {
  private readonly iterator: AsyncIterator<Uint8Array | Uint8ArrayList>
  private readonly buffer = new Uint8ArrayList()
  private ended = false

  constructor (source: AsyncIterable<Uint8Array | Uint8ArrayList>) {
    this.iterator = source[Symbol.asyncIterator]()
  }

  get buffered (): number {
    return this.buffer.byteLength
  }

  /** Pulls one more chunk; false at end of stream. */
  private async pull (): Promise<boolean> {
    if (this.ended) return false
    const next = await this.iterator.next()
    if (next.done === true) {
      this.ended = true
      return false
    }
    this.buffer.append(next.value)
    return true
  }

  /** Reads exactly n bytes; null if the stream ends first (with `partial` telling whether any were read). */
  async readExactly (n: number): Promise<Uint8Array | null> {
    while (this.buffer.byteLength < n) {
      if (!await this.pull()) return null
    }
    const out = this.buffer.subarray(0, n)
    this.buffer.consume(n)
    return out
  }

  /**
   * One MCP++ frame body. Returns null on a clean end of stream before a header;
   * throws FrameTooLargeError before reading an oversized body, TruncatedFrameError
   * when the stream ends inside a frame.
   */
  async readFrame (maxBytes: number): Promise<Uint8Array | null> {
    const header = await this.readExactly(4)
    if (header === null) {
      if (this.buffer.byteLength > 0) throw new TruncatedFrameError('stream ended inside a frame header')
      return null
    }
    const size = new DataView(header.buffer, header.byteOffset, 4).getUint32(0, false)
    if (size > maxBytes) throw new FrameTooLargeError(size, maxBytes)
    const body = await this.readExactly(size)
    if (body === null) throw new TruncatedFrameError()
    return body
  }

  /**
   * Bytes up to (not including) the first newline. Returns null when the stream ends
   * with no bytes at all; at end of stream without a newline returns what was read
   * (the original accepted a request without its newline). Throws FrameTooLargeError
   * after maxBytes without a newline.
   */
  async readLine (maxBytes: number): Promise<Uint8Array | null> {
    let scanned = 0
    for (;;) {
      const length = this.buffer.byteLength
      for (; scanned < length && scanned < maxBytes; scanned++) {
        if (this.buffer.get(scanned) === 0x0a) {
          const line = this.buffer.subarray(0, scanned)
          this.buffer.consume(scanned + 1)
          return line
        }
      }
      if (scanned >= maxBytes) throw new FrameTooLargeError(scanned, maxBytes)
      if (!await this.pull()) {
        if (this.buffer.byteLength === 0) return null
        const rest = this.buffer.subarray()
        this.buffer.consume(this.buffer.byteLength)
        return rest
      }
    }
  }
}

export function encodeFrame (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.byteLength)
  new DataView(out.buffer).setUint32(0, body.byteLength, false)
  out.set(body, 4)
  return out
}

export function encodeLine (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.byteLength + 1)
  out.set(body, 0)
  out[body.byteLength] = 0x0a
  return out
}

/** Writes with backpressure: waits for drain when the stream's buffer is full. */
export async function writeBytes (stream: Stream, bytes: Uint8Array): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain()
}
