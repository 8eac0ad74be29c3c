/**
 * `taskqueue-p2p serve|worker|relay` (cli.md §2): the daemons. stdout carries only the start
 * lines, printed once ready; logs go to stderr. SIGINT/SIGTERM stop gracefully and exit 0.
 * Exit codes: 2 configuration, 3 listen address unavailable, 6 internal error.
 */
import './quiet-warnings.js'
import os from 'node:os'
import { dirname } from 'node:path'
import { ConfigError, Reject, isFalseWord, loadSettings, parseQueueUrl, redactQueueUrl } from '../config/index.js'
import type { Settings, SettingsOverrides } from '../config/index.js'
import { createLogger } from '../logger.js'
import type { Logger } from '../logger.js'
import { ListenError, queueStoreOptionsFrom, startServiceNode } from '../service/service-node.js'
import { runServiceDoctor } from './doctor.js'
import type { ServiceNode } from '../service/service-node.js'
import { IdentityError, loadOrCreateIdentity } from '../node/identity.js'
import { claimWorkerSlot, type WorkerSlot } from '../worker/worker-slot.js'
import { PathError, StateLockedError, pathStep } from '../node/startup-errors.js'
import { RemoteQueue } from '../client/remote-queue.js'
import { ClientError, RemoteError } from '../client/errors.js'
import { LocalBackend } from '../worker/local-backend.js'
import { RemoteBackend } from '../worker/remote-backend.js'
import type { QueueBackend } from '../worker/backend.js'
import { builtinHandlers, loadHandlerModule, mergeHandlers } from '../worker/handlers.js'
import type { HandlerMap } from '../worker/handlers.js'
import { Worker } from '../worker/worker.js'
import { ToolRegistry } from '../tools/registry.js'
import { startCoordinationNode } from '../coordination/coordination-node.js'
import { VERSION } from '../version.js'
import { UsageError, formatHelp, parseCommandLine, parseIntegerOption, parseListOption, parseNumberOption } from './args.js'
import type { OptionSpec, ParsedArgs, ProgramSpec } from './args.js'
import { EXIT_INTERNAL, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE } from './exit-codes.js'
import { emitText, exitWhenFlushed, isEntryPoint, writeStdout } from './output.js'

const EXIT_LISTEN = 3

const opt = (name: string, help: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ name, type: 'string', help, ...extra })
const flag = (name: string, help: string): OptionSpec => ({ name, type: 'boolean', help })

const WORKER_OPTIONS: OptionSpec[] = [
  opt('worker-id', 'worker id sent in claims and completes (env TASK_WORKER_ID, else <host>-<id persisted per worker slot>)', { valueName: 'W' }),
  opt('task-types', 'claim only these types, comma-separated, alias-expanded (env TASK_WORKER_TASK_TYPES, else all handler types)', { valueName: 'a,b' }),
  opt('handlers', 'module exporting handlers keyed by task type (repeatable); built-ins: tool.call, echo, sleep', { valueName: 'MODULE', repeatable: true }),
  opt('concurrency', 'tasks run in parallel', { valueName: 'N', default: '1' }),
  opt('batch', 'tasks asked for per claim (claim_many size), 1..128', { valueName: 'N', default: '1' }),
  opt('lease-s', 'requested lease in seconds, renewed every lease/3 (env LEASE_S, default 300)', { valueName: 'N' }),
  opt('session', 'session sent in claims (env SESSION)', { valueName: 'S' })
]

