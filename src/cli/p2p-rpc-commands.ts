/**
 * p2p-rpc's command table (cli.md §2): every subcommand's flags, how they are validated,
 * which op it sends, and how the reply becomes the one JSON document and exit code.
 * Running a command (discovery, the libp2p node, output) lives in p2p-rpc.ts.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { DiscoverOptions, RequestOptions } from '../client/remote-queue.js'
import { ProtocolError } from '../client/errors.js'
import { submitFields, submitManyChunks, submitManyResults } from '../client/submit-batch.js'
import type { SubmitManyResult, SubmitRequest } from '../client/submit-batch.js'
import type { Settings } from '../config/index.js'
import type { DiscoveryTrace } from '../discovery/types.js'
import { summarizeDiscoveryFailure } from '../discovery/failure.js'
import { isPlainObject } from '../protocol/json.js'
import { VERSION } from '../version.js'
import {
  UsageError, parseIntegerOption, parseJsonObjectOption, parseJsonOption, parseListOption, parseNumberOption
} from './args.js'
import type { CommandSpec, OptionSpec, ParsedArgs, ProgramSpec } from './args.js'
import { EXIT_OK, EXIT_REMOTE_ERROR, EXIT_UNREACHABLE, EXIT_WAIT_TIMEOUT } from './exit-codes.js'
import type { ExitCode } from './exit-codes.js'

/** What a command needs from RemoteQueue; tests substitute a fake. */
export interface QueueClient {
  request: (op: string, fields: Record<string, unknown>, options?: RequestOptions) => Promise<Record<string, unknown>>
  discover: (options?: DiscoverOptions) => Promise<DiscoveryTrace>
  close: () => Promise<void>
}

export type Doc = Record<string, unknown>

