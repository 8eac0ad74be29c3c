/**
 * Queue ops (wire-protocol.md §6.1): request coercion and reply shapes only; state
 * changes happen atomically inside QueueStore.
 */
import { TaskQueueError } from '../../protocol/errors.js'
import { MAX_KEY_CHARS, bounded, firstId, firstStr, idList, int, num, objectOrWrap, str, strList, truthy } from '../../protocol/coerce.js'
import type { Envelope } from '../../protocol/coerce.js'
import { isJsonObject, isPlainObject } from '../../protocol/json.js'
import { MAX_BATCH_ITEMS, REPLY_BYTE_BUDGET } from '../../protocol/ids.js'
import { parseBackoff } from '../../store/retry-policy.js'
import { optionalNumber } from './admin-ops.js'
import { expandTaskTypes } from '../../store/aliases.js'
import { MAX_BYTES_PER_PEER, MAX_IDS_PER_PEER } from '../../store/peers.js'
import type { PeerTouch } from '../../store/peers.js'
import { SCHEDULER_CLOCK } from '../../store/scheduler.js'
import { quotaPeerOf, refusalReasonOf } from '../access.js'
import type { ClaimedTask, JsonObject, Task } from '../../protocol/types.js'
import type { ClaimInput, CompleteInput, CompleteResult, SubmitInput } from '../../store/types.js'
import type { MaybePromise } from '../../store/task-store.js'
import { TERMINAL_STATUSES } from '../../protocol/types.js'
import type { CallerInfo, Reply, ServiceContext } from '../context.js'

const MAX_NEXT_ATTEMPT_AT = 1e11
/** ★ Longest `delay_s` (a year) and `keep_s` (ten years). */
const MAX_DELAY_S = 366 * 86400
const MAX_KEEP_S = 3650 * 86400

function requireTaskId (env: Envelope): string {
  const id = bounded(str(env.task_id), 'task_id')
  if (id === '') throw new TaskQueueError('missing_task_id')
  return id
}

/** Queue-meaning keys are read from the payload; top-level copies win (★). */
function queueField (env: Envelope, payload: Record<string, unknown>, key: string): unknown {
  return env[key] ?? payload[key]
}

function submitInput (env: Envelope, now: number, maxAttempts: number, submitter: string | null): SubmitInput {
  const payload = objectOrWrap(env.payload, 'payload') as JsonObject
  const key = bounded(str(queueField(env, payload, 'idempotency_key')), 'idempotency_key', MAX_KEY_CHARS)
  const nextAt = queueField(env, payload, 'next_attempt_at')
  const later = scheduledAt(env, now)
  return {
    task_type: str(env.task_type) === '' ? 'text-generation' : bounded(str(env.task_type), 'task_type'),
    model_name: bounded(str(env.model_name), 'model_name'),
    payload,
    priority: int(queueField(env, payload, 'priority'), 5, 1, 10),
    max_attempts: int(queueField(env, payload, 'max_attempts'), maxAttempts, 0, 1000),
    next_attempt_at: later ?? (nextAt === undefined || nextAt === null ? now : num(nextAt, now, 0, MAX_NEXT_ATTEMPT_AT)),
    idempotency_key: key === '' ? null : key,
    // ★ Top-level only: payloads are the caller's and may use these names for their own ends.
    backoff: env.backoff === undefined || env.backoff === null ? null : parseBackoff(env.backoff),
    keep_s: optionalNumber(env, 'keep_s', 0, MAX_KEEP_S),
    submitter
  }
}

export async function submit (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const input = submitInput(env, Date.now() / 1000, ctx.options.maxAttempts ?? 3, quotaPeerOf(caller))
  // ★ wait_s > 0: answer once the task is terminal, as a `wait` would, so a caller
  // that wants the outcome needs no second request.
  const waitS = num(env.wait_s, 0, 0, ctx.options.waitMaxS)
  // Group commit: the reply waits for the COMMIT of the batch this submit joined.
  const result = await ctx.writes.write(() => ctx.store.submit(input))
  const reply: Reply = { ok: true, task_id: result.task_id, replayed: result.replayed }
  if (waitS <= 0) return reply
  // A task this submit created cannot be finished yet: nobody else had its id before
  // the COMMIT, and an in-process complete needs a later tick than this continuation.
  // Its first look is skipped (one standalone read less) when the data_version watch
  // already runs, because that watch's baseline predates the COMMIT: a complete from
  // another process sharing the file still wakes this wait.
  const fresh = !result.replayed && ctx.events.watchingExternal
  return { ...reply, ...await untilTerminal(ctx, result.task_id, Date.now() + waitS * 1000, caller, fresh) }
}