const SERVE_ONLY: OptionSpec[] = [
  opt('queue', 'SQLite queue file (env IPFS_ACCELERATE_PY_TASK_QUEUE_PATH)', { valueName: 'PATH' }),
  opt('queue-url', 'PostgreSQL queue shared by several coordinators instead of the SQLite file (env IPFS_ACCELERATE_PY_TASK_QUEUE_URL)', { valueName: 'URL' }),
  opt('queue-pool-size', 'pooled connections to the PostgreSQL queue, 1..1000; one more listens (env IPFS_ACCELERATE_PY_TASK_QUEUE_POOL_SIZE, default 10)', { valueName: 'N' }),
  opt('listen-host', 'listen IP, 0.0.0.0 or :: for all (env LISTEN_HOST, default 0.0.0.0)', { valueName: 'IP' }),
  opt('listen-port', 'TCP port, 0 = ephemeral (env LISTEN_PORT, default 9710)', { valueName: 'N' }),
  opt('announce-file', 'announce file to write, or 0 to disable (env ANNOUNCE_FILE)', { valueName: 'PATH|0' }),
  opt('identity', 'Ed25519 identity file, created 0600 if missing (env IDENTITY_FILE, default beside the queue)', { valueName: 'PATH' }),
  flag('enable-tools', 'serve the tool op and direct MCP tool calls (env ENABLE_TOOLS)'),
  flag('enable-cache', 'serve the cache ops (env ENABLE_CACHE)'),
  flag('legacy', 'also serve the legacy NDJSON protocol (env ENABLE_LEGACY_PROTOCOL)'),
  flag('json', 'print one JSON line {peer_id, multiaddr, multiaddrs, announce_file} instead of the three start lines'),
  flag('worker', 'run an embedded worker in the same process')
]

const SPEC: ProgramSpec = {
  name: 'taskqueue-p2p',
  version: VERSION,
  summary: 'TaskQueue service and worker daemons over libp2p.',
  globalOptions: [],
  commands: [
    {
      name: 'serve',
      summary: 'run the TaskQueue service (queue, cache, tools) on the embedded SQLite store, or PostgreSQL with --queue-url',
      options: [...SERVE_ONLY, ...WORKER_OPTIONS],
      description: 'Start lines: "ipfs_accelerate_py task queue p2p service started", peer_id=<id>, multiaddr=<ma>.\n' +
        'The worker options apply to the embedded worker (--worker).\n' +
        'Per remote peer (README "Security"; 0 = off): PEER_MAX_TASKS (2000000) unfinished tasks and\n' +
        'PEER_MAX_TASK_BYTES (1 GiB) of their payloads, PEER_MAX_CACHE_BYTES (CACHE_MAX_BYTES / 4) of cache\n' +
        'entries; past one, the write gets a retryable rate_limited naming it.'
    },
    {
      name: 'worker',
      summary: 'claim tasks and run handlers, locally (--queue) or against a remote service',
      options: [
        opt('queue', 'local mode: the SQLite file of a serve on this host, or the postgres:// URL of a PostgreSQL queue', { valueName: 'PATH|URL' }),
        opt('queue-pool-size', 'local mode on PostgreSQL: pooled connections, 1..1000 (env IPFS_ACCELERATE_PY_TASK_QUEUE_POOL_SIZE, default 10)', { valueName: 'N' }),
        opt('multiaddr', 'remote mode: the service address', { valueName: 'MA' }),
        opt('announce-file', 'remote mode: read the service address from this announce file', { valueName: 'PATH' }),
        opt('peer-id', 'remote mode: accept only this service peer', { valueName: 'ID' }),
        opt('identity', 'remote mode: Ed25519 identity file, created 0600 if missing (env IDENTITY_FILE, default workers/slot-<n>.identity.key beside the queue)', { valueName: 'PATH' }),
        ...WORKER_OPTIONS,
        opt('poll-interval-s', 'idle wait against services without long-poll claims', { valueName: 'X', default: '0.5' }),
        flag('once', 'run at most one batch, then exit (3 if the service is unreachable)'),
        flag('json', 'print one JSON start line')
      ],
      description: 'Without --queue, --multiaddr, --announce-file or --peer-id the discovery chain finds the service.'
    },
    {
      name: 'relay',
      summary: 'run a WAN coordination node: rendezvous point, DHT server, circuit relay (no queue)',
      options: [
        opt('listen-host', 'listen IP (env LISTEN_HOST, default 0.0.0.0)', { valueName: 'IP' }),
        opt('listen-port', 'TCP port, 0 = ephemeral (env LISTEN_PORT, default 9710)', { valueName: 'N' }),
        opt('identity', 'Ed25519 identity file, created 0600 if missing (env IDENTITY_FILE, default ~/.cache/ipfs_accelerate_py/relay_identity.key)', { valueName: 'PATH' }),
        flag('no-rendezvous', 'do not be a rendezvous point (env RENDEZVOUS)'),
        flag('no-dht', 'do not run the DHT server (env DHT, DHT_PROTOCOL)'),
        flag('json', 'print one JSON line {peer_id, multiaddrs} instead of the start lines')
      ],
      description: 'Start lines: "taskqueue-p2p relay started", peer_id=<id>, then one multiaddr=<ma> per announced address.\n' +
        'Give one of those addresses to services and clients as IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS (and RELAY=1 on NATed services).\n' +
        'It writes no announce file: it is not a TaskQueue endpoint.'
    },
    {
      name: 'doctor',
      summary: 'diagnose this service: addresses, reachability (AutoNAT), relay reservations, discovery, one verdict with the fix',
      options: [
        opt('announce-file', 'the running service\'s announce file (env ANNOUNCE_FILE)', { valueName: 'PATH' }),
        opt('timeout', 'seconds allowed for each check', { valueName: 'S', default: '10' }),
        flag('json', 'print the report as one JSON document instead of text')
      ],
      description: 'Run it on the service\'s host with the service\'s environment. Exit 0 when clients can reach the service, 3 otherwise.'
    }
  ],
  epilog: 'Environment variables: every one, with its default, is in docs/configuration.md (in the package and the repository). Flags override them.'
}

