/**
 * RemoteQueue: the library client — typed calls, and one request loop with B16 retries.
 * One long-lived libp2p node per instance (B14); the service it talks to is found once by
 * the discovery resolver (discovery/resolver.ts), and its connection and MCP sessions are
 * reused until they stop working.
 */
import { blocksService, lookupOp } from '../protocol/ops.js'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { loadSettings } from '../config/index.js'
import type { Env, Settings } from '../config/index.js'
import { createTaskQueueNode } from '../node/create-node.js'
import { natParts } from '../nat/parts.js'
import { ServiceResolver } from '../discovery/resolver.js'
import { DiscoveryAttempts } from '../discovery/attempts.js'
import { announceCandidates, cacheHomeDir } from '../discovery/announce-file.js'
import { peerIdOf } from '../node/addresses.js'
import { findLocalServiceToken } from '../node/service-token.js'
import { summarizeDiscoveryFailure } from '../discovery/failure.js'
import type { DiscoveryTrace } from '../discovery/types.js'
import type { ClaimedTask, JsonObject, JsonValue, Task, TaskEvent } from '../protocol/types.js'
import { ClientError, DeadlineError, DialError, DiscoveryError, ProtocolError, ProtocolNotSupportedError, RemoteError } from './errors.js'
import { PeerLink } from './peer-link.js'
import { submitFields, submitManyChunks, submitManyResult, submitManyResults } from './submit-batch.js'
import { SubmitCoalescer } from './submit-coalescer.js'
import type { SubmitManyResult, SubmitRequest } from './submit-batch.js'
import { probeStatus } from './status-probe.js'
import { CoordinatorAlternates } from './coordinators.js'
import type { ProbeOutcome } from '../discovery/chain.js'
import { timeoutSignal } from '../util/timeout-signal.js'
import { backoffDelay } from '../util/backoff.js'
import type { Logger } from '../logger.js'
import { silentLogger } from '../logger.js'

export interface RemoteQueueOptions {
  /** Explicit target; used alone unless EXPLICIT_DISCOVERY_FALLBACK. */
  multiaddr?: string | null
  /** Accept only this peer, in every mechanism. */
  peerId?: string | null
  /** The only announce file read (null/undefined = ANNOUNCE_FILE rules). */
  announceFile?: string | null
  /** Resolved settings; default: read from `env` (process.env) for the client role. */
  settings?: Settings
  env?: Env
  /** Override the token of the settings. */
  token?: string | null
  logger?: Logger
  /** Where remembered peer addresses are kept; null disables the on-disk cache. */
  addressBookPath?: string | null
  /** A persistent identity (a remote worker's, cli.md); default: an ephemeral one per process. */
  privateKey?: PrivateKey
  /** Where this client counts its discovery attempts (default: its own, `discoveryAttempts`). */
  discoveryAttempts?: DiscoveryAttempts
}

export interface RequestOptions {
  /** Overall deadline for this call, discovery included. */
  timeoutMs?: number
  /** Per-attempt transport timeout (defaults per config.md §3.6). */
  attemptTimeoutMs?: number
  /** Retries after the first attempt (defaults per op kind). */
  retries?: number
  /** Abandons the call: its stream is closed, so a long-poll claim stops on the service too. */
  signal?: AbortSignal
}

export interface DiscoverOptions {
  timeoutMs?: number
  detail?: boolean
  /** Run every mechanism to the end and list every TaskQueue peer found (trace.peers). */
  all?: boolean
}


/**
 * How the client treats a call of `op` (from the op table): whether it may be repeated
 * once it may have reached the service (B16), and whether it blocks the service and so
 * gets a stream of its own.
 */
export function requestPolicy (op: string, fields: Record<string, unknown>): { idempotent: boolean, exclusive: boolean } {
  const spec = lookupOp(op)
  return { idempotent: spec?.idempotent === true, exclusive: blocksService(spec, fields.wait_s) }
}

