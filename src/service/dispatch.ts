/**
 * The one place a TaskQueue envelope becomes a reply: op lookup (the op table of
 * protocol/ops.ts, every alias of wire-protocol.md §6), token check, and the mapping of
 * thrown errors to typed replies.
 * Both transports (MCP++ and legacy NDJSON) call `dispatch`.
 */
import { TaskQueueError, isRetryableCode } from '../protocol/errors.js'
import { lookupOp } from '../protocol/ops.js'
import type { OpName } from '../protocol/ops.js'
import { str } from '../protocol/coerce.js'
import type { Envelope } from '../protocol/coerce.js'
import type { CallerInfo, Reply, ServiceContext } from './context.js'
import { refusalReasonOf } from './access.js'
import * as queue from './ops/queue-ops.js'
import * as cache from './ops/cache-ops.js'
import * as admin from './ops/admin-ops.js'
import { status } from './ops/status-ops.js'
import { tool } from './ops/tool-ops.js'

type OpHandler = (env: Envelope, ctx: ServiceContext, caller: CallerInfo) => Reply | Promise<Reply>

/** Every op of the table (protocol/ops.ts) and what answers it; a new op without a handler does not compile. */
const HANDLERS: Record<OpName, OpHandler> = {
  submit: queue.submit,
  submit_many: queue.submitMany,
  claim: queue.claim,
  claim_many: queue.claimMany,
  complete: queue.complete,
  complete_many: queue.completeMany,
  release: queue.release,
  'task.heartbeat': queue.taskHeartbeat,
  'peer.heartbeat': queue.peerHeartbeat,
  list: queue.list,
  cancel: queue.cancel,
  get: queue.get,
  wait: queue.wait,
  status,
  tool,
  'cache.get': cache.cacheGet,
  'cache.has': cache.cacheHas,
  'cache.set': cache.cacheSet,
  'cache.delete': cache.cacheDelete,
  retry: admin.retry,
  purge: admin.purge,
  pause: admin.pause,
  resume: admin.resume,
  events: admin.events
}

export function errorReply (ctx: ServiceContext, code: string, detail?: string, extra?: Record<string, unknown>): Reply {
  const reply: Reply = { ok: false, ...extra, error: code, peer_id: ctx.peerId() }
  if (detail !== undefined) reply.detail = detail
  reply.retryable = isRetryableCode(code)
  return reply
}

export type Dispatch = (env: Envelope, caller: CallerInfo) => Promise<Reply>

export function createDispatcher (ctx: ServiceContext): Dispatch {
  return async (env, caller) => {
    const spec = lookupOp(str(env.op))
    const verdict = ctx.access.check(caller.via === 'http' ? null : caller.remotePeerId, env.token, spec?.role)
    if (!verdict.ok) {
      if (verdict.reason === 'rate_limited') return errorReply(ctx, 'rate_limited', verdict.detail)
      ctx.stats.mcp.unauthorized++
      return errorReply(ctx, verdict.reason === 'role' ? 'forbidden' : 'unauthorized', verdict.detail)
    }
    if (spec === undefined) return errorReply(ctx, 'unknown_op')
    ctx.stats.countOp(spec.name)
    try {
      const reply = await HANDLERS[spec.name](env, ctx, caller)
      reply.peer_id = ctx.peerId()
      return reply
    } catch (err) {
      if (err instanceof TaskQueueError) {
        // A per-peer limit the store enforces (registry ids, kept tasks) is a refusal like the others.
        if (err.code === 'rate_limited') ctx.access.count(refusalReasonOf(err))
        return errorReply(ctx, err.code, err.detail, err.extra)
      }
      ctx.stats.mcp.internal_errors++
      return errorReply(ctx, 'internal_error', err instanceof Error ? err.message : String(err))
    }
  }
}