function announceOverride (value: string | undefined): string | null | undefined {
  if (value === undefined) return undefined
  return isFalseWord(value.trim()) ? null : value
}

function commonOverrides (a: ParsedArgs): SettingsOverrides {
  const o: { -readonly [K in keyof SettingsOverrides]: SettingsOverrides[K] } = {}
  const types = a.string('task-types')
  if (a.has('worker-id')) o.workerId = a.requireString('worker-id')
  if (types !== undefined) o.workerTaskTypes = parseListOption(types)
  if (a.has('lease-s')) o.leaseS = parseIntegerOption('lease-s', a.requireString('lease-s'), { min: 10, max: 3600 })
  if (a.has('session')) o.session = a.requireString('session')
  return o
}

function serveOverrides (a: ParsedArgs): SettingsOverrides {
  const o: { -readonly [K in keyof SettingsOverrides]: SettingsOverrides[K] } = { ...commonOverrides(a) }
  if (a.has('queue')) o.queuePath = a.requireString('queue')
  if (a.has('queue-url')) o.queueUrl = a.requireString('queue-url')
  Object.assign(o, poolSizeOverride(a))
  if (a.has('listen-host')) o.listenHost = a.requireString('listen-host')
  if (a.has('listen-port')) o.listenPort = parseIntegerOption('listen-port', a.requireString('listen-port'), { min: 0, max: 65535 })
  const announce = announceOverride(a.string('announce-file'))
  if (announce !== undefined) o.announceFile = announce
  if (a.has('identity')) o.identityFile = a.requireString('identity')
  if (a.flag('enable-tools')) o.enableTools = true
  if (a.flag('enable-cache')) o.enableCache = true
  if (a.flag('legacy')) o.enableLegacyProtocol = true
  return o
}

function poolSizeOverride (a: ParsedArgs): SettingsOverrides {
  return a.has('queue-pool-size') ? { queuePoolSize: parseIntegerOption('queue-pool-size', a.requireString('queue-pool-size'), { min: 1, max: 1000 }) } : {}
}

