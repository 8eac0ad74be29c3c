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

/** The event surface of a libp2p v3 stream that StreamReader listens to. */
interface MessageSource {
  readStatus: string
  /** True once the stream emitted 'end' (no more data will come); may be absent on other sources. */
  readableEnded?: boolean
  addEventListener: (type: string, listener: (evt: Event) => void) => void
}

function isMessageSource (source: unknown): source is MessageSource {
  const s = source as Partial<MessageSource> | null
  return typeof s === 'object' && s !== null && typeof s.addEventListener === 'function' && typeof s.readStatus === 'string'
}

/**
 * Pull-based reader, buffering only what a frame needs. Over a libp2p stream it
 * listens to the stream's events directly: the stream's async iterator goes through
 * an it-pushable queue and an async generator per chunk, which was a measurable part
 * of a small request's cost. Other async iterables (tests, generators) are pulled.
 * Either way: data in arrival order, end of stream after the buffered data, and a
 * stream that closed with an error throws that error once its data is consumed.
 */
export class StreamReader {
  private readonly iterator: AsyncIterator<Uint8Array | Uint8ArrayList> | null
  private readonly buffer = new Uint8ArrayList()
  private ended = false
  private failure: unknown = undefined
  private wake: (() => void) | null = null

  constructor (source: AsyncIterable<Uint8Array | Uint8ArrayList>) {
    if (!isMessageSource(source)) {
      this.iterator = source[Symbol.asyncIterator]()
      return
    }
    this.iterator = null
    // As the stream's own iterator: nothing more to read unless readable or paused.
    if (source.readStatus !== 'readable' && source.readStatus !== 'paused') {
      this.ended = true
      return
    }
    source.addEventListener('message', (evt) => {
      this.buffer.append((evt as Event & { data: Uint8Array | Uint8ArrayList }).data)
      this.notify()
    })
    source.addEventListener('close', (evt) => {
      const error = (evt as Event & { error?: unknown }).error
      if (error != null && !this.ended) this.failure = error
      this.ended = true
      this.notify()
    })
    source.addEventListener('remoteCloseWrite', () => {
      this.ended = true
      this.notify()
    })
    // A remote that wrote and closed before this reader existed (a service that answers
    // a stream with one refusal and closes it): its 'remoteCloseWrite' has passed, and
    // 'end' follows the buffered data, which the 'message' listener above receives first.
    // A reset dispatches 'end' just before its 'close' with the error: taken a microtask
    // later, the error is recorded first and still thrown.
    source.addEventListener('end', () => {
      queueMicrotask(() => {
        this.ended = true
        this.notify()
      })
    })
    if (source.readableEnded === true) this.ended = true
  }

  get buffered (): number {
    return this.buffer.byteLength
  }

  private notify (): void {
    const wake = this.wake
    this.wake = null
    wake?.()
  }

  /** Waits for more data; false at end of stream (after throwing a close error once). */
  private async pull (): Promise<boolean> {
    if (this.iterator === null) {
      const before = this.buffer.byteLength
      if (!this.ended) await new Promise<void>((resolve) => { this.wake = resolve })
      // Data that arrived together with the end still counts.
      if (this.buffer.byteLength > before || !this.ended) return true
      const failure = this.failure
      if (failure !== undefined) {
        this.failure = undefined
        throw failure
      }
      return false
    }
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
   * The next frame body if the buffer already holds all of it, else undefined
   * (nothing consumed). Throws FrameTooLargeError as readFrame does. Lets a reader of
   * pipelined frames take them without a promise per frame.
   */
  takeFrame (maxBytes: number): Uint8Array | undefined {
    const buffered = this.buffer.byteLength
    if (buffered < 4) return undefined
    const size = this.buffer.getUint32(0, false)
    if (size > maxBytes) throw new FrameTooLargeError(size, maxBytes)
    if (buffered < 4 + size) return undefined
    const body = this.buffer.subarray(4, 4 + size)
    this.buffer.consume(4 + size)
    return body
  }

  /**
   * One MCP++ frame body. Returns null on a clean end of stream before a header;
   * throws FrameTooLargeError before reading an oversized body, TruncatedFrameError
   * when the stream ends inside a frame.
   */
  async readFrame (maxBytes: number): Promise<Uint8Array | null> {
    // One wait per arrival of data, however many pieces the frame comes in.
    for (;;) {
      const frame = this.takeFrame(maxBytes)
      if (frame !== undefined) return frame
      if (!await this.pull()) {
        const left = this.buffer.byteLength
        if (left === 0) return null
        throw new TruncatedFrameError(left < 4 ? 'stream ended inside a frame header' : 'stream ended inside a frame')
      }
    }
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

/**
 * Coalesces the MCP++ frames written to one stream in the same turn into a single
 * `stream.send`. Every send becomes its own Yamux frame and Noise message (header,
 * encryption, tag, and a receive event on the other side), so pipelined calls —
 * a client's concurrent requests, the service's replies to a group commit — cost
 * one of each per batch instead of per frame. Flushed on `process.nextTick`, i.e.
 * once the microtasks of the current turn have run: nothing waits for a timer.
 * Frames keep their order; the bytes are exactly those of separate writes.
 */
interface Batch {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

function newBatch (onError: ((err: unknown) => void) | undefined): Batch {
  let resolve: () => void = () => {}
  let reject: (err: unknown) => void = () => {}
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  // Callers may ignore the promise (see onError), so a failure is never left unhandled.
  promise.catch(onError ?? (() => {}))
  return { promise, resolve, reject }
}

export class FrameWriter {
  private readonly stream: Stream
  private texts: string[] = []
  private sizes: number[] = []
  private total = 0
  private batch: Batch | null = null
  private readonly onError: ((err: unknown) => void) | undefined

  /** `onError` hears of every batch the stream refused, once per batch. */
  constructor (stream: Stream, onError?: (err: unknown) => void) {
    this.stream = stream
    this.onError = onError
  }

  /**
   * Queues one frame whose body is `json` (already serialized) of `byteLength` UTF-8
   * bytes. Resolves once the batch was handed to the stream (after a drain when
   * the stream's buffer was full); rejects when the stream refused it. Not async:
   * the batch's promise is returned as is, and may be ignored when `onError` is set.
   */
  writeJson (json: string, byteLength: number = Buffer.byteLength(json)): Promise<void> {
    this.texts.push(json)
    this.sizes.push(byteLength)
    this.total += 4 + byteLength
    if (this.batch === null) {
      this.batch = newBatch(this.onError)
      process.nextTick(this.flush)
    }
    return this.batch.promise
  }

  private readonly flush = (): void => {
    const batch = this.batch
    if (batch === null) return
    const texts = this.texts
    const sizes = this.sizes
    const out = Buffer.allocUnsafe(this.total)
    this.batch = null
    this.texts = []
    this.sizes = []
    this.total = 0
    let at = 0
    for (let i = 0; i < texts.length; i++) {
      out.writeUInt32BE(sizes[i], at)
      out.write(texts[i], at + 4, sizes[i], 'utf8')
      at += 4 + sizes[i]
    }
    try {
      if (this.stream.send(out)) batch.resolve()
      else this.stream.onDrain().then(() => { batch.resolve() }, (err: unknown) => { batch.reject(err) })
    } catch (err) {
      batch.reject(err)
    }
  }
}
