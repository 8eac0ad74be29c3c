/**
 * Client side of one `/mcp+p2p/1.0.0` stream: initialise once, then any number of
 * pipelined calls (B1). The service answers in request order, so replies are matched
 * FIFO (and checked against the echoed id). A call that times out poisons the stream —
 * its reply may still arrive — so the session is closed and later calls use a new one.
 */
import type { Stream } from '@libp2p/interface'
import { FrameTooLargeError, FrameWriter, StreamReader, TruncatedFrameError } from '../protocol/framing.js'
import { JsonParseError, isPlainObject, parseWireJson } from '../protocol/json.js'
import { TASK_QUEUE_RPC_TOOL } from '../protocol/ids.js'
import { VERSION } from '../version.js'
import { DeadlineError, DialError, ProtocolError, RemoteError } from './errors.js'

export interface McpSessionOptions {
  /** Sent in `initialize` (direct tool calls) — envelopes carry their own token. */
  token: string | null
  maxOutboundFrameBytes: number
  maxInboundFrameBytes: number
}

interface Pending {
  id: number
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  /** performance.now() by which the reply must have arrived. */
  deadline: number
  method: string
  timeoutMs: number
}

export interface ServerLimits {
  maxFrames: number
  rateCapacity: number
  rateRefillPerSec: number
}

/** Leave this many frames unused so a session is retired before the service would cut it off. */
const FRAME_MARGIN = 2

export class McpSession {
  private readonly stream: Stream
  private readonly reader: StreamReader
  private readonly writer: FrameWriter
  private readonly opts: McpSessionOptions
  private readonly queue: Pending[] = []
  private nextId = 1
  private framesSent = 0
  private limits: ServerLimits = { maxFrames: 128, rateCapacity: 128, rateRefillPerSec: 128 }
  private bucket = 128
  private bucketAt = performance.now()
  private failure: Error | null = null
  /**
   * One timer for every pending call's deadline (a timer per call cost a setTimeout
   * and a clearTimeout per request), armed for the earliest one. It holds the
   * process open only while calls are pending, like a timer per call did.
   */
  private deadlineTimer: NodeJS.Timeout | undefined
  private deadlineAt = Infinity
  /** performance.now() of the last activity, so pools can retire idle sessions first. */
  lastUsed = performance.now()

  private constructor (stream: Stream, opts: McpSessionOptions) {
    this.stream = stream
    this.reader = new StreamReader(stream)
    // A refused send fails every pending call (and the session): they may have been in it.
    this.writer = new FrameWriter(stream, (err) => { this.fail(new DialError('sending failed', { cause: err, sent: false })) })
    this.opts = opts
    stream.addEventListener('close', () => {
      // An error is built only when it will be reported (its stack trace is not free).
      if (this.failure === null || this.queue.length > 0) this.fail(new DialError('stream closed', { sent: true }))
    }, { once: true })
  }

  /** Wraps an opened stream and performs `initialize`. */
  static async open (stream: Stream, opts: McpSessionOptions, timeoutMs: number): Promise<McpSession> {
    const { session, ready } = McpSession.start(stream, opts, timeoutMs)
    await ready
    return session
  }

  /**
   * Like `open`, but returns at once with `initialize` in flight: calls made in the same
   * turn leave in the same frame, behind it, which saves the new stream a round trip.
   * The service handles a stream's frames in order, so they run after `initialize`.
   * `ready` settles with initialize's outcome; the caller must observe it.
   */
  static start (stream: Stream, opts: McpSessionOptions, timeoutMs: number): { session: McpSession, ready: Promise<void> } {
    const session = new McpSession(stream, opts)
    session.readLoop()
    const params: Record<string, unknown> = {
      clientInfo: { name: 'taskqueue-p2p-client', version: VERSION },
      profiles: ['mcp++/p2p-transport']
    }
    if (opts.token !== null) params.token = opts.token
    const ready = session.request('initialize', params, timeoutMs).then((result) => { session.applyInitialize(result) })
    return { session, ready }
  }

  private applyInitialize (result: unknown): void {
    if (!isPlainObject(result)) throw new ProtocolError('initialize returned no object')
    const limits = result.limits
    if (isPlainObject(limits)) {
      const n = (v: unknown, d: number): number => typeof v === 'number' && v > 0 ? v : d
      this.limits = {
        maxFrames: n(limits.max_frames, 128),
        rateCapacity: n(limits.rate_capacity, 128),
        rateRefillPerSec: n(limits.rate_refill_per_sec, 128)
      }
      // Every frame sent so far (initialize and any pipelined calls) came out of the bucket.
      this.bucket = this.limits.rateCapacity - this.framesSent
    }
  }

  get pending (): number {
    return this.queue.length
  }

  get usable (): boolean {
    return this.failure === null && this.stream.status === 'open' && this.stream.writeStatus === 'writable'
  }

  /** True when one more call fits in the service's frame count and rate bucket. */
  get hasCapacity (): boolean {
    if (!this.usable) return false
    if (this.framesSent + FRAME_MARGIN >= this.limits.maxFrames) return false
    const now = performance.now()
    const tokens = Math.min(this.limits.rateCapacity, this.bucket + (now - this.bucketAt) / 1000 * this.limits.rateRefillPerSec)
    return tokens >= 1 + FRAME_MARGIN / 2
  }

  /** One TaskQueue envelope through `tools/call task_queue.rpc`; resolves with the raw reply. */
  async call (envelope: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    const result = await this.request('tools/call', { name: TASK_QUEUE_RPC_TOOL, arguments: envelope }, timeoutMs)
    if (!isPlainObject(result) || !isPlainObject(result.content)) throw new ProtocolError('tools/call result has no content object')
    return result.content
  }