export interface Outcome {
  code: ExitCode
  doc: Doc
  /** Human-readable output instead of the JSON document (`doctor` without --json). */
  text?: string
}
export type Action = (rq: QueueClient) => Promise<Outcome>
export interface CommandDef {
  spec: CommandSpec
  /** Validates the flags (throws UsageError) and returns the work to do. */
  prepare: (a: ParsedArgs, s: Settings) => Action
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled'])


// ---- the table ---------------------------------------------------------------------------

/** `--backoff TYPE` and `--backoff-delay S` as the submit's ★ `backoff`; undefined when neither is given. */
function backoffOption (a: ParsedArgs): Doc | undefined {
  const type = a.string('backoff')
  const delay = optional(a, 'backoff-delay', (t) => parseNumberOption('backoff-delay', t, { min: 0, max: 86400 }))
  if (type === undefined && delay === undefined) return undefined
  if (type !== undefined && type !== 'fixed' && type !== 'exponential') throw new UsageError(`option --backoff must be fixed or exponential, got ${JSON.stringify(type)}`, 'task-submit')
  return { type: type ?? 'exponential', delay_s: delay }
}


const timeout = (def: number, help = 'overall deadline in seconds, discovery included'): OptionSpec =>
  ({ name: 'timeout', type: 'string', valueName: 'S', default: String(def), help })
const str = (name: string, valueName: string, help: string, extra: Partial<OptionSpec> = {}): OptionSpec =>
  ({ name, type: 'string', valueName, help, ...extra })
const req = (name: string, valueName: string, help: string): OptionSpec => str(name, valueName, help, { required: true })
const bool = (name: string, help: string): OptionSpec => ({ name, type: 'boolean', help })
const taskId = req('task-id', 'ID', 'task id')
const typesOption = str('task-types', 'a,b', 'only these task types (comma-separated)')
const key = req('key', 'K', 'cache key')

const GLOBAL_OPTIONS: OptionSpec[] = [
  str('multiaddr', 'MA', 'explicit target; used alone unless EXPLICIT_DISCOVERY_FALLBACK=1'),
  str('announce-file', 'PATH', 'the only announce file read (0/false/no/n/off: as if not given); must exist and be valid'),
  str('peer-id', 'ID', 'accept only this peer, in every discovery mechanism'),
  bool('pretty', 'indent output by 2 spaces and sort keys')
]

const seconds = (a: ParsedArgs, name = 'timeout'): number => parseNumberOption(name, a.requireString(name), { min: 0, exclusiveMin: true, max: 86400 })
const timeoutMs = (a: ParsedArgs): number => Math.round(seconds(a) * 1000)
const optional = <T>(a: ParsedArgs, name: string, parse: (text: string) => T): T | undefined => {
  const v = a.string(name)
  return v === undefined ? undefined : parse(v)
}
const list = (a: ParsedArgs, name: string): string[] | undefined => optional(a, name, parseListOption)

/** Commands whose stdout is the service's reply itself. */
function replyCommand (spec: CommandSpec, op: string, fields: (a: ParsedArgs) => Doc, extra: (a: ParsedArgs) => RequestOptions = () => ({})): CommandDef {
  return {
    spec,
    prepare: (a) => {
      const f = fields(a)
      const options = { timeoutMs: timeoutMs(a), ...extra(a) }
      return async (rq) => replyOutcome(await call(rq, op, f, options))
    }
  }
}

/** `task-*` commands whose stdout wraps the reply; `shape` turns an ok reply into the outcome. */
function wrappedCommand (spec: CommandSpec, op: string, fields: (a: ParsedArgs) => Doc, shape: (reply: Doc) => Outcome, extra: (a: ParsedArgs, s: Settings) => RequestOptions = () => ({})): CommandDef {
  return {
    spec,
    prepare: (a, s) => {
      const f = fields(a)
      const options = { timeoutMs: timeoutMs(a), ...extra(a, s) }
      return async (rq) => {
        const reply = await call(rq, op, f, options)
        return reply.ok === true ? shape(reply) : wrappedFailure(reply)
      }
    }
  }
}

export const COMMANDS: CommandDef[] = [
  {
    spec: {
      name: 'doctor',
      summary: 'diagnose discovery and NAT traversal from this host: checks, one verdict, the fix',
      description: 'Human-readable by default (the one exception to the JSON-document output besides --help);\n' +
        '--json prints the same report as one JSON document. Exit 0 when a service was found, 3 otherwise.',
      options: [timeout(10, 'discovery deadline in seconds'), bool('json', 'print the report as one JSON document')]
    },
    prepare: (a, s) => {
      const ms = timeoutMs(a)
      const json = a.flag('json')
      return async (rq) => {
        // Lazy like the RemoteQueue itself: libp2p is loaded only when a command runs.
        const { clientDoctor, formatDoctor } = await import('./doctor.js')
        const report = await clientDoctor(s, ms, async (o) => await rq.discover(o))
        const code = report.ok ? EXIT_OK : EXIT_UNREACHABLE
        return { code, doc: { ...report }, text: json ? undefined : formatDoctor(report) }
      }
    }
  },
  replyCommand({ name: 'status', summary: 'ask the service for its status (op status)', options: [timeout(10), bool('detail', 'include queue, scheduler and transport sections')] },
    'status', (a) => ({ detail: a.flag('detail') })),
  {
    spec: {
      name: 'discover',
      summary: 'run the discovery chain and print its trace',
      description: 'Exit 0 when a mechanism found a TaskQueue peer, 3 otherwise.',
      options: [
        timeout(10),
        bool('detail', 'also list mechanisms cancelled once a winner was known'),
        bool('all', 'run every mechanism to the end and list every TaskQueue peer each one found ("peers")')
      ]
    },
    prepare: (a) => {
      const ms = timeoutMs(a)
      const detail = a.flag('detail')
      const all = a.flag('all')
      return async (rq) => {
        const trace = await rq.discover({ timeoutMs: ms, detail, all })
        if (trace.ok) return { code: EXIT_OK, doc: { ...trace } }
        // A service that refused our token is `unauthorized` (exit 1), not unreachable.
        const f = summarizeDiscoveryFailure(trace)
        return { code: f.code === 'unauthorized' ? EXIT_REMOTE_ERROR : EXIT_UNREACHABLE, doc: { ...trace, error: f.code, message: f.message, hint: f.hint } }
      }
    }
  },
  replyCommand({
    name: 'call-tool',
    summary: 'call a registered tool (op tool)',
    options: [req('tool', 'T', 'tool name'), str('args', 'OBJ', 'tool arguments, a JSON object', { default: '{}' }), timeout(30, 'overall deadline in seconds, discovery included; also the tool timeout')]
  }, 'tool', (a) => ({ tool: a.requireString('tool'), args: parseJsonObjectOption('args', a.requireString('args')), timeout_s: seconds(a) }),
  // The tool may legitimately run for the whole deadline: no shorter per-attempt cap.
  (a) => ({ attemptTimeoutMs: timeoutMs(a) })),
  replyCommand({ name: 'cache-get', summary: 'read a cache entry (op cache.get)', options: [key, timeout(10)] }, 'cache.get', (a) => ({ key: a.requireString('key') })),
  replyCommand({ name: 'cache-has', summary: 'test for a cache entry (op cache.has)', options: [key, timeout(10)] }, 'cache.has', (a) => ({ key: a.requireString('key') })),
  replyCommand({ name: 'cache-delete', summary: 'delete a cache entry (op cache.delete)', options: [key, timeout(10)] }, 'cache.delete', (a) => ({ key: a.requireString('key') })),
  replyCommand({
    name: 'cache-set',
    summary: 'write a cache entry (op cache.set)',
    options: [key, req('value', 'JSON', 'any JSON value; an empty string means ""'), str('ttl', 'S', 'expiry in seconds (none when absent or 0)'), timeout(10)]
  }, 'cache.set', (a) => {
    const text = a.requireString('value')
    return {
      key: a.requireString('key'),
      value: text.trim() === '' ? '' : parseJsonOption('value', text),
      ttl_s: optional(a, 'ttl', (t) => parseNumberOption('ttl', t, { min: 0 }))
    }
  }),
  wrappedCommand({
    name: 'task-submit',
    summary: 'submit a task (op submit)',
    description: 'Without --idempotency-key a key auto-<uuid> is generated once, so retries never duplicate the task.',
    options: [
      req('task-type', 'T', 'task type'), req('model-name', 'M', 'model name'),
      str('payload', 'OBJ', 'task payload, a JSON object', { default: '{}' }),
      str('priority', 'N', 'priority 1..10 (10 is highest; service default 5)'),
      str('idempotency-key', 'K', 'idempotency key (generated when absent)'),
      str('max-attempts', 'N', 'attempts before the task fails for good (0 = unlimited; service default MAX_ATTEMPTS)'),
      str('delay', 'S', '★ claimable only this many seconds from now'),
      str('run-at', 'T', '★ claimable only from this time (epoch seconds)'),
      str('backoff', 'TYPE', '★ retry backoff: fixed or exponential (service default RETRY_BACKOFF)'),
      str('backoff-delay', 'S', '★ retry wait in seconds (fixed), or the first one (exponential)'),
      str('keep-s', 'S', '★ keep the task this long once finished (service default RETENTION_*)'),
      timeout(10)
    ]
  }, 'submit', (a) => {
    const payload = parseJsonObjectOption('payload', a.requireString('payload'))
    const priority = optional(a, 'priority', (t) => parseIntegerOption('priority', t, { min: 1, max: 10 }))
    if (priority !== undefined) payload.priority = priority
    const maxAttempts = optional(a, 'max-attempts', (t) => parseIntegerOption('max-attempts', t, { min: 0, max: 1000 }))
    if (maxAttempts !== undefined) payload.max_attempts = maxAttempts
    const given = a.string('idempotency-key')
    // B8: generated once here, so every retry inside RemoteQueue carries the same key.
    const existing = typeof payload.idempotency_key === 'string' && payload.idempotency_key !== '' ? payload.idempotency_key : undefined
    payload.idempotency_key = given ?? existing ?? `auto-${randomUUID()}`
    if (a.has('delay') && a.has('run-at')) throw new UsageError('give --delay or --run-at, not both', 'task-submit')
    return {
      task_type: a.requireString('task-type'),
      model_name: a.requireString('model-name'),
      payload,
      delay_s: optional(a, 'delay', (t) => parseNumberOption('delay', t, { min: 0, max: 366 * 86400 })),
      run_at: optional(a, 'run-at', (t) => parseNumberOption('run-at', t, { min: 0 })),
      backoff: backoffOption(a),
      keep_s: optional(a, 'keep-s', (t) => parseNumberOption('keep-s', t, { min: 0 }))
    }
  }, (reply) => ({ code: EXIT_OK, doc: { ok: true, task_id: reply.task_id, replayed: reply.replayed === true } }),
  (_a, s) => ({ retries: s.submitRetries })),
  {
    spec: {
      name: 'task-submit-many',
      summary: 'submit many tasks, up to 1,024 per request, one transaction each (op submit_many) ★',
      description: 'The file has one JSON object per line: {"task_type", "model_name"?, "payload"?, "priority"?,\n' +
        '"idempotency_key"?, "max_attempts"?}; blank lines are skipped. A key auto-<uuid> is generated once per\n' +
        'task without one, so retries never duplicate it. Prints {"ok", "submitted", "failed", "results"}, one\n' +
        'result per line in order; exit 0 when every task was accepted, 1 when any was refused.',
      options: [req('file', 'PATH', 'the tasks, JSON lines; - reads standard input'), timeout(30)]
    },
    prepare: (a, s) => {
      const items = readSubmitLines(a.requireString('file')).map(submitFields)
      const options = { timeoutMs: timeoutMs(a), retries: s.submitRetries }
      return async (rq) => await submitManyOutcome(rq, items, options)
    }
  },
  replyCommand({
    name: 'task-list',
    summary: 'list tasks (op list)',
    options: [
      str('status', 'S', 'only tasks in this status'), str('limit', 'N', 'page size', { default: '50' }),
      str('task-types', 'a,b', 'only these task types (comma-separated)'),
      str('cursor', 'C', 'resume from a previous reply\'s next_cursor'), timeout(10)
    ]
  }, 'list', (a) => ({
    status: a.string('status'),
    limit: parseIntegerOption('limit', a.requireString('limit'), { min: 1 }),
    task_types: list(a, 'task-types'),
    cursor: a.string('cursor')
  })),
  wrappedCommand({ name: 'task-get', summary: 'fetch one task (op get)', options: [taskId, timeout(10)] },
    'get', (a) => ({ task_id: a.requireString('task-id') }),
    (reply) => isPlainObject(reply.task)
      ? { code: EXIT_OK, doc: { ok: true, result: reply.task } }
      : { code: EXIT_REMOTE_ERROR, doc: { ok: false, error: 'task_not_found', result: null } }),
  {
    spec: {
      name: 'task-wait',
      summary: 'wait until a task is completed, failed or cancelled (op wait)',
      description: 'Exit 0 once the task is terminal, 5 (wait_timeout) if it is still queued or running when the wait ends. The deadline is the wait plus the discovery timeout plus 15 s.',
      options: [taskId, timeout(60, 'how long to wait, in seconds')]
    },
    prepare: (a, s) => {
      const id = a.requireString('task-id')
      const waitS = seconds(a)
      return async (rq) => await waitForTask(rq, id, waitS, s)
    }
  },
  wrappedCommand({
    name: 'task-claim',
    summary: 'claim the next eligible task (op claim)',
    options: [
      req('worker-id', 'W', 'worker id'), str('supported-task-types', 'a,b', 'claim only these task types (comma-separated)'),
      str('session', 'S', 'session to claim session-bound tasks of'), str('lease-s', 'N', 'requested lease in seconds (10..3600)'), timeout(10)
    ]
  }, 'claim', (a) => ({
    worker_id: a.requireString('worker-id'),
    supported_task_types: list(a, 'supported-task-types'),
    session: a.string('session'),
    lease_s: optional(a, 'lease-s', (t) => parseIntegerOption('lease-s', t, { min: 1 }))
  }), (reply) => ({ code: EXIT_OK, doc: { ok: true, result: isPlainObject(reply.task) ? reply.task : null } })),
  wrappedCommand({
    name: 'task-complete',
    summary: 'finish a task (op complete)',
    options: [
      taskId, str('status', 'S', 'completed, failed or cancelled', { default: 'completed' }),
      str('result', 'OBJ', 'result, a JSON object', { default: '{}' }), str('error', 'TEXT', 'error text'),
      str('worker-id', 'W', 'the claiming worker (the service refuses other owners)'), timeout(10)
    ]
  }, 'complete', (a) => {
    const status = a.requireString('status')
    if (!TERMINAL.has(status)) throw new UsageError(`option --status must be completed, failed or cancelled, got ${JSON.stringify(status)}`, 'task-complete')
    return {
      task_id: a.requireString('task-id'),
      status,
      result: parseJsonObjectOption('result', a.requireString('result')),
      error: a.string('error'),
      worker_id: a.string('worker-id')
    }
  }, (reply) => ({ code: EXIT_OK, doc: { ok: true, result: reply } })),
  replyCommand({ name: 'task-cancel', summary: 'cancel a queued task (op cancel)', options: [taskId, str('reason', 'TEXT', 'cancel reason'), timeout(10)] },
    'cancel', (a) => ({ task_id: a.requireString('task-id'), reason: a.string('reason') })),
  replyCommand({
    name: 'task-release',
    summary: 'give a running task back to the queue (op release)',
    options: [taskId, req('worker-id', 'W', 'the owning worker'), str('reason', 'TEXT', 'release reason'), str('delay-s', 'N', 'seconds before it may be claimed again', { default: '0' }), timeout(10)]
  }, 'release', (a) => ({
    task_id: a.requireString('task-id'),
    worker_id: a.requireString('worker-id'),
    reason: a.string('reason'),
    delay_s: parseNumberOption('delay-s', a.requireString('delay-s'), { min: 0, max: 86400 })
  })),
  replyCommand({
    name: 'task-retry',
    summary: '★ requeue failed (or cancelled) tasks with fresh attempts (op retry)',
    description: 'By --task-id (comma-separated ids) or by filter; tasks not failed/cancelled are listed in "skipped".',
    options: [
      str('task-id', 'ID', 'task ids (comma-separated)'), str('status', 'S', 'failed (default) and/or cancelled, comma-separated'), typesOption,
      str('since', 'T', 'finished at or after this time (epoch seconds)'), str('until', 'T', 'finished before this time (epoch seconds)'),
      str('limit', 'N', 'at most this many tasks', { default: '1000' }), str('delay-s', 'S', 'claimable this many seconds from now'), timeout(10)
    ]
  }, 'retry', (a) => ({
    task_ids: list(a, 'task-id'),
    status: list(a, 'status'),
    task_types: list(a, 'task-types'),
    since: optional(a, 'since', (t) => parseNumberOption('since', t, { min: 0 })),
    until: optional(a, 'until', (t) => parseNumberOption('until', t, { min: 0 })),
    limit: parseIntegerOption('limit', a.requireString('limit'), { min: 1, max: 10000 }),
    delay_s: optional(a, 'delay-s', (t) => parseNumberOption('delay-s', t, { min: 0 }))
  })),
  replyCommand({
    name: 'task-purge',
    summary: '★ delete tasks by status, never running ones (op purge)',
    options: [
      req('status', 'S', 'queued, completed, failed and/or cancelled (comma-separated)'), typesOption,
      str('before', 'T', 'only tasks last changed before this time (epoch seconds)'), str('limit', 'N', 'at most this many tasks'), timeout(60)
    ]
  }, 'purge', (a) => ({
    status: list(a, 'status'),
    task_types: list(a, 'task-types'),
    before: optional(a, 'before', (t) => parseNumberOption('before', t, { min: 0 })),
    limit: optional(a, 'limit', (t) => parseIntegerOption('limit', t, { min: 1 }))
  })),
  replyCommand({ name: 'queue-pause', summary: '★ stop claims of some task types, or of the whole queue (op pause)', options: [typesOption, timeout(10)] },
    'pause', (a) => ({ task_types: list(a, 'task-types') })),
  replyCommand({ name: 'queue-resume', summary: '★ resume claims of some task types, or of everything (op resume)', options: [typesOption, timeout(10)] },
    'resume', (a) => ({ task_types: list(a, 'task-types') })),
  replyCommand({
    name: 'events',
    summary: '★ task state changes after a cursor (op events)',
    description: 'Resume with the reply\'s "cursor"; "gap": true means entries were trimmed before they were read.',
    options: [
      str('cursor', 'N', '0 = from the oldest kept, -1 = from now', { default: '0' }), str('limit', 'N', 'at most this many events', { default: '100' }),
      str('wait', 'S', 'with nothing new, wait this long for the next change', { default: '0' }), str('task-id', 'ID', 'only these tasks (comma-separated)'), timeout(30)
    ]
  }, 'events', (a) => ({
    cursor: parseIntegerOption('cursor', a.requireString('cursor'), { min: -1 }),
    limit: parseIntegerOption('limit', a.requireString('limit'), { min: 1, max: 1000 }),
    wait_s: parseNumberOption('wait', a.requireString('wait'), { min: 0, max: 3600 }),
    task_ids: list(a, 'task-id')
  }), (a) => {
    const waitS = parseNumberOption('wait', a.requireString('wait'), { min: 0, max: 3600 })
    return waitS > 0 ? { attemptTimeoutMs: (waitS + 15) * 1000 } : {}
  }),
  replyCommand({
    name: 'task-heartbeat',
    summary: 'renew a running task\'s lease (op task.heartbeat)',
    options: [taskId, req('worker-id', 'W', 'the owning worker'), str('lease-s', 'N', 'new lease in seconds (10..3600)'), str('progress', 'OBJ', 'progress, a JSON object merged into result.progress'), timeout(10)]
  }, 'task.heartbeat', (a) => ({
    task_id: a.requireString('task-id'),
    worker_id: a.requireString('worker-id'),
    lease_s: optional(a, 'lease-s', (t) => parseIntegerOption('lease-s', t, { min: 1 })),
    progress: optional(a, 'progress', (t) => parseJsonObjectOption('progress', t))
  }))
]

export const PROGRAM: ProgramSpec = {
  name: 'p2p-rpc',
  version: VERSION,
  summary: 'Client for a taskqueue-p2p TaskQueue service: task queue, TTL cache and tool calls over libp2p.',
  globalOptions: GLOBAL_OPTIONS,
  commands: COMMANDS.map((c) => c.spec),
  epilog: [
    'Without --multiaddr the discovery chain runs: announce-file, bootstrap, rendezvous, DHT, mDNS.',
    'stdout is one JSON document; its "ok" is true exactly when the exit code is 0.',
    'Exit codes: 0 ok, 1 the service said no, 2 usage or configuration, 3 no peer / unreachable /',
    'deadline, 4 protocol error, 5 task-wait timed out, 6 internal error.'
  ].join('\n')
}

// ---- outcomes ------------------------------------------------------------------------------

/** One request; a reply without a boolean `ok` is not a TaskQueue reply. */
async function call (rq: QueueClient, op: string, fields: Doc, options: RequestOptions): Promise<Doc> {
  const reply = await rq.request(op, withoutUndefined(fields), options)
  if (!isPlainObject(reply) || typeof reply.ok !== 'boolean') throw new ProtocolError(`reply to ${op} has no boolean "ok"`)
  return reply
}

function withoutUndefined (fields: Doc): Doc {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined))
}