/** ★ `delay_s` (seconds from now) or `run_at` (epoch seconds): when the task becomes claimable; null = neither. */
function scheduledAt (env: Envelope, now: number): number | null {
  const delay = optionalNumber(env, 'delay_s', 0, MAX_DELAY_S)
  const runAt = optionalNumber(env, 'run_at', 0, MAX_NEXT_ATTEMPT_AT)
  if (delay !== null && runAt !== null) throw new TaskQueueError('invalid_params', 'give delay_s or run_at, not both')
  if (delay !== null) return now + delay
  return runAt
}

function claimInput (env: Envelope, ctx: ServiceContext, caller: CallerInfo, maxTasks: number): ClaimInput {
  const workerId = bounded(str(env.worker_id), 'worker_id')
  if (workerId === '') throw new TaskQueueError('missing_worker_id')
  const types = expandTaskTypes(idList(env.supported_task_types ?? env.task_types, 'supported_task_types'))
  return {
    worker_id: workerId,
    peer_key: firstId(env, 'peer', 'peer_id') || workerId,
    session: firstId(env, 'session_id', 'session', 'p2p_session'),
    task_types: types.length > 0 ? types : null,
    lease_s: int(env.lease_s, ctx.options.leaseS, 10, 3600),
    max_tasks: maxTasks,
    same_task_type: truthy(env.same_task_type ?? env.same_type),
    transport_peer_id: caller.remotePeerId,
    peer_hint: bounded(str(env.peer_hint), 'peer_hint'),
    max_reply_bytes: REPLY_BYTE_BUDGET
  }
}

/**
 * Claims, and with `wait_s` > 0 blocks until an eligible task appears (★ long-poll):
 * idle workers learn of new work the moment it is submitted instead of sleeping.
 * Claims join the group commit like every other write. A claimer with nothing to
 * take parks in the write batcher, where the transaction that queues matching work
 * claims it for them before committing (one commit for submit and claim); other
 * reasons work may have become claimable wake it to claim again (task-events.ts).
 */
async function claimWithWait (env: Envelope, ctx: ServiceContext, caller: CallerInfo, maxTasks: number): Promise<ClaimedTask[]> {
  const input = claimInput(env, ctx, caller, maxTasks)
  // The registry entry this claim records (as the store's claimerProfile makes it).
  admitPeer(ctx, { peer_id: input.peer_key, worker_id: input.worker_id, supported_task_types: input.task_types ?? [], session_id: input.session, transport_peer_id: input.transport_peer_id, peer_hint: input.peer_hint })
  const waitS = num(env.wait_s, 0, 0, ctx.options.waitMaxS)
  const deadline = Date.now() + waitS * 1000
  const claimNow = (): MaybePromise<ClaimedTask[]> => ctx.store.claim(input)
  const types = input.task_types === null ? null : new Set(input.task_types)
  for (;;) {
    let handed: ClaimedTask[] = []
    let wake: () => void = () => {}
    const claimer = { claim: claimNow, types, deliver: (t: ClaimedTask[]) => { handed = t; wake() }, mayClaim: () => ctx.store.mayClaim(input) }
    const remaining = deadline - Date.now()
    const wait = remaining > 0 && !caller.signal.aborted && !ctx.events.closed
    let tasks = await ctx.writes.claim(claimer, wait)
    if (tasks.length === 0 && wait) {
      try {
        // Work handed over after the claim (same flush) is here already.
        if (handed.length === 0) await ctx.events.untilWork(deadline - Date.now(), caller.signal, { onPark: (w) => { wake = w } })
      } finally {
        ctx.writes.unpark(claimer)
      }
      tasks = handed
      if (tasks.length === 0) continue
    }
    if (tasks.length > 0 && caller.signal.aborted) {
      // The claimer hung up: the reply cannot arrive, so the tasks go straight back.
      for (const t of tasks) await ctx.store.release({ task_id: t.task_id, worker_id: t.assigned_worker, reason: 'claimer_gone', delay_s: 0 })
      return []
    }
    return tasks
  }
}

export async function claim (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const tasks = await claimWithWait(env, ctx, caller, 1)
  return { ok: true, task: tasks[0] ?? null }
}

export async function claimMany (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const maxTasks = int(env.max_tasks ?? env.limit, 1, 1, 128)
  const tasks = await claimWithWait(env, ctx, caller, maxTasks)
  return { ok: true, tasks }
}