export class RemoteQueue {
  readonly settings: Settings
  /** Every discovery attempt this client made, by mechanism and outcome (for a process's own metrics). */
  readonly discoveryAttempts: DiscoveryAttempts
  private readonly opts: RemoteQueueOptions
  private readonly log: Logger
  private readonly resolver: ServiceResolver<PeerLink>
  private readonly token: string | null
  /** Generated tokens of local services looked up so far, by peer id (README "Security"). */
  private readonly localTokens = new Map<string, LocalTokenLookup>()
  private node: Libp2p | null = null
  private nodeStarting: Promise<Libp2p> | null = null
  private link: PeerLink | null = null
  private resolving: Promise<PeerLink> | null = null
  private closed = false
  /** The other coordinators of this queue, from the latest status reply (★ failover). */
  private readonly coordinators = new CoordinatorAlternates()
  /** The peer of the last link dropped after a failure: failover tries the others first. */
  private failedPeerId: string | null = null
  private readonly submits = new SubmitCoalescer(async (op, fields) => await this.request(op, fields, { retries: this.settings.submitRetries }))

  constructor (opts: RemoteQueueOptions = {}) {
    this.opts = opts
    this.log = opts.logger ?? silentLogger()
    // Throws ConfigError (code invalid_config, variable) for bad environment values.
    this.settings = opts.settings ?? loadSettings(opts.env ?? process.env, {}, (m) => this.log.warn(m), { role: 'client' })
    this.token = opts.token !== undefined ? opts.token : this.settings.token
    this.discoveryAttempts = opts.discoveryAttempts ?? new DiscoveryAttempts()
    this.resolver = new ServiceResolver<PeerLink>({
      attempts: this.discoveryAttempts,
      settings: this.settings,
      env: opts.env ?? process.env,
      multiaddr: opts.multiaddr ?? null,
      peerId: opts.peerId ?? null,
      announceFile: opts.announceFile ?? null,
      addressBookPath: opts.addressBookPath,
      node: async () => await this.getNode(),
      connect: (node, addrs) => this.newLink(node, addrs),
      probe: async (node, addrs, signal) => await this.probe(node, addrs, signal)
    })
  }

  /** Dials `addrs` and asks for status (a discovery candidate, or a coordinator to fail over to). */
  private async probe (node: Libp2p, addrs: string[], signal: AbortSignal): Promise<ProbeOutcome<PeerLink>> {
    const outcome = await probeStatus(node, addrs, signal, {
      newLink: (n, a) => this.newLink(n, a),
      token: this.tokenFor(peerIdOf(addrs[0] ?? '')),
      timeoutMs: this.settings.rpcDialTimeoutS * 1000,
      holepunch: this.settings.holepunch
    })
    if (outcome.ok && outcome.response !== undefined) this.coordinators.learn(outcome.response, outcome.peerId, [outcome.multiaddr])
    return outcome
  }

  /** The peer id of the service currently in use, if resolved. */
  get peerId (): string | null {
    return this.link?.remotePeerId ?? null
  }

  // ---- typed API -------------------------------------------------------------------

  async status (detail = false, options?: RequestOptions): Promise<Record<string, unknown>> {
    return await this.ok('status', { detail }, options)
  }

  /**
   * Submits a task; an idempotency key is generated once and reused on every retry (B8).
   * Submits called in the same event-loop turn without options share one ★
   * `submit_many` request (SubmitCoalescer); each still gets its own outcome.
   */
  async submit (task: SubmitRequest, options?: RequestOptions): Promise<{ task_id: string, replayed: boolean }> {
    const fields = submitFields(task)
    const reply = options === undefined
      ? await this.submits.submit(fields)
      : await this.ok('submit', fields, { retries: this.settings.submitRetries, ...options })
    return { task_id: String(reply.task_id), replayed: reply.replayed === true }
  }