function replyOutcome (reply: Doc): Outcome {
  return { code: reply.ok === true ? EXIT_OK : EXIT_REMOTE_ERROR, doc: reply }
}

function wrappedFailure (reply: Doc): Outcome {
  return { code: EXIT_REMOTE_ERROR, doc: { ok: false, error: typeof reply.error === 'string' && reply.error !== '' ? reply.error : 'remote_error', reply } }
}

/** `task-submit-many --file`: one SubmitRequest per non-blank line; a bad line is a usage error naming it. */
function readSubmitLines (file: string): SubmitRequest[] {
  let text: string
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (err) {
    throw new UsageError(`option --file: cannot read ${file === '-' ? 'standard input' : JSON.stringify(file)}: ${(err as Error).message}`, 'task-submit-many')
  }
  const tasks: SubmitRequest[] = []
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    const where = `option --file: line ${i + 1}`
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      throw new UsageError(`${where} is not JSON`, 'task-submit-many')
    }
    if (!isPlainObject(value)) throw new UsageError(`${where} is not a JSON object`, 'task-submit-many')
    if (typeof value.task_type !== 'string' || value.task_type === '') throw new UsageError(`${where} has no task_type string`, 'task-submit-many')
    if (value.payload !== undefined && !isPlainObject(value.payload)) throw new UsageError(`${where}: payload must be a JSON object`, 'task-submit-many')
    for (const k of ['model_name', 'idempotency_key'] as const) {
      if (value[k] !== undefined && typeof value[k] !== 'string') throw new UsageError(`${where}: ${k} must be a string`, 'task-submit-many')
    }
    for (const k of ['priority', 'max_attempts'] as const) {
      if (value[k] !== undefined && !Number.isInteger(value[k])) throw new UsageError(`${where}: ${k} must be an integer`, 'task-submit-many')
    }
    tasks.push(value as unknown as SubmitRequest)
  }
  if (tasks.length === 0) throw new UsageError('option --file: no tasks in it', 'task-submit-many')
  return tasks
}

