/**
 * The TaskQueue ops (wire-protocol.md §6): each op's canonical name, every alias it is
 * also called by, and the properties the client and both service transports decide on.
 * This table is the only place an op or an alias is written down: the service's
 * dispatcher (MCP++ and legacy NDJSON), the MCP server's pipelining and the client's
 * retry and stream rules all read it. A new op is one row here plus its handler in
 * `service/dispatch.ts` (the compiler insists on the handler).
 */
import { SERVER_FEATURE_COMPLETE_MANY, SERVER_FEATURE_EVENTS, SERVER_FEATURE_QUEUE_ADMIN, SERVER_FEATURE_SUBMIT_MANY } from './ids.js'

/**
 * Whether a call occupies the service until something happens, so the client gives it
 * a stream of its own: `always`, only when the envelope has `wait_s` > 0 (★ long-poll),
 * or `never`.
 */
export type OpBlocking = 'always' | 'wait_s' | 'never'

/**
 * Who may call an op (README "Roles"): a caller whose token or allow-list entry is
 * limited to a role may call only that role's ops; `admin` may call all. Undefined =
 * anyone with a valid token (`status`).
 */
export type OpRole = 'client' | 'worker' | 'admin'

export interface OpProperties {
  readonly name: string
  /** Other names the op answers to; matched, like the name, case-insensitively. */
  readonly aliases: readonly string[]
  /** May be repeated once the request may have reached the service (B16). */
  readonly idempotent: boolean
  readonly blocking: OpBlocking
  /**
   * Its whole effect is one group-commit write queued when it is called, so an MCP++
   * stream may read the next frame while it commits (replies still keep their order).
   */
  readonly pipelined: boolean
  /** The `features` entry (§8) a service lists when it has this op; clients use it only then. */
  readonly feature?: string
  readonly role?: OpRole
}

const op = (name: string, aliases: readonly string[], props: Partial<Omit<OpProperties, 'name' | 'aliases'>> = {}): OpProperties =>
  ({ name, aliases, idempotent: false, blocking: 'never', pipelined: false, ...props })

export const OPS = [
  // submit carries an idempotency key (B8), so a repeat is answered from the first.
  op('submit', [], { idempotent: true, pipelined: true, blocking: 'wait_s', role: 'client' }),
  // ★ Batched submits (README): every item carries an idempotency key made once by the client.
  op('submit_many', ['task.submit_many'], { idempotent: true, pipelined: true, feature: SERVER_FEATURE_SUBMIT_MANY, role: 'client' }),
  op('claim', ['claim_next'], { blocking: 'wait_s', role: 'worker' }),
  op('claim_many', ['claim_batch'], { blocking: 'wait_s', role: 'worker' }),
  op('complete', ['task.complete', 'complete_task'], { idempotent: true, pipelined: true, role: 'worker' }),
  // ★ Batched completes (README).
  op('complete_many', ['task.complete_many'], { pipelined: true, feature: SERVER_FEATURE_COMPLETE_MANY, role: 'worker' }),
  op('release', ['task.release', 'release_task'], { pipelined: true, role: 'worker' }),
  op('task.heartbeat', ['lease.renew', 'renew_lease', 'task_heartbeat'], { idempotent: true, pipelined: true, role: 'worker' }),
  op('peer.heartbeat', ['heartbeat', 'peer'], { idempotent: true, role: 'worker' }),
  op('list', ['tasks.list', 'queue.list'], { idempotent: true, role: 'client' }),
  op('cancel', ['task.cancel'], { idempotent: true, pipelined: true, role: 'admin' }),
  op('get', [], { idempotent: true, role: 'client' }),
  op('wait', [], { idempotent: true, blocking: 'always', role: 'client' }),
  op('status', ['capabilities', 'describe'], { idempotent: true }),
  op('tool', ['call_tool', 'tool.call'], { blocking: 'always', role: 'admin' }),
  op('cache.get', ['cache_get', 'cache'], { idempotent: true, role: 'client' }),
  op('cache.has', ['cache_has'], { idempotent: true, role: 'client' }),
  op('cache.set', ['cache_set'], { idempotent: true, role: 'client' }),
  op('cache.delete', ['cache_del', 'cache_delete'], { idempotent: true, role: 'client' }),
  // ★ Operating the queue (README "Protocol additions"). Repeating any of them changes
  // nothing more: retry skips tasks no longer failed, purge finds nothing left.
  op('retry', ['task.retry', 'tasks.retry'], { idempotent: true, feature: SERVER_FEATURE_QUEUE_ADMIN, role: 'admin' }),
  op('purge', ['tasks.purge', 'queue.purge'], { idempotent: true, feature: SERVER_FEATURE_QUEUE_ADMIN, role: 'admin' }),
  op('pause', ['queue.pause'], { idempotent: true, feature: SERVER_FEATURE_QUEUE_ADMIN, role: 'admin' }),
  op('resume', ['queue.resume'], { idempotent: true, feature: SERVER_FEATURE_QUEUE_ADMIN, role: 'admin' }),
  // ★ The task state change stream; long-polls with wait_s.
  op('events', ['task.events', 'tasks.events'], { idempotent: true, blocking: 'wait_s', feature: SERVER_FEATURE_EVENTS, role: 'client' })
] as const satisfies readonly OpProperties[]

export type OpName = (typeof OPS)[number]['name']

const BY_NAME = new Map<string, OpProperties>()
for (const spec of OPS) {
  for (const name of [spec.name, ...spec.aliases]) {
    if (BY_NAME.has(name)) throw new Error(`op table: ${name} is listed twice`)
    BY_NAME.set(name, spec)
  }
}

/** The op an envelope's `op` names (canonical or alias, any case), or undefined. */
export function lookupOp (op: string): (OpProperties & { name: OpName }) | undefined {
  return BY_NAME.get(op.trim().toLowerCase()) as (OpProperties & { name: OpName }) | undefined
}

/** Whether a call of `op` with `waitS` holds the service until something happens. */
export function blocksService (spec: OpProperties | undefined, waitS: unknown): boolean {
  if (spec?.blocking === 'always') return true
  // An op we do not know (a newer service's) is taken at its word when it asks to wait.
  return spec?.blocking !== 'never' && typeof waitS === 'number' && waitS > 0
}