  /**
   * Submits many tasks with ★ `submit_many`: up to 1,024 per request (more are sent as
   * several requests, one after another), each committed in one transaction on the
   * service, each with its own idempotency key (generated once when absent, so a
   * retried request replays instead of duplicating) and its own outcome, in order. A
   * refused item does not stop the others. Against a service without `submit_many`
   * (`unknown_op`: the original) the tasks go as one `submit` each.
   */
  async submitMany (tasks: SubmitRequest[], options?: RequestOptions): Promise<SubmitManyResult[]> {
    const items = tasks.map(submitFields)
    const out: SubmitManyResult[] = []
    for (const [i, chunk] of submitManyChunks(items).entries()) {
      const reply = await this.request('submit_many', { items: chunk }, { retries: this.settings.submitRetries, ...options })
      if (reply.ok !== true && reply.error === 'unknown_op' && i === 0) return await this.submitOneByOne(items, options)
      if (reply.ok !== true) throw new RemoteError(reply)
      out.push(...submitManyResults(reply, chunk.length))
    }
    return out
  }

  /** `submitMany` against a service without `submit_many`: 16 `submit`s in flight at a time. */
  private async submitOneByOne (items: Array<Record<string, unknown>>, options?: RequestOptions): Promise<SubmitManyResult[]> {
    const out = new Array<SubmitManyResult>(items.length)
    let next = 0
    const lanes = Array.from({ length: Math.min(16, items.length) }, async () => {
      while (next < items.length) {
        const i = next++
        const reply = await this.request('submit', items[i], { retries: this.settings.submitRetries, ...options })
        out[i] = submitManyResult(reply)
      }
    })
    await Promise.all(lanes)
    return out
  }

  /**
   * Submits a task and answers once it is terminal, in one request (★ submit
   * `wait_s`) instead of submit and then wait: the outcome arrives one network hop
   * sooner. `timed_out` when `timeoutS` elapsed first. A service that ignores
   * `wait_s` (the original) answers at once; the wait then follows as its own call.
   */
  async submitAndWait (task: SubmitRequest, timeoutS = 60, options?: RequestOptions): Promise<{ task_id: string, replayed: boolean, task: Task | null, timed_out: boolean }> {
    if (!(Number.isFinite(timeoutS) && timeoutS > 0)) throw new RangeError(`submitAndWait: timeoutS must be a positive number of seconds, got ${timeoutS}`)
    const started = Date.now()
    const reply = await this.ok('submit', { ...submitFields(task), wait_s: timeoutS },
      this.longPollOptions(timeoutS, { retries: this.settings.submitRetries, ...options }))
    const ids = { task_id: String(reply.task_id), replayed: reply.replayed === true }
    if ('timed_out' in reply) return { ...ids, task: (reply.task ?? null) as Task | null, timed_out: reply.timed_out === true }
    const left = timeoutS - (Date.now() - started) / 1000
    return { ...ids, ...await this.wait(ids.task_id, Math.max(left, 0.001), options) }
  }

  async claim (req: { worker_id: string, supported_task_types?: string[], session?: string, lease_s?: number, wait_s?: number, peer_id?: string }, options?: RequestOptions): Promise<ClaimedTask | null> {
    const reply = await this.ok('claim', { ...req }, this.longPollOptions(req.wait_s, options))
    return (reply.task ?? null) as ClaimedTask | null
  }

  async claimMany (req: { worker_id: string, max_tasks: number, supported_task_types?: string[], session?: string, lease_s?: number, wait_s?: number, same_task_type?: boolean, peer_id?: string }, options?: RequestOptions): Promise<ClaimedTask[]> {
    const reply = await this.ok('claim_many', { ...req }, this.longPollOptions(req.wait_s, options))
    return Array.isArray(reply.tasks) ? reply.tasks as ClaimedTask[] : []
  }

  async complete (req: { task_id: string, status?: 'completed' | 'failed' | 'cancelled', result?: JsonValue, error?: string, worker_id?: string, retry?: boolean }, options?: RequestOptions): Promise<{ task_id: string, replayed: boolean }> {
    const reply = await this.ok('complete', { ...req }, options)
    return { task_id: String(reply.task_id), replayed: reply.replayed === true }
  }