/** Sends the items as ★ `submit_many` requests in order; stops at a request the service refuses as a whole. */
async function submitManyOutcome (rq: QueueClient, items: Doc[], options: RequestOptions): Promise<Outcome> {
  const results: SubmitManyResult[] = []
  for (const chunk of submitManyChunks(items)) {
    const reply = await call(rq, 'submit_many', { items: chunk }, options)
    if (reply.ok !== true) return { code: EXIT_REMOTE_ERROR, doc: { ...wrappedFailure(reply).doc, results } }
    results.push(...submitManyResults(reply, chunk.length))
  }
  const failed = results.filter((r) => !r.ok).length
  const doc: Doc = { ok: failed === 0, submitted: results.length - failed, failed, results }
  if (failed > 0) doc.error = 'items_refused'
  return { code: failed === 0 ? EXIT_OK : EXIT_REMOTE_ERROR, doc }
}

/**
 * The service caps one wait at WAIT_MAX_S (300 s by default), so a longer --timeout is
 * served by several waits within one deadline of wait + discovery + 15 s.
 */
async function waitForTask (rq: QueueClient, taskId: string, waitS: number, s: Settings): Promise<Outcome> {
  // ★ On a terminal, a progress line on stderr while the wait runs; stdout stays one document.
  const progress = process.stderr.isTTY === true ? new ProgressLine(rq, taskId) : null
  try {
    return await waitUntilTerminal(rq, taskId, waitS, s)
  } finally {
    await progress?.stop()
  }
}

