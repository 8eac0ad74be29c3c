/**
 * Service side of `/mcp+p2p/1.0.0` (wire-protocol.md §2): the per-stream state machine.
 * Frames are handled one at a time and answered in order, so clients may pipeline
 * several calls on one stream (B1).
 */
import type { Connection, Stream } from '@libp2p/interface'
import { FrameTooLargeError, FrameWriter, StreamReader } from '../protocol/framing.js'
import { tuneStream } from '../node/patches/index.js'
import { JsonParseError, MAX_JSON_DEPTH, exceedsJsonDepth, isPlainObject, parseWireJson } from '../protocol/json.js'
import { MCP_PROFILES, MCP_PROTOCOL, MCP_PROTOCOL_VERSION, SERVER_FEATURES, TASK_QUEUE_RPC_TOOL } from '../protocol/ids.js'
import type { Envelope } from '../protocol/coerce.js'
import { lookupOp } from '../protocol/ops.js'
import { IMPL_NAME, VERSION } from '../version.js'
import { errorReply } from './dispatch.js'
import type { Dispatch } from './dispatch.js'
import type { CallerInfo, ServiceContext } from './context.js'
import { invokeTool, toolTimeoutS } from './ops/tool-ops.js'
import type { JsonObject } from '../protocol/types.js'
import type { Logger } from '../logger.js'

const RPC_TOOL_DESCRIPTION = 'Invoke a TaskQueue RPC operation over MCP++.'

type RpcId = string | number | null

class RpcFailure extends Error {
  constructor (readonly code: number, message: string) {
    super(message)
  }
}

/** Token bucket, one token per frame (capacity = refill/s by default). */
class TokenBucket {
  private tokens: number
  private last = performance.now()
  constructor (private readonly capacity: number, private readonly refillPerSec: number) {
    this.tokens = capacity
  }

  take (): boolean {
    const now = performance.now()
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.last) / 1000 * this.refillPerSec)
    this.last = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

/** Longest string id echoed back (JSON-RPC ids are usually small numbers). */
const MAX_ID_CHARS = 256

/** The request id to echo: null when absent, undefined when it is not an acceptable id. */
function rpcId (id: unknown): RpcId | undefined {
  if (id === undefined || id === null) return null
  if (typeof id === 'number') return id
  if (typeof id === 'string' && id.length <= MAX_ID_CHARS) return id
  return undefined
}

/** `arguments` with no `op` and exactly one object member is unwrapped (kept from the original). */
function unwrapEnvelope (args: unknown): Envelope {
  if (!isPlainObject(args)) return {}
  if (!('op' in args)) {
    const keys = Object.keys(args)
    if (keys.length === 1 && isPlainObject(args[keys[0]])) return args[keys[0]] as Envelope
  }
  return args
}

export function initializeResult (ctx: ServiceContext, params: Record<string, unknown>): Record<string, unknown> {
  const profiles: readonly string[] = MCP_PROFILES
  let active = 'mcp++/p2p-transport'
  const requested = params.profile
  if (typeof requested === 'string' && profiles.includes(requested)) active = requested
  else if (Array.isArray(params.profiles)) {
    const match = params.profiles.find((p): p is string => typeof p === 'string' && profiles.includes(p))
    if (match !== undefined) active = match
  }
  const limits = ctx.options.mcp
  return {
    ok: true,
    protocolVersion: MCP_PROTOCOL_VERSION,
    serverInfo: { name: IMPL_NAME, version: VERSION },
    capabilities: {
      tools: { listChanged: true },
      mcpPlusPlusProfiles: [...profiles],
      experimental: {
        'mcp++/mcp-idl': false,
        'mcp++/cid-envelope': false,
        'mcp++/ucan': false,
        'mcp++/deontic-policy': false,
        'mcp++/risk-scheduling': false,
        'mcp++/p2p-transport': true
      }
    },
    transport: MCP_PROTOCOL,
    server: { peer_id: ctx.peerId() },
    profile_negotiation: { supports_profile_negotiation: true, mode: 'optional_additive', profiles: [...profiles] },
    active_profile: active,
    limits: {
      max_frame_bytes: limits.maxFrameBytes,
      max_frames: limits.maxFrames,
      rate_capacity: limits.rateCapacity,
      rate_refill_per_sec: limits.rateRefillPerSec
    },
    features: [...SERVER_FEATURES]
  }
}