  async release (req: { task_id: string, worker_id: string, reason?: string, delay_s?: number }, options?: RequestOptions): Promise<void> {
    await this.ok('release', { ...req }, options)
  }

  async heartbeat (req: { task_id: string, worker_id: string, lease_s?: number, progress?: JsonObject }, options?: RequestOptions): Promise<{ lease_until: number, heartbeat_at: number }> {
    const reply = await this.ok('task.heartbeat', { ...req }, options)
    return { lease_until: Number(reply.lease_until), heartbeat_at: Number(reply.heartbeat_at) }
  }

  async cancel (taskId: string, reason?: string, options?: RequestOptions): Promise<boolean> {
    const reply = await this.ok('cancel', { task_id: taskId, reason }, options)
    return reply.cancelled === true
  }

  async get (taskId: string, options?: RequestOptions): Promise<Task | null> {
    const reply = await this.ok('get', { task_id: taskId }, options)
    return (reply.task ?? null) as Task | null
  }

  /** Waits for a terminal status; `timed_out` when the wait elapsed first. */
  async wait (taskId: string, timeoutS = 60, options?: RequestOptions): Promise<{ task: Task | null, timed_out: boolean }> {
    const reply = await this.ok('wait', { task_id: taskId, timeout_s: timeoutS }, {
      attemptTimeoutMs: (timeoutS + 15) * 1000,
      timeoutMs: (timeoutS + 15) * 1000 + this.settings.discoveryTimeoutS * 1000,
      retries: this.settings.waitRetries,
      ...options
    })
    const task = (reply.task ?? null) as Task | null
    // The original sends no `timed_out`: a task still queued or running means the wait ran out.
    const timedOut = 'timed_out' in reply ? reply.timed_out === true : task !== null && (task.status === 'queued' || task.status === 'running')
    return { task, timed_out: timedOut }
  }

  async list (req: { status?: string, limit?: number, task_types?: string[], cursor?: string, order?: 'asc' | 'desc' } = {}, options?: RequestOptions): Promise<{ tasks: Task[], next_cursor: string | null, truncated: boolean }> {
    const reply = await this.ok('list', { ...req }, options)
    return { tasks: (reply.tasks ?? []) as Task[], next_cursor: (reply.next_cursor ?? null) as string | null, truncated: reply.truncated === true }
  }

  // ---- ★ operating the queue (README "Protocol additions") -------------------------

  /** Requeues failed (or cancelled) tasks with fresh attempts, by ids or by filter. */
  async retry (req: { task_ids?: string[], status?: string | string[], task_types?: string[], since?: number, until?: number, limit?: number, delay_s?: number }, options?: RequestOptions): Promise<{ retried: number, task_ids: string[], skipped: Array<{ task_id: string, status: string }> }> {
    const reply = await this.ok('retry', { ...req }, options)
    return { retried: Number(reply.retried), task_ids: (reply.task_ids ?? []) as string[], skipped: (reply.skipped ?? []) as Array<{ task_id: string, status: string }> }
  }

  /** Deletes tasks by status (never running ones), optionally by type and age; returns how many. */
  async purge (req: { status: string | string[], task_types?: string[], before?: number, limit?: number }, options?: RequestOptions): Promise<number> {
    return Number((await this.ok('purge', { ...req }, options)).purged)
  }

  /** Pauses claims of the given types, or of the whole queue. */
  async pause (taskTypes?: string[], options?: RequestOptions): Promise<{ all: boolean, task_types: string[] }> {
    return (await this.ok('pause', { task_types: taskTypes }, options)).paused as { all: boolean, task_types: string[] }
  }

  /** Resumes the given types, or everything. */
  async resume (taskTypes?: string[], options?: RequestOptions): Promise<{ all: boolean, task_types: string[] }> {
    return (await this.ok('resume', { task_types: taskTypes }, options)).paused as { all: boolean, task_types: string[] }
  }

