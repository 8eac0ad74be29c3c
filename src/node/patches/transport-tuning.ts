/**
 * Two transport tunings that keep the bytes on the wire valid for any peer but cut
 * the per-message cost of our small request/reply frames over TCP + Noise + Yamux.
 *
 * 1. `batchSocketWrites`: coalesces the socket writes of one event-loop turn into a
 * single `writev`.
 *
 * Why: below our framing, every message crosses Yamux and Noise, and each layer
 * writes on its own. Noise sends a 2-byte length and the ciphertext as two
 * `socket.write` calls, and Yamux answers every data frame it receives with a window
 * update (another two). Measured on loopback: 4 syscalls and 4 TCP segments per
 * request on each side, 17 % of the service's CPU in `writeBuffer`, and one thrown
 * RangeError per extra segment in Noise's length decoder on the receiving side.
 *
 * How: the first write of a turn corks the socket and schedules `uncork` with
 * `process.nextTick`, which runs once the current callback's microtasks are done —
 * so everything written while handling one batch of input (the Noise length and
 * ciphertext, the replies of a group commit) leaves in one syscall, and nothing
 * waits for another event-loop iteration (a `setImmediate` flush, tried first, put
 * the replies written from the group-commit immediate one iteration later).
 * Bytes and their order on the wire are unchanged.
 *
 * The TCP socket is reached through `connection.maConn.socket`, an implementation
 * detail of js-libp2p 3 / @libp2p/tcp 11. Anything else (relayed connections,
 * another transport, a future layout) is left alone.
 *
 * 2. `deferWindowUpdates`: js-yamux answers every data frame it receives with a
 * window update, so each request and each reply costs a second (encrypted) frame in
 * the opposite direction. The Yamux spec leaves the timing to the receiver; like
 * go-yamux we send the update only once half of the receive window is used. A
 * stream's 256 KiB window covers well over a hundred of our frames, so in practice
 * updates are only sent for large payloads. Measured with an in-process echo over
 * loopback: CPU per round trip 290 µs → 214 µs with write batching, → ~155 µs with
 * both.
 *
 * 3. `quietNoiseLengthDecoder`: Noise's frame decoder learns that its buffer is used
 * up by catching the RangeError its 2-byte length reader throws — once per TCP read,
 * and building that error (stack capture through optimized frames) cost ~30 µs, about
 * a tenth of the service's CPU per request. We answer "not enough bytes yet" without
 * throwing; the decoder then waits for more data exactly as after the exception.
 *
 * 4. `skipUnheardIdleEvents`: every js-libp2p message stream (the TCP connection, the
 * Noise channel above it, each Yamux stream) builds a `CustomEvent` and dispatches it
 * through an EventTarget ('idle') each time its send queue empties — once per frame at
 * every layer — although nobody listens for it on our request path. We skip the event
 * while it has no listener; anything that waits for 'idle' (a closing stream draining
 * its writes) registers a listener first and gets it as before. Measured interleaved
 * against the build without it: ~30 µs less service CPU per submit → completed round
 * trip (eight frames through three layers).
 *
 * `tuneConnection` applies 1, 3 and 4 to a connection, `deferWindowUpdates` 2 and 4 to
 * a stream.
 */
import { Socket } from 'node:net'
import type { Connection } from '@libp2p/interface'
import { reportPatch } from './report.js'

const batched = new WeakSet<Socket>()

/** The raw TCP socket under a libp2p connection, if it has one we recognise. */
function socketOf (connection: Connection): Socket | null {
  const maConn = (connection as unknown as { maConn?: { socket?: unknown } }).maConn
  const socket = maConn?.socket
  return socket instanceof Socket ? socket : null
}

/** Write batching, the quiet Noise decoder and unheard 'idle' events for one connection (each skips what it does not recognise). */
export function tuneConnection (connection: Connection): void {
  batchSocketWrites(connection)
  quietNoiseLengthDecoder(connection)
  const layers = connection as unknown as { maConn?: unknown, muxer?: { maConn?: unknown } }
  skipUnheardIdleEvents(layers.maConn)
  skipUnheardIdleEvents(layers.muxer?.maConn)
}

interface EventSource {
  safeDispatchEvent: (type: string, detail?: unknown) => boolean
  listenerCount: (type: string) => number
}

const idleSkipped = new WeakSet<object>()

/** Skips a message stream's 'idle' event while nobody listens for it; false when `target` is not one we recognise. */
export function skipUnheardIdleEvents (target: unknown): boolean {
  if (target === null || typeof target !== 'object') return false
  const t = target as Partial<EventSource>
  if (typeof t.safeDispatchEvent !== 'function' || typeof t.listenerCount !== 'function') {
    return reportPatch('unheard-idle-events', false, 'not a message stream')
  }
  if (idleSkipped.has(target)) return true
  idleSkipped.add(target)
  const dispatch = t.safeDispatchEvent
  t.safeDispatchEvent = function (this: EventSource, type: string, detail?: unknown): boolean {
    // What dispatchEvent returns for an event nobody cancels.
    if (type === 'idle' && this.listenerCount('idle') === 0) return true
    return dispatch.call(this, type, detail)
  }
  return reportPatch('unheard-idle-events', true)
}