/** `worker --queue`: a postgres:// or postgresql:// URL (checked), or null for a SQLite path. */
function postgresQueueArg (queue: string): string | null {
  if (!/^\s*postgres(ql)?:/i.test(queue)) return null
  try {
    const url = parseQueueUrl(queue)
    if (url !== null && url !== undefined) return url
  } catch (err) {
    if (!(err instanceof Reject)) throw err
    throw new UsageError(`--queue ${redactQueueUrl(queue)} is not a PostgreSQL URL: ${err.message}`, 'worker')
  }
  throw new UsageError('--queue: empty PostgreSQL URL', 'worker')
}

async function loadHandlers (a: ParsedArgs, tools: ToolRegistry): Promise<HandlerMap> {
  const maps = [builtinHandlers({ tools })]
  for (const spec of a.list('handlers')) maps.push(await loadHandlerModule(spec))
  return mergeHandlers(...maps)
}

/** Whether a variable (either spelling, config.md §1) is set. */
function envGiven (suffix: string): boolean {
  return [`IPFS_ACCELERATE_PY_${suffix}`, `IPFS_DATASETS_PY_${suffix}`].some((n) => (process.env[n] ?? '').trim() !== '')
}

/**
 * The worker's default id is unique per process and stable across restarts: the host
 * name plus the persisted id of the worker slot this process holds (worker-slot.ts).
 */
function workerOptions (a: ParsedArgs, s: Settings, slot: WorkerSlot) {
  const explicitId = a.has('worker-id') || envGiven('TASK_WORKER_ID')
  return {
    workerId: explicitId && s.workerId !== '' ? s.workerId : slot.workerId,
    taskTypes: s.workerTaskTypes,
    concurrency: parseIntegerOption('concurrency', a.requireString('concurrency'), { min: 1, max: 4096 }),
    batch: parseIntegerOption('batch', a.requireString('batch'), { min: 1, max: 128 }),
    leaseS: s.leaseS,
    session: s.session
  }
}

/** Resolves on the first SIGINT/SIGTERM. */
function untilSignal (): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
}

async function serve (a: ParsedArgs, log: Logger): Promise<number> {
  const settings = loadSettings(process.env, serveOverrides(a), (m) => log.warn(m), { role: 'serve' })
  const tools = new ToolRegistry()
  let worker: Worker | null = null
  const embedded = a.flag('worker')
  const handlers = embedded ? await loadHandlers(a, tools) : null
  const slot = embedded ? claimWorkerSlot(dirname(settings.queuePath), os.hostname()) : null
  const wopts = embedded && slot !== null ? workerOptions(a, settings, slot) : null
  const svc: ServiceNode = await startServiceNode({
    settings,
    logger: log,
    tools,
    localWorker: () => ({ enabled: worker !== null, supportedTaskTypes: worker?.taskTypes ?? [] })
  })
  if (handlers !== null && wopts !== null) {
    worker = new Worker({ backend: new LocalBackend(svc.store), handlers, ...wopts, logger: log.child({ component: 'worker' }) })
    await worker.start()
  }
  // Listening for signals before the start lines go out: a supervisor that stops us as
  // soon as it reads them must get a graceful stop, not the default (kill).
  const stopping = untilSignal()
  if (svc.tokenFile !== null) {
    // Like a Jupyter server's token: said once per start, never the token itself.
    process.stderr.write(`token required (generated${svc.tokenCreated ? ' now' : ' earlier'}): local clients read ${svc.tokenFile}; ` +
      'remote clients need IPFS_ACCELERATE_PY_TASK_P2P_TOKEN set to its content; TOKEN set empty serves without one\n')
  }
  if (a.flag('json')) {
    await writeStdout(JSON.stringify({ peer_id: svc.peerId, multiaddr: svc.multiaddr, multiaddrs: svc.multiaddrs, announce_file: svc.announceFile, token_file: svc.tokenFile, http_url: svc.httpUrl }) + '\n')
  } else {
    await writeStdout(`ipfs_accelerate_py task queue p2p service started\npeer_id=${svc.peerId}\nmultiaddr=${svc.multiaddr}\n`)
  }
  const signal = await stopping
  log.info({ signal }, 'stopping')
  await worker?.stop({ graceMs: 5000 })
  await svc.stop()
  slot?.release()
  return EXIT_OK
}

