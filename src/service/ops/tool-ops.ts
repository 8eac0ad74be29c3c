/**
 * Tool invocation (wire-protocol.md §6.2 "tool", §2.5 direct calls): one code path for
 * both entry points, so gating and routing cannot drift apart (B17).
 */
import { TaskQueueError } from '../../protocol/errors.js'
import { firstStr, num } from '../../protocol/coerce.js'
import type { Envelope } from '../../protocol/coerce.js'
import { isPlainObject } from '../../protocol/json.js'
import { InvalidToolParamsError } from '../../tools/registry.js'
import type { JsonObject, JsonValue, Task } from '../../protocol/types.js'
import { TERMINAL_STATUSES } from '../../protocol/types.js'
import type { CallerInfo, Reply, ServiceContext } from '../context.js'

export const TOOL_TASK_TYPE = 'tool.call'
export const TOOL_MODEL_NAME = 'mcp.tool'
export const TOOL_ORIGIN = 'p2p.call_tool'

export type ToolOutcome =
  | { ok: true, route: 'server', description: string, result: unknown }
  | { ok: true, route: 'worker', result: unknown }
  | { ok: false, error: string, detail?: string, task_id?: string }

class ToolTimeout extends Error {}

export function isToolTask (task: Pick<Task, 'task_type' | 'payload'>): boolean {
  return task.task_type === TOOL_TASK_TYPE && task.payload._origin === TOOL_ORIGIN
}

/** Called on every terminal change: finishes the clean-up of abandoned tool tasks. */
export function reapOrphanedToolTask (ctx: ServiceContext, taskId: string): void {
  if (!ctx.orphanedToolTasks.delete(taskId)) return
  const out = ctx.store.delete(taskId)
  if (out instanceof Promise) out.catch(() => { /* retention removes it later */ })
}

async function runServerTool (handler: (args: JsonObject, info: { callerPeerId: string, signal: AbortSignal }) => unknown, args: JsonObject, caller: CallerInfo, timeoutMs: number): Promise<unknown> {
  const controller = new AbortController()
  const onAbort = (): void => controller.abort()
  caller.signal.addEventListener('abort', onAbort, { once: true })
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      Promise.resolve().then(() => handler(args, { callerPeerId: caller.remotePeerId, signal: controller.signal })),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          controller.abort()
          reject(new ToolTimeout())
        }, timeoutMs)
      })
    ])
  } finally {
    clearTimeout(timer)
    caller.signal.removeEventListener('abort', onAbort)
  }
}

async function runWorkerTool (ctx: ServiceContext, name: string, args: JsonObject, caller: CallerInfo, timeoutMs: number): Promise<ToolOutcome> {
  const { task_id: taskId } = await ctx.store.submit({
    task_type: TOOL_TASK_TYPE,
    model_name: TOOL_MODEL_NAME,
    payload: { tool: name, args, _origin: TOOL_ORIGIN, _peer_id: caller.remotePeerId },
    priority: 5,
    max_attempts: 3,
    next_attempt_at: Date.now() / 1000,
    idempotency_key: null
  })
  const deadline = Date.now() + timeoutMs
  let task = await ctx.store.get(taskId)
  while (task !== null && !TERMINAL_STATUSES.has(task.status) && Date.now() < deadline && !caller.signal.aborted && !ctx.events.closed) {
    // PostgreSQL: a completion announced while the read was under way needs no park.
    if (!ctx.events.consumeTerminal(taskId)) await ctx.events.untilTerminal(taskId, deadline - Date.now(), caller.signal)
    task = await ctx.store.get(taskId)
  }
  if (task === null) return { ok: false, error: 'task_not_found', task_id: taskId }
  if (!TERMINAL_STATUSES.has(task.status)) {
    if (task.status === 'queued') {
      await ctx.store.cancel(taskId, 'tool_call_timeout')
      await ctx.store.delete(taskId)
    } else {
      ctx.orphanedToolTasks.add(taskId)
    }
    return { ok: false, error: 'timeout', task_id: taskId }
  }
  await ctx.store.delete(taskId)
  if (task.status !== 'completed') return { ok: false, error: task.error ?? task.status }
  const result = task.result
  if (isPlainObject(result) && 'tool' in result && 'result' in result) return { ok: true, route: 'worker', result: result.result }
  return { ok: true, route: 'worker', result }
}

/** Runs a registered tool; never throws for tool failures (they are outcomes). */
export async function invokeTool (ctx: ServiceContext, name: string, args: JsonObject, caller: CallerInfo, timeoutS: number): Promise<ToolOutcome> {
  const tool = ctx.tools.get(name)
  if (tool === undefined) return { ok: false, error: 'tool_not_found' }
  const timeoutMs = timeoutS * 1000
  if (tool.context === 'worker') return await runWorkerTool(ctx, name, args, caller, timeoutMs)
  try {
    const result = await runServerTool(tool.handler!, args, caller, timeoutMs)
    return { ok: true, route: 'server', description: tool.description, result: result === undefined ? null : result }
  } catch (err) {
    if (err instanceof ToolTimeout) return { ok: false, error: 'timeout' }
    if (err instanceof InvalidToolParamsError) return { ok: false, error: 'invalid_params', detail: err.message }
    return { ok: false, error: 'tool_error', detail: err instanceof Error ? err.message : String(err) }
  }
}

export function toolTimeoutS (value: unknown, waitMaxS: number): number {
  const n = num(value, 0, -Infinity, Infinity)
  return n <= 0 ? Math.min(30, waitMaxS) : Math.min(n, waitMaxS)
}

/** Arguments: `args | arguments | params`; a non-object becomes `{value:x}`. */
export function toolArgs (env: Envelope): JsonObject {
  const raw = env.args !== undefined ? env.args : env.arguments !== undefined ? env.arguments : env.params
  if (raw === undefined || raw === null) return {}
  return (isPlainObject(raw) ? raw : { value: raw as JsonValue }) as JsonObject
}

export async function tool (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const name = firstStr(env, 'tool', 'tool_name', 'name')
  if (!ctx.options.enableTools) throw new TaskQueueError('tools_disabled', undefined, { tool: name })
  if (name === '') throw new TaskQueueError('missing_tool_name')
  const outcome = await invokeTool(ctx, name, toolArgs(env), caller, toolTimeoutS(env.timeout_s, ctx.options.waitMaxS))
  if (!outcome.ok) {
    const reply: Reply = { ok: false, tool: name, error: outcome.error }
    if (outcome.detail !== undefined) reply.detail = outcome.detail
    if (outcome.task_id !== undefined) reply.task_id = outcome.task_id
    if (outcome.error === 'timeout') reply.retryable = true
    return reply
  }
  if (outcome.route === 'server') return { ok: true, tool: name, description: outcome.description, result: outcome.result }
  return { ok: true, tool: name, result: outcome.result }
}