  /**
   * Task state changes after `cursor` (0 = the oldest kept, -1 = from now); with
   * `wait_s`, waits for the next one. Resume with the returned `cursor`.
   */
  async events (req: { cursor?: number, limit?: number, wait_s?: number, task_ids?: string[] } = {}, options?: RequestOptions): Promise<{ events: TaskEvent[], cursor: number, oldest: number, gap: boolean, more: boolean }> {
    const reply = await this.ok('events', { ...req }, this.longPollOptions(req.wait_s, options))
    return {
      events: (reply.events ?? []) as TaskEvent[],
      cursor: Number(reply.cursor),
      oldest: Number(reply.oldest),
      gap: reply.gap === true,
      more: reply.more === true
    }
  }

  async callTool (tool: string, args: JsonObject = {}, timeoutS = 30, options?: RequestOptions): Promise<unknown> {
    const reply = await this.ok('tool', { tool, args, timeout_s: timeoutS }, { attemptTimeoutMs: (timeoutS + 5) * 1000, ...options })
    return reply.result
  }

  async cacheGet (key: string, options?: RequestOptions): Promise<{ hit: boolean, value: JsonValue | null, expires_at: number | null }> {
    const reply = await this.ok('cache.get', { key }, options)
    return { hit: reply.hit === true, value: (reply.value ?? null) as JsonValue | null, expires_at: (reply.expires_at ?? null) as number | null }
  }

  async cacheSet (key: string, value: JsonValue, ttlS?: number, options?: RequestOptions): Promise<{ expires_at: number | null }> {
    const reply = await this.ok('cache.set', { key, value, ttl_s: ttlS }, options)
    return { expires_at: (reply.expires_at ?? null) as number | null }
  }

  async cacheHas (key: string, options?: RequestOptions): Promise<boolean> {
    return (await this.ok('cache.has', { key }, options)).hit === true
  }

  async cacheDelete (key: string, options?: RequestOptions): Promise<boolean> {
    return (await this.ok('cache.delete', { key }, options)).deleted === true
  }

  // ---- generic request --------------------------------------------------------------

  /** Like `request`, but an `ok:false` reply throws RemoteError. */
  async ok (op: string, fields: Record<string, unknown>, options?: RequestOptions): Promise<Record<string, unknown>> {
    const reply = await this.request(op, fields, options)
    if (reply.ok !== true) throw new RemoteError(reply)
    return reply
  }

  /**
   * Sends one envelope and returns the reply as the service sent it (ok true or false).
   * Transport failures throw ClientError subclasses. Retries follow B16: before the
   * request is sent anything may be retried; afterwards only idempotent ops.
   */
  async request (op: string, fields: Record<string, unknown>, options: RequestOptions = {}): Promise<Record<string, unknown>> {
    const envelope: Record<string, unknown> = { ...fields, op }
    for (const k of Object.keys(envelope)) if (envelope[k] === undefined) delete envelope[k]
    const ownToken = envelope.token !== undefined
    const s = this.settings
    const timeoutMs = options.timeoutMs ?? (s.discoveryTimeoutS + s.rpcDialTimeoutS) * 1000
    const deadline = Date.now() + timeoutMs
    const retries = options.retries ?? s.rpcRetries
    const { idempotent, exclusive } = requestPolicy(op, fields)
    for (let attempt = 0; ; attempt++) {
      const left = deadline - Date.now()
      if (left <= 0) throw new DeadlineError(`no reply to ${op} before the deadline`, attempt > 0)
      let link: PeerLink | undefined
      try {
        link = await this.resolve(left)
        // Before its first call an explicit link knows its peer only from the address.
        const peerId = link.remotePeerId ?? peerIdOf(link.addrs[0] ?? '')
        if (!ownToken) {
          const token = this.tokenFor(peerId)
          if (token !== null) envelope.token = token
          else delete envelope.token
        }
        const reply = await link.call(envelope, {
          timeoutMs: Math.min(deadline - Date.now(), options.attemptTimeoutMs ?? s.rpcDialTimeoutS * 1000),
          exclusive,
          signal: options.signal
        })
        // Refused: the local service may have a new token by now; look again next time.
        if (reply.error === 'unauthorized' && peerId !== null) this.localTokens.delete(peerId)
        if (reply.ok === true && lookupOp(op)?.name === 'status') this.coordinators.learn(reply, link.remotePeerId, link.addrs.map(String))
        if (reply.ok !== true && reply.retryable === true && attempt < retries && Date.now() < deadline) {
          await this.backoff(attempt, deadline)
          continue
        }
        return reply
      } catch (err) {
        if (!(err instanceof ClientError) || options.signal?.aborted === true) throw err
        if (err instanceof DialError || err instanceof ProtocolNotSupportedError) this.dropLink(link)
        // A RemoteError thrown (not replied) is a stream the service refused by a limit.
        const mayRetry = attempt < retries && !(err instanceof DiscoveryError) && !(err instanceof ProtocolError) && !(err instanceof RemoteError && !err.retryable) &&
          (!err.sent || idempotent)
        if (!mayRetry || Date.now() >= deadline) throw err
        if (err instanceof DeadlineError) this.dropLink(link)
        await this.backoff(attempt, deadline)
      }
    }
  }