function toolsList (ctx: ServiceContext): Record<string, unknown> {
  const tools: Array<Record<string, unknown>> = [{
    name: TASK_QUEUE_RPC_TOOL,
    description: RPC_TOOL_DESCRIPTION,
    inputSchema: { type: 'object', additionalProperties: true }
  }]
  if (ctx.options.enableTools) {
    for (const t of ctx.tools.list()) {
      if (t.name !== TASK_QUEUE_RPC_TOOL) tools.push({ name: t.name, description: t.description, inputSchema: t.inputSchema })
    }
  }
  tools.sort((a, b) => String(a.name) < String(b.name) ? -1 : 1)
  return { tools }
}

function isPipelinedCall (method: string, params: unknown): boolean {
  if ((method !== 'tools/call' && method !== 'tools.call') || !isPlainObject(params) || params.name !== TASK_QUEUE_RPC_TOOL) return false
  const op = unwrapEnvelope(params.arguments).op
  if (typeof op !== 'string') return false
  return lookupOp(op)?.pipelined === true
}

/**
 * Writes replies in request order while their ops may still be running. A reply is
 * queued into the stream's FrameWriter as soon as it and every earlier reply are
 * ready, so the replies of one group commit leave in one Yamux frame. Each link
 * catches its own failure (no rejected promise is left unawaited); `drain` waits for
 * everything pushed so far to be handed to the stream and reports the first write
 * failure.
 */
class OrderedReplies {
  readonly writer: FrameWriter
  /** Settles once every reply pushed so far is queued into the writer. */
  private queued: Promise<void> = Promise.resolve()
  /** Replies pushed and not yet queued into the writer. */
  private waiting = 0
  private lastWrite: Promise<void> = Promise.resolve()
  private failure: unknown = null

  constructor (stream: Stream) {
    this.writer = new FrameWriter(stream, (err) => { this.failure ??= err })
  }

  /** Queues a reply whose op may still run; it is written after every earlier one. */
  push (reply: Promise<Record<string, unknown>>): void {
    const prevQueued = this.queued
    this.waiting++
    this.queued = (async () => {
      try {
        const message = await reply
        await prevQueued
        this.write(message)
      } catch (err) {
        this.failure ??= err
      } finally {
        this.waiting--
      }
    })()
  }

  /**
   * Queues a reply now, behind everything already queued. Called directly (rather
   * than through push) once settled() has resolved, a strictly serial request costs
   * no promise chain of its own.
   */
  write (message: Record<string, unknown>): void {
    if (this.failure !== null) return
    this.lastWrite = this.writer.writeJson(JSON.stringify(message))
  }

  /** Resolves once every reply pushed so far is queued into the writer (ops done). */
  async settled (): Promise<void> {
    if (this.waiting > 0) await this.queued
  }

  /** Every reply so far handed to the stream; throws the first write failure. */
  async drain (): Promise<void> {
    await this.settled()
    await this.lastWrite.catch(() => {})
    if (this.failure !== null) throw this.failure
  }
}