type WriteFn = Socket['write']

/** Enables write batching on the connection's socket; false when it is not applicable. */
export function batchSocketWrites (connection: Connection): boolean {
  const socket = socketOf(connection)
  if (socket === null) return reportPatch('socket-write-batching', false, 'no TCP socket under the connection')
  if (batched.has(socket)) return true
  batched.add(socket)
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    // end() and destroy() uncork by themselves; uncorking again would be harmless
    // but the check keeps the count balanced if anything else corks this socket.
    if (socket.writableCorked > 0) socket.uncork()
  }
  const write: WriteFn = socket.write
  const batchedWrite = function (this: Socket, ...args: Parameters<WriteFn>): boolean {
    if (!scheduled && !socket.destroyed && socket.writable) {
      scheduled = true
      socket.cork()
      process.nextTick(flush)
    }
    return (write as (...a: Parameters<WriteFn>) => boolean).apply(this, args)
  }
  socket.write = batchedWrite as WriteFn
  return reportPatch('socket-write-batching', true)
}

/**
 * js-yamux 8 `StreamState.Established`: the only state in which an update carries no
 * flags. The enum is not exported; test/unit/patch-shapes.test.ts checks the number on a
 * real stream.
 */
export const YAMUX_ESTABLISHED = 3

interface YamuxStreamInternals {
  state: unknown
  recvWindow: unknown
  recvWindowCapacity: unknown
  sendWindowUpdate: unknown
}

const deferred = new WeakSet<object>()

/** Sends window updates at half-window like go-yamux; false when the stream is not a js-yamux stream we recognise. */
export function deferWindowUpdates (stream: object): boolean {
  skipUnheardIdleEvents(stream)
  const s = stream as Partial<YamuxStreamInternals>
  if (typeof s.sendWindowUpdate !== 'function' || typeof s.recvWindow !== 'number' ||
    typeof s.recvWindowCapacity !== 'number' || typeof s.state !== 'number') {
    return reportPatch('yamux-deferred-window-updates', false, 'not a js-yamux stream')
  }
  if (deferred.has(stream)) return true
  deferred.add(stream)
  const original = s.sendWindowUpdate as (this: unknown) => void
  s.sendWindowUpdate = function (this: YamuxStreamInternals): void {
    // Established means no SYN/ACK flag is owed, so skipping sends nothing the peer
    // needs; in any other state (opening, paused) the library decides as before.
    if (this.state === YAMUX_ESTABLISHED && typeof this.recvWindowCapacity === 'number' &&
      typeof this.recvWindow === 'number' && this.recvWindowCapacity * 2 > this.recvWindow) return
    original.call(this)
  }
  return reportPatch('yamux-deferred-window-updates', true)
}

interface LengthPrefixedDecoderInternals {
  lengthDecoder: unknown
  encodingLength: unknown
  maxDataLength: unknown
}

/** Noise frames carry a u16 length. */
const NOISE_LENGTH_BYTES = 2
/**
 * Returned for a buffer too short to hold the length: any length whose frame cannot
 * fit in fewer than 2 buffered bytes makes the decoder stop and wait, as the thrown
 * RangeError did. It must stay within the decoder's maxDataLength (4 MiB by default).
 */
const NEED_MORE = 0xffff

const quieted = new WeakSet<object>()

/** Replaces the throwing length reader of the connection's Noise decoder; false if not recognised. */
export function quietNoiseLengthDecoder (connection: Connection): boolean {
  const encrypted = (connection as unknown as { muxer?: { maConn?: { decoder?: unknown } } }).muxer?.maConn
  const decoder = encrypted?.decoder as Partial<LengthPrefixedDecoderInternals> | undefined
  if (decoder === undefined || decoder === null || typeof decoder !== 'object') return reportPatch('noise-quiet-length-decoder', false, 'no Noise decoder')
  const original = decoder.lengthDecoder
  const encodingLength = decoder.encodingLength
  if (typeof original !== 'function' || typeof encodingLength !== 'function') return reportPatch('noise-quiet-length-decoder', false, 'decoder has another shape')
  if (quieted.has(decoder)) return true
  // Only the u16 prefix of Noise, with room for NEED_MORE under the data limit.
  if (encodingLength(0) !== NOISE_LENGTH_BYTES) return reportPatch('noise-quiet-length-decoder', false, 'length prefix is not a u16')
  if (typeof decoder.maxDataLength !== 'number' || decoder.maxDataLength < NEED_MORE) return reportPatch('noise-quiet-length-decoder', false, 'data limit too small')
  quieted.add(decoder)
  const read = original as (data: { byteLength: number }) => number
  decoder.lengthDecoder = (data: { byteLength: number }): number => data.byteLength < NOISE_LENGTH_BYTES ? NEED_MORE : read(data)
  return reportPatch('noise-quiet-length-decoder', true)
}