  /** Runs the full discovery chain and reports every attempt (`p2p-rpc discover`). */
  async discover (options: DiscoverOptions = {}): Promise<DiscoveryTrace> {
    const { trace, link } = await this.resolver.discover(options.timeoutMs ?? this.settings.discoveryTimeoutS * 1000, options.detail === true, options.all === true)
    if (link !== null) this.adopt(link)
    return trace
  }

  async close (): Promise<void> {
    this.closed = true
    this.link?.close()
    this.link = null
    const node = this.node
    this.node = null
    if (node !== null) await node.stop()
  }

  // ---- resolution -------------------------------------------------------------------

  private longPollOptions (waitS: number | undefined, options?: RequestOptions): RequestOptions {
    if (waitS === undefined || waitS <= 0) return options ?? {}
    return { attemptTimeoutMs: (waitS + 15) * 1000, timeoutMs: (waitS + 15) * 1000 + this.settings.discoveryTimeoutS * 1000, ...options }
  }

  private async backoff (attempt: number, deadline: number): Promise<void> {
    const policy = { initialMs: this.settings.rpcRetryBaseMs, maxMs: this.settings.retryDelayMaxMs, jitter: 'full' } as const
    const ms = Math.min(backoffDelay(attempt, policy), Math.max(0, deadline - Date.now()))
    await new Promise((resolve) => setTimeout(resolve, ms))
  }

  private dropLink (link: PeerLink | undefined): void {
    if (link !== undefined && link === this.link) {
      this.failedPeerId = link.remotePeerId ?? peerIdOf(link.addrs[0]?.toString() ?? '')
      link.hangUp()
      this.link = null
    }
  }

  private adopt (link: PeerLink): void {
    if (this.link !== null && this.link !== link) this.link.close()
    this.link = link
  }

  async getNode (): Promise<Libp2p> {
    if (this.closed) throw new DialError('RemoteQueue is closed')
    if (this.node !== null) return this.node
    this.nodeStarting ??= createTaskQueueNode({
      dialTimeoutMs: this.settings.rpcDialTimeoutS * 1000,
      swarmKey: this.settings.swarmKey,
      privateKey: this.opts.privateKey,
      parts: [...this.resolver.nodeParts(), natParts(this.settings, 'client')],
      logger: this.log
    }).then((node) => {
      this.node = node
      return node
    })
    return await this.nodeStarting
  }

  private newLink (node: Libp2p, addrs: string[]): PeerLink {
    return new PeerLink(node, addrs.map((a) => multiaddr(a)), {
      protocols: [...this.settings.protocol],
      token: this.tokenFor(peerIdOf(addrs[0] ?? '')),
      maxOutboundFrameBytes: this.settings.mcpClientMaxOutboundFrameBytes,
      maxInboundFrameBytes: this.settings.mcpClientMaxInboundFrameBytes
    })
  }

