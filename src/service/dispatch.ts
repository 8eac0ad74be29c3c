/**
 * The one place a TaskQueue envelope becomes a reply: op lookup (with every alias of
 * wire-protocol.md §6), token check, and the mapping of thrown errors to typed replies.
 * Both transports (MCP++ and legacy NDJSON) call `dispatch`.
 */
import { TaskQueueError } from '../protocol/errors.js'
import { str } from '../protocol/coerce.js'
import type { Envelope } from '../protocol/coerce.js'
import { createTokenCheck } from './auth.js'
import type { CallerInfo, Reply, ServiceContext } from './context.js'
import * as queue from './ops/queue-ops.js'
import * as cache from './ops/cache-ops.js'
import { status } from './ops/status-ops.js'
import { tool } from './ops/tool-ops.js'

type OpHandler = (env: Envelope, ctx: ServiceContext, caller: CallerInfo) => Reply | Promise<Reply>

interface OpSpec {
  name: string
  aliases: string[]
  handler: OpHandler
}

const OPS: OpSpec[] = [
  { name: 'submit', aliases: [], handler: queue.submit },
  { name: 'claim', aliases: ['claim_next'], handler: queue.claim },
  { name: 'claim_many', aliases: ['claim_batch'], handler: queue.claimMany },
  { name: 'complete', aliases: ['task.complete', 'complete_task'], handler: queue.complete },
  // ★ Batched completes (README); advertised as the `complete_many` feature.
  { name: 'complete_many', aliases: ['task.complete_many'], handler: queue.completeMany },
  { name: 'release', aliases: ['task.release', 'release_task'], handler: queue.release },
  { name: 'task.heartbeat', aliases: ['lease.renew', 'renew_lease', 'task_heartbeat'], handler: queue.taskHeartbeat },
  { name: 'peer.heartbeat', aliases: ['heartbeat', 'peer'], handler: queue.peerHeartbeat },
  { name: 'list', aliases: ['tasks.list', 'queue.list'], handler: queue.list },
  { name: 'cancel', aliases: ['task.cancel'], handler: queue.cancel },
  { name: 'get', aliases: [], handler: queue.get },
  { name: 'wait', aliases: [], handler: queue.wait },
  { name: 'status', aliases: ['capabilities', 'describe'], handler: status },
  { name: 'tool', aliases: ['call_tool', 'tool.call'], handler: tool },
  { name: 'cache.get', aliases: ['cache_get', 'cache'], handler: cache.cacheGet },
  { name: 'cache.has', aliases: ['cache_has'], handler: cache.cacheHas },
  { name: 'cache.set', aliases: ['cache_set'], handler: cache.cacheSet },
  { name: 'cache.delete', aliases: ['cache_del', 'cache_delete'], handler: cache.cacheDelete }
]

const BY_NAME = new Map<string, OpSpec>()
for (const spec of OPS) {
  BY_NAME.set(spec.name, spec)
  for (const alias of spec.aliases) BY_NAME.set(alias, spec)
}

/** Canonical op name for an alias, or undefined. */
export function canonicalOp (op: string): string | undefined {
  return BY_NAME.get(op.trim().toLowerCase())?.name
}

export function errorReply (ctx: ServiceContext, code: string, detail?: string, extra?: Record<string, unknown>): Reply {
  const reply: Reply = { ok: false, ...extra, error: code, peer_id: ctx.peerId() }
  if (detail !== undefined) reply.detail = detail
  reply.retryable = code === 'timeout' || code === 'busy'
  return reply
}

export type Dispatch = (env: Envelope, caller: CallerInfo) => Promise<Reply>

export function createDispatcher (ctx: ServiceContext): Dispatch {
  const tokenOk = createTokenCheck(ctx.options.token)
  return async (env, caller) => {
    if (!tokenOk(env.token)) {
      ctx.stats.mcp.unauthorized++
      return errorReply(ctx, 'unauthorized')
    }
    const spec = BY_NAME.get(str(env.op).toLowerCase())
    if (spec === undefined) return errorReply(ctx, 'unknown_op')
    ctx.stats.countOp(spec.name)
    try {
      const reply = await spec.handler(env, ctx, caller)
      reply.peer_id = ctx.peerId()
      return reply
    } catch (err) {
      if (err instanceof TaskQueueError) return errorReply(ctx, err.code, err.detail, err.extra)
      ctx.stats.mcp.internal_errors++
      return errorReply(ctx, 'internal_error', err instanceof Error ? err.message : String(err))
    }
  }
}