async function relay (a: ParsedArgs, log: Logger): Promise<number> {
  const o: { -readonly [K in keyof SettingsOverrides]: SettingsOverrides[K] } = {}
  if (a.has('listen-host')) o.listenHost = a.requireString('listen-host')
  if (a.has('listen-port')) o.listenPort = parseIntegerOption('listen-port', a.requireString('listen-port'), { min: 0, max: 65535 })
  if (a.has('identity')) o.identityFile = a.requireString('identity')
  if (a.flag('no-rendezvous')) o.rendezvous = false
  if (a.flag('no-dht')) o.dht = false
  const settings = loadSettings(process.env, o, (m) => log.warn(m), { role: 'relay' })
  const node = await startCoordinationNode(settings, log)
  const addrs = node.multiaddrs()
  const stopping = untilSignal()
  await writeStdout(a.flag('json')
    ? JSON.stringify({ peer_id: node.peerId, multiaddrs: addrs }) + '\n'
    : `taskqueue-p2p relay started\npeer_id=${node.peerId}\n${addrs.map((m) => `multiaddr=${m}\n`).join('')}`)
  const signal = await stopping
  log.info({ signal }, 'stopping')
  await node.stop()
  return EXIT_OK
}

async function work (a: ParsedArgs, log: Logger): Promise<number> {
  const overrides = { ...commonOverrides(a), ...poolSizeOverride(a) }
  if (a.has('identity')) (overrides as { identityFile?: string }).identityFile = a.requireString('identity')
  const settings = loadSettings(process.env, overrides, (m) => log.warn(m), { role: 'worker' })
  const tools = new ToolRegistry()
  const handlers = await loadHandlers(a, tools)
  const slot = claimWorkerSlot(dirname(settings.queuePath), os.hostname())
  const wopts = workerOptions(a, settings, slot)
  let backend: QueueBackend
  let remote: RemoteQueue | null = null
  const queue = a.string('queue')
  if (queue !== undefined) {
    if (a.has('multiaddr') || a.has('announce-file') || a.has('peer-id')) throw new UsageError('--queue (local mode) cannot be combined with --multiaddr, --announce-file or --peer-id', 'worker')
    const url = postgresQueueArg(queue)
    backend = url === null
      ? LocalBackend.open(queue, queueStoreOptionsFrom(settings))
      : await pathStep('PostgreSQL queue (--queue)', redactQueueUrl(url), async () =>
        await LocalBackend.openUrl(url, { ...queueStoreOptionsFrom(settings), poolSize: settings.queuePoolSize }))
  } else {
    // A remote worker keeps its libp2p identity beside its state, as serve does (cli.md):
    // its own slot's key unless IDENTITY_FILE / --identity names one.
    const explicitIdentity = a.has('identity') || envGiven('TASK_P2P_IDENTITY_FILE')
    remote = new RemoteQueue({
      privateKey: await loadOrCreateIdentity(explicitIdentity ? settings.identityFile : slot.identityFile),
      settings,
      multiaddr: a.string('multiaddr') ?? null,
      peerId: a.string('peer-id') ?? null,
      announceFile: announceOverride(a.string('announce-file')) ?? null,
      logger: log
    })
    backend = new RemoteBackend(remote, { ownsQueue: true, pollIntervalS: parseNumberOption('poll-interval-s', a.requireString('poll-interval-s'), { min: 0.01, max: 3600 }) })
    try {
      await remote.status()
    } catch (err) {
      if (!(err instanceof ClientError)) throw err
      if (err instanceof RemoteError && err.code === 'unauthorized') {
        // Retrying cannot fix a wrong token: a configuration error.
        await backend.close()
        throw err
      }
      if (a.flag('once')) {
        log.error(`service unreachable: ${err.message}`)
        await backend.close()
        return EXIT_UNREACHABLE
      }
      log.warn(`service unreachable for now (${err.message}); the worker keeps trying`)
    }
  }
  let worker: Worker
  try {
    worker = new Worker({ backend, handlers, ...wopts, once: a.flag('once'), logger: log })
  } catch (err) {
    await backend.close()
    // The options name nothing it can run (--task-types without a handler): usage, exit 2.
    if (err instanceof RangeError) throw new UsageError(err.message, 'worker')
    throw err
  }
  await worker.start()
  const ownPeerId = remote === null ? null : (await remote.getNode()).peerId.toString()
  const line = { worker_id: worker.workerId, task_types: worker.taskTypes, mode: remote === null ? 'local' : 'remote', peer_id: remote?.peerId ?? null, worker_peer_id: ownPeerId }
  const stopping = untilSignal()
  await writeStdout(a.flag('json') ? JSON.stringify(line) + '\n' : `taskqueue-p2p worker started\nworker_id=${line.worker_id}\n`)
  const outcome = await Promise.race([worker.done.then((r) => ({ kind: 'done' as const, r })), stopping.then(() => ({ kind: 'signal' as const }))])
  if (outcome.kind === 'signal') await worker.stop({ graceMs: 5000 })
  await backend.close()
  slot.release()
  if (outcome.kind === 'done' && !outcome.r.reachable) return EXIT_UNREACHABLE
  return EXIT_OK
}