  /**
   * The token for service `peerId`: the configured one; with none configured (and
   * TOKEN not set empty), the generated token of a service on this host, found through
   * its announce file or beside the identity file of these settings.
   */
  private tokenFor (peerId: string | null): string | null {
    if (this.token !== null || this.opts.token === null || this.settings.tokenOpen || peerId === null || peerId === '') return this.token
    const known = this.localTokens.get(peerId)
    // A find is kept until the service refuses it. A miss (a remote service, or a local
    // one without a generated token) is looked up again only after a while: looking
    // reads announce files from disk, and doing it on every request cost a busy
    // worker a third of its CPU.
    if (known !== undefined && (known.token !== null || performance.now() - known.at < LOCAL_TOKEN_RECHECK_MS)) return known.token
    const env = this.opts.env ?? process.env
    const announceFiles = [this.opts.announceFile, this.settings.announceFile, ...announceCandidates(process.cwd(), cacheHomeDir(env))]
      .filter((p): p is string => typeof p === 'string' && p !== '')
    const token = findLocalServiceToken(peerId, { announceFiles, identityFiles: [this.settings.identityFile] })
    this.localTokens.set(peerId, { token, at: performance.now() })
    return token
  }

  private async resolve (timeoutMs: number): Promise<PeerLink> {
    if (this.link !== null) return this.link
    this.resolving ??= (async () => {
      const link = await this.failOver(timeoutMs) ?? await this.discoverLink(timeoutMs)
      this.link = link
      return link
    })().finally(() => { this.resolving = null })
    return await this.resolving
  }

  private async discoverLink (timeoutMs: number): Promise<PeerLink> {
    const found = await this.resolver.resolve(timeoutMs)
    if (found.link === null) throw discoveryFailureError(found.reason, found.trace)
    return found.link
  }

  /**
   * After our coordinator failed: the other coordinators its last status listed, all
   * asked for status at once, the first to answer wins (the others' links are closed).
   * null when none is known or none answers; discovery then runs as before.
   */
  private async failOver (timeoutMs: number): Promise<PeerLink | null> {
    const candidates = this.coordinators.candidates(this.failedPeerId)
    if (candidates.length === 0 || this.failedPeerId === null) return null
    const node = await this.getNode()
    const signal = timeoutSignal(Math.min(timeoutMs / 2, this.settings.rpcDialTimeoutS * 1000))
    const probes = candidates.map(async (c) => {
      const outcome = await this.probe(node, c.addrs, signal)
      if (!outcome.ok) throw new DialError(`coordinator ${c.peerId}: ${outcome.error}`)
      return outcome.link
    })
    let winner: PeerLink | null = null
    try {
      winner = await Promise.any(probes)
    } catch {
      return null
    }
    // Close every other link that answered (the winner stays).
    void Promise.allSettled(probes).then((all) => {
      for (const r of all) if (r.status === 'fulfilled' && r.value !== winner) r.value.close()
    })
    this.log.info({ from: this.failedPeerId, to: winner.remotePeerId }, 'failed over to another coordinator of the queue')
    this.failedPeerId = null
    return winner
  }
}

/** A local service's generated token as last looked up (null: none found then), and when. */
interface LocalTokenLookup { token: string | null, at: number }

/** How long a failed local-token lookup stands before the files are read again. */
const LOCAL_TOKEN_RECHECK_MS = 2000

/** A failed resolution as the error callers see: `unauthorized` when a service refused our token. */
function discoveryFailureError (reason: string, trace: DiscoveryTrace | undefined): ClientError {
  if (trace === undefined) return new DiscoveryError(reason)
  const f = summarizeDiscoveryFailure(trace)
  if (f.code === 'unauthorized') {
    return new RemoteError({ ok: false, error: 'unauthorized', detail: f.message, peer_id: f.refusedBy?.peer_id ?? '', multiaddr: f.refusedBy?.multiaddr ?? '', retryable: false })
  }
  return new DiscoveryError(f.message, trace, f.reasons, f.hint)
}