/** Follows a task's ★ events and keeps one status line on the terminal (stderr) up to date. */
class ProgressLine {
  private readonly abort = new AbortController()
  private readonly done: Promise<void>
  private printed = false

  constructor (rq: QueueClient, taskId: string) {
    this.done = this.follow(rq, taskId).catch(() => {})
  }

  async stop (): Promise<void> {
    this.abort.abort()
    await this.done
    if (this.printed) process.stderr.write('\n')
  }

  private async follow (rq: QueueClient, taskId: string): Promise<void> {
    let cursor = -1
    while (!this.abort.signal.aborted) {
      const reply = await rq.request('events', { cursor, task_ids: [taskId], wait_s: 20 }, { timeoutMs: 40_000, attemptTimeoutMs: 35_000, signal: this.abort.signal })
      // An original service has no events op: no progress line, the wait goes on.
      if (reply.ok !== true || !Array.isArray(reply.events)) return
      for (const e of reply.events as Doc[]) this.show(e)
      cursor = typeof reply.cursor === 'number' ? reply.cursor : cursor
    }
  }

  private show (e: Doc): void {
    const parts = [`task ${String(e.task_id).slice(0, 8)}…`, String(e.kind)]
    if (typeof e.attempt === 'number') parts.push(`attempt ${e.attempt}`)
    if (isPlainObject(e.progress)) parts.push(`progress ${JSON.stringify(e.progress)}`)
    if (typeof e.error === 'string' && e.error !== '') parts.push(`error: ${e.error}`)
    // A terminal that reports no size (0 columns: a pty made by `script`, a serial console) is taken as 100 wide.
    const reported = process.stderr.columns ?? 0
    const cols = reported > 0 ? reported : 100
    process.stderr.write(`\r\x1b[K${parts.join(' · ').slice(0, Math.max(20, cols - 1))}`)
    this.printed = true
  }
}