function completeInput (env: Envelope, defaultWorkerId = ''): CompleteInput {
  const taskId = requireTaskId(env)
  const rawStatus = str(env.status).toLowerCase()
  const status = rawStatus === '' ? 'completed' : rawStatus === 'completed' || rawStatus === 'failed' || rawStatus === 'cancelled' ? rawStatus : 'failed'
  const result = env.result === undefined || env.result === null ? null : objectOrWrap(env.result, 'result') as JsonObject
  const workerId = bounded(str(env.worker_id), 'worker_id')
  return {
    task_id: taskId,
    status,
    result,
    error: str(env.error),
    worker_id: workerId === '' ? defaultWorkerId : workerId,
    // ★ Only an explicit true asks for a retry; original workers never send it.
    retry: env.retry === true
  }
}

function completeReply (out: CompleteResult): Reply {
  const reply: Reply = { ok: true, task_id: out.task_id }
  if (out.replayed) reply.replayed = true
  if (out.retry_at !== undefined) reply.retry_at = out.retry_at
  return reply
}

export async function complete (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const input = completeInput(env)
  return completeReply(await ctx.writes.write(() => ctx.store.complete(input)))
}

/** The `items` array of a batch op, or the typed error that rejects the whole request. */
function batchItems (env: Envelope, op: string, what: string): unknown[] {
  const items = env.items
  if (!Array.isArray(items)) throw new TaskQueueError('invalid_params', `items must be an array of ${what} requests`)
  if (items.length > MAX_BATCH_ITEMS) throw new TaskQueueError('invalid_params', `at most ${MAX_BATCH_ITEMS} items per ${op}`)
  return items
}

/**
 * Runs `outcome` for every item inside one group-commit op (one transaction) and
 * returns the per-item replies. When the transaction itself fails (busy, I/O), nothing
 * was applied and every item says so.
 */
async function batchOutcomes (ctx: ServiceContext, items: unknown[], outcome: (item: unknown) => MaybePromise<Reply>): Promise<Reply[]> {
  try {
    // SQLite: every outcome is a value, computed inside one group transaction.
    // PostgreSQL: outcomes are promises, one transaction each.
    return await ctx.writes.write(() => {
      const out = items.map(outcome)
      return out.some((o) => o instanceof Promise) ? Promise.all(out) : out as Reply[]
    })
  } catch (err) {
    return items.map((item) => itemFailure(ctx, item, err))
  }
}

/**
 * ★ `submit_many`: `items` is an array of `submit` envelopes (each coerced exactly like
 * `submit`, with its own idempotency key; `wait_s` is not read). All items run as one
 * op of the group commit, so a batch costs one transaction and one commit instead of
 * one per task. A submit writes at most one row and nothing can fail after it, so a
 * refused item (bad payload, `idempotency_conflict`) has changed nothing. Each item gets
 * its own outcome, in order: `{ok:true, task_id, replayed}` or
 * `{ok:false, task_id:'', error, detail?, retryable}`. A resent batch with the same
 * keys replays every item instead of duplicating it.
 */
export async function submitMany (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const items = batchItems(env, 'submit_many', 'submit')
  const now = Date.now() / 1000
  const submitter = quotaPeerOf(caller)
  const outcome = (item: unknown): MaybePromise<Reply> => settle(ctx, item, () => {
    if (!isPlainObject(item)) throw new TaskQueueError('invalid_params', 'each item must be an object')
    return ctx.store.submit(submitInput(item, now, ctx.options.maxAttempts ?? 3, submitter))
  }, (result) => ({ ok: true, task_id: result.task_id, replayed: result.replayed }))
  return { ok: true, results: await batchOutcomes(ctx, items, outcome) }
}

/**
 * ★ `complete_many`: `items` is an array of `complete` envelopes (each coerced and
 * guarded exactly like `complete`; an item without `worker_id` takes the top-level
 * one). All items run as one op of the group commit (a complete writes at most one
 * row and checks everything before it, so a refused item has changed nothing and
 * needs no savepoint of its own); each gets its own outcome, in order:
 * `{ok:true, task_id, replayed?}` or `{ok:false, task_id, error, detail?, retryable}`.
 * One frame and one op per batch instead of per task is what lets a busy worker keep up.
 */
