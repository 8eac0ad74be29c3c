/**
 * Service side of `/mcp+p2p/1.0.0` (wire-protocol.md §2): the per-stream state machine.
 * Frames are handled one at a time and answered in order, so clients may pipeline
 * several calls on one stream (B1).
 */
import type { Connection, Stream } from '@libp2p/interface'
import { FrameTooLargeError, StreamReader, encodeFrame, writeBytes } from '../protocol/framing.js'
import { JsonParseError, encodeJson, isPlainObject, parseWireJson } from '../protocol/json.js'
import { MCP_PROFILES, MCP_PROTOCOL, MCP_PROTOCOL_VERSION, SERVER_FEATURES, TASK_QUEUE_RPC_TOOL } from '../protocol/ids.js'
import type { Envelope } from '../protocol/coerce.js'
import { IMPL_NAME, VERSION } from '../version.js'
import { createTokenCheck } from './auth.js'
import type { Dispatch } from './dispatch.js'
import type { CallerInfo, ServiceContext } from './context.js'
import { invokeTool, toolTimeoutS } from './ops/tool-ops.js'
import type { JsonObject } from '../store/types.js'
import type { Logger } from '../logger.js'

const RPC_TOOL_DESCRIPTION = 'Invoke a TaskQueue RPC operation over MCP++.'

type RpcId = string | number | null

class RpcFailure extends Error {
  constructor (readonly code: number, message: string, readonly closeStream: boolean) {
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

export function createMcpHandler (ctx: ServiceContext, dispatch: Dispatch, log: Logger): (stream: Stream, connection: Connection) => void {
  const limits = ctx.options.mcp
  const stats = ctx.stats.mcp
  const tokenOk = createTokenCheck(ctx.options.token)

  const write = async (stream: Stream, message: Record<string, unknown>): Promise<void> => {
    await writeBytes(stream, encodeFrame(encodeJson(message)))
  }
  const writeError = async (stream: Stream, id: RpcId, code: number, message: string): Promise<void> => {
    await write(stream, { jsonrpc: '2.0', id, error: { code, message } })
  }

  async function serve (stream: Stream, connection: Connection): Promise<void> {
    stats.sessions_started++
    const reader = new StreamReader(stream)
    const bucket = new TokenBucket(limits.rateCapacity, limits.rateRefillPerSec)
    const closed = new AbortController()
    stream.addEventListener('close', () => closed.abort(), { once: true })
    const caller: CallerInfo = { remotePeerId: connection.remotePeer.toString(), signal: closed.signal }
    let initialized = false
    let initToken: unknown
    let frames = 0

    for (;;) {
      const idle = setTimeout(() => stream.abort(new Error('idle timeout')), limits.idleTimeoutMs)
      let body: Uint8Array | null
      try {
        body = await reader.readFrame(limits.maxFrameBytes)
      } catch (err) {
        clearTimeout(idle)
        if (err instanceof FrameTooLargeError) {
          stats.frame_errors++
          await writeError(stream, null, -32003, 'frame_too_large')
        }
        return
      }
      clearTimeout(idle)
      if (body === null) return

      let msg: unknown
      try {
        msg = parseWireJson(body)
      } catch (err) {
        if (!(err instanceof JsonParseError)) throw err
        stats.frame_errors++
        await writeError(stream, null, -32003, 'invalid_json')
        return
      }
      if (!isPlainObject(msg)) {
        stats.frame_errors++
        await writeError(stream, null, -32003, 'invalid_message')
        return
      }
      const isNotification = !('id' in msg)
      const id = (msg.id ?? null) as RpcId
      frames++
      if (frames > limits.maxFrames || !bucket.take()) {
        stats.rate_limited++
        if (!isNotification) await writeError(stream, id, -32010, 'rate_limited')
        return
      }
      const method = typeof msg.method === 'string' ? msg.method : ''
      if (msg.jsonrpc !== '2.0') {
        if (isNotification) continue
        await writeError(stream, id, -32600, 'invalid_jsonrpc')
        return
      }
      if (!initialized && method !== 'initialize') {
        if (isNotification) continue
        await writeError(stream, id, -32000, 'init_required')
        return
      }
      if (isNotification) continue
      const params = msg.params
      try {
        const result = await handleMethod(method, params)
        await write(stream, { jsonrpc: '2.0', id, result })
      } catch (err) {
        if (err instanceof RpcFailure) {
          await writeError(stream, id, err.code, err.message)
          if (err.closeStream) return
          continue
        }
        stats.internal_errors++
        log.error({ err }, 'mcp request failed')
        await writeError(stream, id, -32603, 'internal_error')
      }
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
          return toolsList(ctx)
        case 'tools/call':
        case 'tools.call': {
          if (!isPlainObject(params)) throw new RpcFailure(-32602, 'invalid_params', false)
          const name = typeof params.name === 'string' ? params.name : ''
          if (name === TASK_QUEUE_RPC_TOOL) {
            const env = { ...unwrapEnvelope(params.arguments) }
            delete env._remote_peer_id
            return { content: await dispatch(env, caller) }
          }
          return { content: await directToolCall(name, params.arguments) }
        }
        default:
          throw new RpcFailure(-32601, 'method_not_found', false)
      }
    }

    async function directToolCall (name: string, args: unknown): Promise<unknown> {
      if (!ctx.options.enableTools || !tokenOk(initToken)) {
        stats.unauthorized++
        throw new RpcFailure(-32001, 'unauthorized', false)
      }
      if (!ctx.tools.has(name)) throw new RpcFailure(-32002, 'unknown_tool', false)
      if (args !== undefined && args !== null && !isPlainObject(args)) throw new RpcFailure(-32002, 'invalid_params', false)
      const outcome = await invokeTool(ctx, name, (args ?? {}) as JsonObject, caller, toolTimeoutS(undefined, ctx.options.waitMaxS))
      if (outcome.ok) return outcome.result
      throw new RpcFailure(-32002, outcome.error === 'invalid_params' ? 'invalid_params' : 'tool_error', false)
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