async function waitUntilTerminal (rq: QueueClient, taskId: string, waitS: number, s: Settings): Promise<Outcome> {
  const start = Date.now()
  const waitEnd = start + waitS * 1000
  const deadline = waitEnd + (s.discoveryTimeoutS + 15) * 1000
  for (;;) {
    const left = Math.max(0, waitEnd - Date.now()) / 1000
    // Integer seconds: services truncate timeout_s, and 0 would mean their default (60).
    const timeoutS = Math.max(1, Math.ceil(left))
    const asked = Date.now()
    const reply = await call(rq, 'wait', { task_id: taskId, timeout_s: timeoutS }, {
      timeoutMs: Math.max(1, deadline - Date.now()),
      attemptTimeoutMs: (timeoutS + 15) * 1000,
      retries: s.waitRetries
    })
    if (reply.ok !== true) return wrappedFailure(reply)
    const task = reply.task
    if (!isPlainObject(task)) return { code: EXIT_REMOTE_ERROR, doc: { ok: false, error: 'task_not_found', result: null } }
    if (typeof task.status === 'string' && TERMINAL.has(task.status)) return { code: EXIT_OK, doc: { ok: true, result: task } }
    if (waitEnd - Date.now() < 1000) return { code: EXIT_WAIT_TIMEOUT, doc: { ok: false, error: 'wait_timeout', result: task } }
    // A service that answers at once without waiting must not turn this into a busy loop.
    if (Date.now() - asked < 250) await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