export async function completeMany (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const items = batchItems(env, 'complete_many', 'complete')
  const defaultWorker = bounded(str(env.worker_id), 'worker_id')
  const outcome = (item: unknown): MaybePromise<Reply> => settle(ctx, item, () => {
    if (!isPlainObject(item)) throw new TaskQueueError('invalid_params', 'each item must be an object')
    return ctx.store.complete(completeInput(item, defaultWorker))
  }, completeReply)
  return { ok: true, results: await batchOutcomes(ctx, items, outcome) }
}

/**
 * One batch item's reply from a store call that returns a value (SQLite, which also
 * throws synchronously) or a promise (PostgreSQL, which rejects).
 */
function settle<T> (ctx: ServiceContext, item: unknown, call: () => MaybePromise<T>, ok: (value: T) => Reply): MaybePromise<Reply> {
  try {
    const out = call()
    if (out instanceof Promise) return out.then(ok, (err: unknown) => itemFailure(ctx, item, err))
    return ok(out)
  } catch (err) {
    return itemFailure(ctx, item, err)
  }
}

function itemFailure (ctx: ServiceContext, item: unknown, err: unknown): Reply {
  const taskId = isPlainObject(item) ? str(item.task_id) : ''
  if (err instanceof TaskQueueError) {
    const out: Reply = { ok: false, task_id: taskId, ...err.extra, error: err.code, retryable: err.retryable }
    if (err.detail !== undefined) out.detail = err.detail
    // A per-peer bound refusing one item is counted like a refused request.
    if (err.code === 'rate_limited') ctx.access.count(refusalReasonOf(err))
    return out
  }
  ctx.stats.mcp.internal_errors++
  return { ok: false, task_id: taskId, error: 'internal_error', detail: err instanceof Error ? err.message : String(err), retryable: false }
}

export async function release (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const taskId = requireTaskId(env)
  const workerId = firstId(env, 'worker_id', 'assigned_worker')
  if (workerId === '') throw new TaskQueueError('missing_worker_id')
  const input = {
    task_id: taskId,
    worker_id: workerId,
    reason: str(env.reason) === '' ? 'released' : str(env.reason),
    delay_s: num(env.delay_s, 0, 0, 86400)
  }
  await ctx.writes.write(() => ctx.store.release(input))
  return { ok: true, task_id: taskId }
}

function progressOf (value: unknown): JsonObject | null {
  return isJsonObject(value) ? value : null
}

export async function taskHeartbeat (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const taskId = requireTaskId(env)
  const workerId = bounded(str(env.worker_id), 'worker_id')
  if (workerId === '') throw new TaskQueueError('missing_worker_id')
  const input = {
    task_id: taskId,
    worker_id: workerId,
    lease_s: int(env.lease_s, ctx.options.leaseS, 10, 3600),
    progress: progressOf(env.progress)
  }
  const out = await ctx.writes.write(() => ctx.store.heartbeatTask(input))
  return { ok: true, ...out }
}

/**
 * ★ What one remote peer keeps in the scheduler's registry is bounded (README "Security"):
 * MAX_IDS_PER_PEER ids and MAX_BYTES_PER_PEER characters; past either, a typed, retryable
 * `rate_limited` (they free up as its ids expire after PEER_TIMEOUT_S or it disconnects).
 */
function admitPeer (ctx: ServiceContext, touch: PeerTouch): void {
  const verdict = ctx.store.registry.admits(touch)
  if (verdict === 'ids') throw new TaskQueueError('rate_limited', `this peer already holds ${MAX_IDS_PER_PEER} scheduler ids; they expire after PEER_TIMEOUT_S`)
  if (verdict === 'bytes') throw new TaskQueueError('rate_limited', `this peer's scheduler ids already hold ${MAX_BYTES_PER_PEER} bytes; they expire after PEER_TIMEOUT_S`)
}

/** Most `known_peers` a `peer.heartbeat` reply lists (the most recently seen). */
export const KNOWN_PEERS_IN_HEARTBEAT = 64