/**
 * A start-up failure as one line on stderr and its exit code (cli.md §2): 2 for
 * configuration and paths, 3 when the listen address is unavailable, 6 for a bug. The
 * stack is printed only with LOG_LEVEL=debug.
 */
export function startupFailure (err: unknown, log: Logger): number {
  const line = (text: string): void => { process.stderr.write(`taskqueue-p2p: ${text}\n`) }
  if (log.isLevelEnabled('debug') && err instanceof Error) log.debug({ err }, 'start-up failure')
  if (err instanceof ConfigError || err instanceof IdentityError || err instanceof PathError || err instanceof StateLockedError) {
    line(err.message)
    return EXIT_USAGE
  }
  if (err instanceof ListenError) {
    line(err.message)
    return EXIT_LISTEN
  }
  if (err instanceof RemoteError && err.code === 'unauthorized') {
    line(`${err.message}${typeof err.reply.detail === 'string' ? '' : ': set TOKEN (IPFS_ACCELERATE_PY_TASK_P2P_TOKEN) to the service\'s token'}`)
    return EXIT_USAGE
  }
  line(`internal error: ${err instanceof Error ? err.message : String(err)}${log.isLevelEnabled('debug') ? '' : ' (LOG_LEVEL=debug shows the stack)'}`)
  return EXIT_INTERNAL
}

export async function main (argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let log: Logger
  try {
    log = createLogger('taskqueue-p2p')
  } catch (err) {
    // LOG_LEVEL / LOG_FORMAT: the logger is built before anything else can report.
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    return EXIT_USAGE
  }
  try {
    const parsed = parseCommandLine(SPEC, argv)
    if (parsed.kind !== 'command') {
      await emitText(parsed.text)
      return EXIT_OK
    }
    const a = parsed.args
    if (a.command === 'serve') return await serve(a, log)
    if (a.command === 'worker') return await work(a, log)
    if (a.command === 'relay') return await relay(a, log)
    if (a.command === 'doctor') return await runServiceDoctor(a, log)
    throw new UsageError(`unknown command ${a.command}`)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`taskqueue-p2p: ${err.message}\n\n${formatHelp(SPEC, err.command ?? undefined)}`)
      return EXIT_USAGE
    }
    return startupFailure(err, log)
  }
}

if (isEntryPoint(import.meta.url, 'taskqueue-p2p.js')) {
  void main().then(async (code) => await exitWhenFlushed(code))
}