export function createMcpHandler (ctx: ServiceContext, dispatch: Dispatch, log: Logger): (stream: Stream, connection: Connection) => void {
  const limits = ctx.options.mcp
  const stats = ctx.stats.mcp
  /** Tool listing and direct tool calls are the admin role's (README "Roles"). */
  const adminOk = (peer: string, token: unknown): boolean => ctx.access.check(peer, token, 'admin').ok

  const writeError = async (writer: FrameWriter, id: RpcId, code: number, message: string): Promise<void> => {
    await writer.writeJson(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }))
  }

  async function serve (stream: Stream, connection: Connection): Promise<void> {
    stats.sessions_started++
    tuneStream(stream)
    const reader = new StreamReader(stream)
    const bucket = new TokenBucket(limits.rateCapacity, limits.rateRefillPerSec)
    const closed = new AbortController()
    stream.addEventListener('close', () => closed.abort(), { once: true })
    const caller: CallerInfo = { remotePeerId: connection.remotePeer.toString(), signal: closed.signal }
    const replies = new OrderedReplies(stream)
    const writer = replies.writer
    let initialized = false
    let initToken: unknown
    let frames = 0
    /** Every earlier reply written (so every earlier op applied), then this error frame. */
    const failFrame = async (id: RpcId, code: number, message: string): Promise<void> => {
      await replies.drain()
      await writeError(writer, id, code, message)
    }

    // Idle close (§2.2) with one timer per stream rather than one per frame: it checks
    // when the stream last saw a frame or finished an op, and re-arms for the rest.
    let lastActive = performance.now()
    let busy = 0
    const checkIdle = (): void => {
      const quiet = performance.now() - lastActive
      if (busy === 0 && quiet >= limits.idleTimeoutMs) stream.abort(new Error('idle timeout'))
      else idleTimer = setTimeout(checkIdle, Math.max(1, limits.idleTimeoutMs - (busy === 0 ? quiet : 0)))
    }
    let idleTimer = setTimeout(checkIdle, limits.idleTimeoutMs)
    const respond = async (method: string, params: unknown, id: RpcId): Promise<Record<string, unknown>> => {
      busy++
      try {
        return { jsonrpc: '2.0', id, result: await handleMethod(method, params) }
      } catch (err) {
        if (err instanceof RpcFailure) return { jsonrpc: '2.0', id, error: { code: err.code, message: err.message } }
        stats.internal_errors++
        log.error({ err }, 'mcp request failed')
        return { jsonrpc: '2.0', id, error: { code: -32603, message: 'internal_error' } }
      } finally {
        busy--
        lastActive = performance.now()
      }
    }

    try {
      for (;;) {
        let body: Uint8Array | null
        try {
          // Pipelined frames that arrived together are taken without a promise each.
          body = reader.takeFrame(limits.maxFrameBytes) ?? await reader.readFrame(limits.maxFrameBytes)
        } catch (err) {
          if (err instanceof FrameTooLargeError) {
            stats.frame_errors++
            await failFrame(null, -32003, 'frame_too_large')
            return
          }
          // A stream that ends inside a frame (§2.2): that partial frame goes unanswered,
          // but every complete request before it still gets its reply, in order.
          await replies.drain().catch(() => {})
          return
        }
        lastActive = performance.now()
        if (body === null) {
          await replies.drain()
          return
        }

        let msg: unknown
        try {
          msg = parseWireJson(body)
        } catch (err) {
          if (!(err instanceof JsonParseError)) throw err
          stats.frame_errors++
          await failFrame(null, -32003, 'invalid_json')
          return
        }
        if (!isPlainObject(msg)) {
          stats.frame_errors++
          await failFrame(null, -32003, 'invalid_message')
          return
        }
        const isNotification = !('id' in msg)
        const id = rpcId(msg.id)
        if (id === undefined) {
          // ★ Ids are echoed, so only a string of bounded length, a number or null is one.
          stats.frame_errors++
          await failFrame(null, -32600, 'invalid_id')
          return
        }
        frames++
        if (frames > limits.maxFrames || !bucket.take()) {
          stats.rate_limited++
          if (!isNotification) await failFrame(id, -32010, 'rate_limited')
          else await replies.drain()
          return
        }
        const method = typeof msg.method === 'string' ? msg.method : ''
        if (msg.jsonrpc !== '2.0') {
          if (isNotification) continue
          await failFrame(id, -32600, 'invalid_jsonrpc')
          return
        }
        if (!initialized && method !== 'initialize') {
          if (isNotification) continue
          await failFrame(id, -32000, 'init_required')
          return
        }
        if (isNotification) continue
        const params = msg.params
        if (exceedsJsonDepth(body)) {
          // ★ Typed refusal of pathologically nested input (see MAX_JSON_DEPTH).
          await replies.settled()
          replies.write(tooDeepReply(method, params, id))
          continue
        }
        // Queue writes join the group commit in call order, so the next frame may be read
        // while they commit (replies still go out in order). Anything else starts only
        // after every earlier op has finished: the stream behaves as if strictly serial.
        if (isPipelinedCall(method, params)) {
          replies.push(respond(method, params, id))
        } else {
          await replies.settled()
          replies.write(await respond(method, params, id))
        }
      }
    } finally {
      clearTimeout(idleTimer)
    }

    async function handleMethod (method: string, params: unknown): Promise<Record<string, unknown>> {
      switch (method) {
        case 'initialize': {
          const p = isPlainObject(params) ? params : {}
          if (!initialized) stats.initialized_sessions++
          initialized = true
          initToken = p.token
          return initializeResult(ctx, p)
        }
        case 'tools/list':
        case 'tools.list':
          // ★ The tool names are the service's business: the token is required, as for tools/call.
          if (!adminOk(caller.remotePeerId, initToken)) {
            stats.unauthorized++
            throw new RpcFailure(-32001, 'unauthorized')
          }
          return toolsList(ctx)
        case 'tools/call':
        case 'tools.call': {
          if (!isPlainObject(params)) throw new RpcFailure(-32602, 'invalid_params')
          const name = typeof params.name === 'string' ? params.name : ''
          if (name === TASK_QUEUE_RPC_TOOL) {
            // The caller is the connection's peer (§2.4): an `_remote_peer_id` the original
            // trusted is dropped. The envelope is the parsed frame's own object, so it is
            // copied only then (a `delete` on it would also slow every later read of it).
            let env = unwrapEnvelope(params.arguments)
            if ('_remote_peer_id' in env) {
              const { _remote_peer_id: _ignored, ...rest } = env
              env = rest
            }
            return { content: await dispatch(env, caller) }
          }
          return { content: await directToolCall(name, params.arguments) }
        }
        default:
          throw new RpcFailure(-32601, 'method_not_found')
      }
    }

    function tooDeepReply (method: string, params: unknown, id: RpcId): Record<string, unknown> {
      const detail = `request nested deeper than ${MAX_JSON_DEPTH} levels`
      if ((method === 'tools/call' || method === 'tools.call') && isPlainObject(params) && params.name === TASK_QUEUE_RPC_TOOL) {
        return { jsonrpc: '2.0', id, result: { content: errorReply(ctx, 'invalid_params', detail) } }
      }
      return { jsonrpc: '2.0', id, error: { code: -32602, message: 'invalid_params' } }
    }

    async function directToolCall (name: string, args: unknown): Promise<unknown> {
      if (!ctx.options.enableTools || !adminOk(caller.remotePeerId, initToken)) {
        stats.unauthorized++
        throw new RpcFailure(-32001, 'unauthorized')
      }
      if (!ctx.tools.has(name)) throw new RpcFailure(-32002, 'unknown_tool')
      if (args !== undefined && args !== null && !isPlainObject(args)) throw new RpcFailure(-32002, 'invalid_params')
      const outcome = await invokeTool(ctx, name, (args ?? {}) as JsonObject, caller, toolTimeoutS(undefined, ctx.options.waitMaxS))
      if (outcome.ok) return outcome.result
      throw new RpcFailure(-32002, outcome.error === 'invalid_params' ? 'invalid_params' : 'tool_error')
    }
  }

  return (stream, connection) => {
    serve(stream, connection)
      .catch((err: unknown) => {
        log.debug({ err }, 'mcp stream ended with an error')
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
      .finally(() => {
        stats.sessions_closed++
        if (stream.status === 'open') stream.close().catch(() => stream.abort(new Error('close failed')))
      })
  }
}