export async function peerHeartbeat (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const workerId = bounded(str(env.worker_id), 'worker_id')
  const peer = firstId(env, 'peer', 'peer_id') || workerId || caller.remotePeerId
  if (peer === '') throw new TaskQueueError('missing_peer_id')
  const now = Date.now() / 1000
  const types = env.supported_task_types ?? env.task_types
  // Absent fields keep the profile a claim recorded (a bare heartbeat must not erase it).
  const session = firstId(env, 'session_id', 'session', 'p2p_session')
  const taskId = bounded(str(env.task_id), 'task_id')
  const peerHint = bounded(str(env.peer_hint), 'peer_hint')
  const touch: PeerTouch = {
    peer_id: peer,
    worker_id: workerId === '' ? undefined : workerId,
    supported_task_types: types === undefined ? undefined : expandTaskTypes(idList(types, 'supported_task_types')),
    session_id: session === '' ? undefined : session,
    last_seen: now,
    transport_peer_id: caller.remotePeerId,
    peer_hint: peerHint
  }
  admitPeer(ctx, touch)
  ctx.store.registry.touch(touch)
  const reply: Reply = {
    ok: true,
    peer,
    scheduler: {
      clock: SCHEDULER_CLOCK,
      // ★ The most recently seen peers only: the reply's size no longer grows with the registry.
      known_peers: ctx.store.registry.recent(KNOWN_PEERS_IN_HEARTBEAT, now).map((p) => ({ peer_id: p.peer_id, last_seen: p.last_seen }))
    }
  }
  if (taskId !== '' && workerId !== '') {
    try {
      const out = await ctx.store.heartbeatTask({ task_id: taskId, worker_id: workerId, lease_s: int(env.lease_s, ctx.options.leaseS, 10, 3600), progress: progressOf(env.progress) })
      reply.lease = { ok: true, lease_until: out.lease_until }
      // Holding a lease keeps the peer a scheduler candidate, as claiming does.
      ctx.store.registry.markActive(peer, now)
    } catch (err) {
      if (!(err instanceof TaskQueueError)) throw err
      reply.lease = { ok: false, error: err.code }
    }
  }
  return reply
}

export async function list (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const status = str(env.status).toLowerCase()
  const types = strList(env.task_types).map((t) => t.toLowerCase())
  const filter = types.length === 0 ? null : truthy(env.exact_types) ? types : expandTaskTypes(types)
  const order = str(env.order).toLowerCase() === 'desc' ? 'desc' : 'asc'
  const cursor = str(env.cursor)
  const out = await ctx.store.list({
    status: status === '' ? null : status,
    limit: int(env.limit, 50, 1, 1000),
    task_types: filter,
    cursor: cursor === '' ? null : cursor,
    order,
    max_bytes: REPLY_BYTE_BUDGET
  })
  return { ok: true, tasks: out.tasks, next_cursor: out.next_cursor, truncated: out.truncated }
}

export async function cancel (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const taskId = requireTaskId(env)
  const reason = str(env.reason)
  return { ok: true, ...await ctx.writes.write(() => ctx.store.cancel(taskId, reason)) }
}

export async function get (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const taskId = str(env.task_id)
  return { ok: true, task: taskId === '' ? null : await ctx.store.get(taskId) }
}

/** Event-driven wait (B9): parks on the task's change events, never re-reads on a timer. */
export async function wait (env: Envelope, ctx: ServiceContext, caller: CallerInfo): Promise<Reply> {
  const taskId = str(env.task_id)
  const raw = num(env.timeout_s, 0, -Infinity, Infinity)
  const timeoutS = env.timeout_s === undefined || env.timeout_s === null || raw === 0 ? 60 : Math.min(Math.max(raw, 0), ctx.options.waitMaxS)
  if (taskId === '') return { ok: true, task: null, timed_out: false }
  return { ok: true, ...await untilTerminal(ctx, taskId, Date.now() + timeoutS * 1000, caller) }
}

/**
 * The task once its status is terminal (or it is gone), or as it is at the deadline.
 * `knownActive`: the caller knows the task is not finished, so the first look is skipped.
 */
async function untilTerminal (ctx: ServiceContext, taskId: string, deadline: number, caller: CallerInfo, knownActive = false): Promise<{ task: Task | null, timed_out: boolean }> {
  for (let look = !knownActive; ; look = true) {
    const remaining = deadline - Date.now()
    if (look || remaining <= 0) {
      // One read per look (a status read and then the task would be two statements). A
      // look after a wake-up happens only when the wake did not carry the task.
      const read = ctx.store.get(taskId)
      const task = read instanceof Promise ? await read : read
      if (task === null || TERMINAL_STATUSES.has(task.status)) return { task, timed_out: false }
      if (remaining <= 0 || caller.signal.aborted || ctx.events.closed) return { task, timed_out: true }
      // PostgreSQL: its completion may have been announced while the read was under way.
      if (ctx.events.consumeTerminal(taskId)) continue
    }
    // A complete hands its waiters the committed row (QueueStore.watchesTask): no second read.
    const finished = await ctx.events.untilTerminal(taskId, remaining, caller.signal)
    if (finished !== null && TERMINAL_STATUSES.has(finished.status)) return { task: finished, timed_out: false }
  }
}