  /**
   * A raw JSON-RPC request. Not async: the reply's promise is returned as is, one
   * step fewer between the reply frame and the caller.
   */
  request (method: string, params: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    try {
      return this.send(method, params, timeoutMs)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private send (method: string, params: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    if (this.failure !== null) throw this.failure
    const id = this.nextId++
    const body = JSON.stringify({ jsonrpc: '2.0', id, method, params })
    const bodyBytes = Buffer.byteLength(body)
    if (bodyBytes > this.opts.maxOutboundFrameBytes) {
      throw new ProtocolError(`request of ${bodyBytes} bytes exceeds the outbound frame limit of ${this.opts.maxOutboundFrameBytes}`, false)
    }
    this.spendFrame()
    this.lastUsed = performance.now()
    const deadline = this.lastUsed + timeoutMs
    const reply = new Promise<unknown>((resolve, reject) => {
      this.queue.push({ id, resolve, reject, deadline, method, timeoutMs })
    })
    this.armDeadline(deadline)
    // Calls made in the same turn share one Yamux frame (FrameWriter). A failed send
    // fails this call through its pending entry (the writer's onError).
    void this.writer.writeJson(body, bodyBytes)
    return reply
  }

  private armDeadline (deadline: number): void {
    if (this.deadlineTimer !== undefined && deadline >= this.deadlineAt) {
      this.deadlineTimer.ref()
      return
    }
    clearTimeout(this.deadlineTimer)
    this.deadlineAt = deadline
    this.deadlineTimer = setTimeout(this.onDeadline, Math.max(0, deadline - performance.now()))
  }

  private readonly onDeadline = (): void => {
    this.deadlineTimer = undefined
    this.deadlineAt = Infinity
    const now = performance.now()
    let next = Infinity
    for (const p of this.queue) {
      if (p.deadline <= now) {
        this.fail(new DeadlineError(`no reply to ${p.method} within ${p.timeoutMs} ms`))
        return
      }
      next = Math.min(next, p.deadline)
    }
    if (next !== Infinity) this.armDeadline(next)
  }

  close (): void {
    if (this.failure === null || this.queue.length > 0) this.fail(new DialError('session closed', { sent: false }))
    if (this.stream.status === 'open') this.stream.close().catch(() => this.stream.abort(new Error('close failed')))
  }

  private spendFrame (): void {
    const now = performance.now()
    this.bucket = Math.min(this.limits.rateCapacity, this.bucket + (now - this.bucketAt) / 1000 * this.limits.rateRefillPerSec) - 1
    this.bucketAt = now
    this.framesSent++
  }

  private fail (err: Error): void {
    if (this.failure === null) this.failure = err
    clearTimeout(this.deadlineTimer)
    this.deadlineTimer = undefined
    for (const p of this.queue.splice(0)) p.reject(err)
    if (this.stream.status === 'open') this.stream.abort(err)
  }

  private readLoop (): void {
    const run = async (): Promise<void> => {
      for (;;) {
        // Replies that arrived together are taken without a promise each.
        const body = this.reader.takeFrame(this.opts.maxInboundFrameBytes) ?? await this.reader.readFrame(this.opts.maxInboundFrameBytes)
        if (body === null) {
          this.fail(new DialError('stream closed by the service', { sent: true }))
          return
        }
        const msg = parseWireJson(body)
        const pending = this.queue.shift()
        if (pending === undefined) throw new ProtocolError('reply without a request')
        // The deadline timer stays armed (re-arming per call costs more); it only
        // stops holding the process open.
        if (this.queue.length === 0) this.deadlineTimer?.unref()
        this.lastUsed = performance.now()
        if (!isPlainObject(msg)) {
          pending.reject(new ProtocolError('reply is not a JSON object'))
          continue
        }
        if (isPlainObject(msg.error)) {
          const rpcError = msg.error
          pending.reject(rpcError.code === RPC_LIMIT_CODE
            ? limitRefusal(rpcError)
            : new ProtocolError(`JSON-RPC error ${String(rpcError.code)}: ${String(rpcError.message)}`))
          continue
        }
        if (msg.id !== null && msg.id !== pending.id) {
          pending.reject(new ProtocolError(`reply id ${String(msg.id)} does not match request id ${pending.id}`))
          continue
        }
        pending.resolve(msg.result)
      }
    }
    run().catch((err: unknown) => {
      if (err instanceof FrameTooLargeError) this.fail(new ProtocolError(`reply frame too large (${err.size} bytes)`))
      else if (err instanceof JsonParseError || err instanceof TruncatedFrameError) this.fail(new ProtocolError(`bad reply frame: ${err.message}`))
      else if (err instanceof ProtocolError) this.fail(err)
      else this.fail(new DialError('stream failed', { cause: err, sent: true }))
    })
  }
}

/** JSON-RPC code of a refusal by a limit (wire-protocol.md §2.2; README "Security"). */
const RPC_LIMIT_CODE = -32010

/**
 * A stream refused by a service limit (`rate_limited`, or `busy` for PEER_MAX_STREAMS):
 * a typed, retryable RemoteError; the service ran nothing of it (`sent` false), so any
 * op may be tried again after a pause.
 */
function limitRefusal (rpcError: Record<string, unknown>): RemoteError {
  const data = isPlainObject(rpcError.data) ? rpcError.data : {}
  const err = new RemoteError({
    ok: false,
    error: rpcError.message === 'busy' ? 'busy' : 'rate_limited',
    detail: typeof data.detail === 'string' ? data.detail : 'refused by a limit of the service',
    retryable: true
  })
  err.sent = false
  return err
}
