/**
 * Every variable of config.md §3 resolved once into one typed, frozen object.
 * Precedence: command-line override > ACCELERATE name > DATASETS name > default.
 */
import { isIP } from 'node:net'
import { hostname } from 'node:os'
import { dirname, isAbsolute, join } from 'node:path'
import { EnvReader, FALSE_WORDS, P, aliasOf, REDACTED, Reject, isFalseWord, parseNumber, splitList } from './env.js'
import type { Env, Override, Source, WarnSink } from './env.js'
import {
  DEFAULT_STEP_TIMEOUTS, PROTOCOL_ACCEPTED, STEP_TIMEOUTS_ACCEPTED,
  parseProtocol, parseStepTimeouts, validStepTimeouts, warnPlanned
} from './special.js'
import type { Protocol, StepTimeouts } from './special.js'
import { readSecurity } from './security.js'
import type { SecuritySettings } from './security.js'
import { readLogSettings } from './logging.js'
import type { LogFormat, LogLevel } from './logging.js'

export type Role = 'serve' | 'worker' | 'relay' | 'client'
export type AuthMode = '' | 'shared_token' | 'shared' | 'token'
export const AUTH_MODES: readonly AuthMode[] = ['', 'shared_token', 'shared', 'token']

export { P }
/** `M` of config.md §3.5. */
export const M = 'IPFS_ACCELERATE_PY_MCP_P2P_'
export const TASK_QUEUE_PATH_VAR = 'IPFS_ACCELERATE_PY_TASK_QUEUE_PATH'
/** ★ A PostgreSQL queue shared by several coordinators instead of the SQLite file. */
export const TASK_QUEUE_URL_VAR = 'IPFS_ACCELERATE_PY_TASK_QUEUE_URL'
/** ★ Pooled PostgreSQL connections per process (coordinator or local worker). */
export const TASK_QUEUE_POOL_SIZE_VAR = 'IPFS_ACCELERATE_PY_TASK_QUEUE_POOL_SIZE'
export const DEFAULT_QUEUE_POOL_SIZE = 10
export const TOKEN_VAR = `${P}TOKEN`

export interface Settings extends SecuritySettings {
  /** The command the settings were resolved for; only IDENTITY_FILE's default depends on it. */
  readonly role: Role

  // §3.1 node, security, protocol
  readonly listenHost: string
  readonly listenPort: number
  /** An IP literal, or null for `auto`. */
  readonly publicIp: string | null
  readonly identityFile: string
  /** Never log it; see redactSettings. Null = open service. */
  readonly token: string | null
  readonly authMode: AuthMode
  /** Client protocol order, ALLOW_LEGACY_FALLBACK already applied; never empty. */
  readonly protocol: readonly Protocol[]
  readonly allowLegacyFallback: boolean
  readonly enableLegacyProtocol: boolean
  readonly session: string
  readonly queuePath: string
  /** ★ postgres://… : the queue lives in PostgreSQL (TASK_QUEUE_URL); null = the SQLite file at queuePath. */
  readonly queueUrl: string | null
  /** ★ Pooled connections to TASK_QUEUE_URL for queue and cache work (one more listens); unused on SQLite. */
  readonly queuePoolSize: number

  // §3.2 discovery
  /** Null = disabled. */
  readonly announceFile: string | null
  /** Canonical multiaddr strings. */
  readonly bootstrapPeers: readonly string[]
  readonly bootstrapDial: boolean
  readonly bootstrapMaxAttempts: number
  readonly dnsaddrResolve: boolean
  readonly rendezvous: boolean
  readonly rendezvousNs: string
  /** Empty = use the bootstrap peers. */
  readonly rendezvousPoints: readonly string[]
  readonly rendezvousMaxAttempts: number
  readonly dht: boolean
  readonly dhtProtocol: string
  /** 0 = never re-provide. */
  readonly dhtProvideIntervalS: number
  readonly dhtMaxProviderAttempts: number
  readonly mdns: boolean
  readonly mdnsAllowLoopback: boolean
  readonly mdnsMaxAttemptsPerPoll: number
  readonly discoveryTimeoutS: number
  /** Seconds per mechanism, keyed by trace method name. */
  readonly discoveryStepTimeouts: StepTimeouts
  readonly explicitDiscoveryFallback: boolean
  readonly debugDial: boolean

  // §3.3 NAT traversal
  readonly relay: boolean
  readonly relayHop: boolean
  readonly holepunch: boolean
  readonly autonat: boolean
  /** Empty = HOP-capable connected peers. */
  readonly relayPeers: readonly string[]
  readonly relayMaxReservations: number
  /** 0 = unlimited. */
  readonly relayMaxCircuitDurationS: number
  /** 0 = unlimited. */
  readonly relayMaxCircuitBytes: number

  // §3.4 queue, scheduler, tools, cache
  readonly leaseS: number
  readonly waitMaxS: number
  readonly deterministic: boolean
  readonly peerTimeoutS: number
  /** 0 = never steal. */
  readonly schedulerStealAfterS: number
  readonly enableTools: boolean
  readonly enableCache: boolean
  /** Directory holding `cache.sqlite3`; null = unset: the cache lives in the queue database. */
  readonly cacheDir: string | null
  readonly cacheMaxEntries: number
  readonly cacheMaxBytes: number
  readonly cacheMaxValueBytes: number
  /** ★ Bytes the cache entries one remote peer wrote may hold (PEER_MAX_CACHE_BYTES); 0 = no bound. */
  readonly peerMaxCacheBytes: number
  readonly cacheSweepIntervalS: number
  // ★ operating the queue (README "Protocol additions")
  /** max_attempts of a task submitted without one (0 = unlimited). */
  readonly maxAttempts: number
  readonly retryBackoff: 'fixed' | 'exponential'
  readonly retryDelayS: number
  readonly retryMaxDelayS: number
  /** Seconds completed tasks are kept (0 = no age limit). */
  readonly retentionCompletedS: number
  /** Seconds failed and cancelled tasks are kept (0 = no age limit). */
  readonly retentionFailedS: number
  /** Most finished tasks kept (0 = no count limit). */
  readonly retentionMaxFinished: number
  /** Entries of the events log (0 = no log, op events refused). */
  readonly eventsMax: number

  // §3.5 MCP++ framing
  readonly mcpMaxFrameBytes: number
  readonly mcpMaxFrames: number
  readonly mcpRateCapacity: number
  readonly mcpRateRefillPerSec: number
  readonly mcpClientMaxOutboundFrameBytes: number
  readonly mcpClientMaxInboundFrameBytes: number

  // §3.6 client retries
  readonly rpcRetries: number
  readonly submitRetries: number
  readonly waitRetries: number
  readonly rpcRetryBaseMs: number
  readonly retryDelayMaxMs: number
  readonly rpcDialTimeoutS: number

  // §3.7 worker
  readonly workerId: string
  /** Null = every loaded handler type. Not alias-expanded here. */
  readonly workerTaskTypes: readonly string[] | null

  // logging (config/logging.ts)
  readonly logLevel: LogLevel | null
  readonly logFormat: LogFormat
  // §3.8 ★ HTTP listener: /metrics, /healthz, /readyz and the dashboard (issue 22)
  /** null = no HTTP listener (the default); 0 = any free port. */
  readonly httpPort: number | null
  readonly httpHost: string
  /** HTTP_HOST was set: without a token, a non-loopback host is then allowed, with a warning. */
  readonly httpHostExplicit: boolean
}

/** Command-line values; `undefined` = flag not given. `announceFile: null` = disabled. */
export type SettingsOverrides = Partial<Omit<Settings, 'role'>>

export interface LoadOptions {
  /** Default `serve`. */
  role?: Role
  /** Base for relative paths; default `process.cwd()`. */
  cwd?: string
  /** Home for `~`; default HOME from `env`, else `os.homedir()`. */
  home?: string
  /** Default worker id; default `os.hostname()`. */
  hostname?: string
  /** Whether stderr is a terminal (LOG_FORMAT's default); default: process.stderr's. */
  stderrIsTty?: boolean
}

/** Flag names of cli.md §2, used to name the culprit when an override is out of range. */
const FLAGS: Partial<Record<keyof SettingsOverrides, string>> = {
  listenHost: '--listen-host',
  listenPort: '--listen-port',
  queuePath: '--queue',
  queueUrl: '--queue-url',
  queuePoolSize: '--queue-pool-size',
  announceFile: '--announce-file',
  identityFile: '--identity',
  enableTools: '--enable-tools',
  enableCache: '--enable-cache',
  enableLegacyProtocol: '--legacy',
  rendezvous: '--no-rendezvous',
  dht: '--no-dht',
  workerId: '--worker-id',
  workerTaskTypes: '--task-types',
  leaseS: '--lease-s',
  session: '--session'
}

const MIB = 1024 * 1024
const GIB = 1024 * MIB
/** setTimeout's limit, so a circuit duration in ms stays a valid timer. */
const MAX_TIMER_S = 2147483
const MAX_RATE = 1e9

/** `${XDG_CACHE_HOME:-~/.cache}`; a relative XDG_CACHE_HOME is ignored, as the XDG spec asks. */
export function cacheHome (r: EnvReader): string {
  const xdg = r.plain('XDG_CACHE_HOME')
  return xdg !== undefined && isAbsolute(xdg) ? xdg : join(r.home, '.cache')
}

/** IDENTITY_FILE's default: beside the queue file, except for the relay, which has no queue. */
export function defaultIdentityFile (role: Role, queuePath: string, cacheBase: string): string {
  return role === 'relay'
    ? join(cacheBase, 'ipfs_accelerate_py', 'relay_identity.key')
    : join(dirname(queuePath), 'identity.key')
}

/** Resolves settings and records where each value came from (`flag …`, `env …`, `default`). */
export function resolveSettings (env: Env, overrides: SettingsOverrides = {}, warn: WarnSink = () => {},
  opts: LoadOptions = {}): { settings: Settings, sources: Readonly<Record<string, Source>> } {
  const role = opts.role ?? 'serve'
  const r = new EnvReader(env, warn, { cwd: opts.cwd, home: opts.home, secrets: [TOKEN_VAR, `${P}ROLE_TOKENS`, `${P}SWARM_KEY`, TASK_QUEUE_URL_VAR] })
  const ov = <K extends keyof SettingsOverrides>(key: K): Override<Settings[K]> =>
    ({ flag: FLAGS[key] ?? `override:${key}`, value: overrides[key] })
  const base = cacheHome(r)

  refuseAndWarn(r, env, warn)

  // §3.1
  const listenHost = r.custom(`${P}LISTEN_HOST`, '0.0.0.0', text => isIP(text) !== 0 ? text : undefined,
    'is not an IP address (use e.g. 0.0.0.0, ::, 127.0.0.1)', ov('listenHost'), v => isIP(v) !== 0)
  const listenPort = r.int(`${P}LISTEN_PORT`, 9710, 0, 65535, ov('listenPort'))
  const publicIp = r.custom<string | null>(`${P}PUBLIC_IP`, null, parsePublicIp,
    'is not auto or an IP address', ov('publicIp'), v => v === null || isIP(v) !== 0)
  const queuePath = r.path(TASK_QUEUE_PATH_VAR, join(base, 'ipfs_accelerate_py', 'task_queue.sqlite3'), ov('queuePath'))
  const queueUrl = r.custom<string | null>(TASK_QUEUE_URL_VAR, null, parseQueueUrl,
    'is not a PostgreSQL URL (postgres://user:password@host:port/database)', ov('queueUrl'), v => v === null || parseQueueUrl(v) !== undefined)
  const queuePoolSize = r.int(TASK_QUEUE_POOL_SIZE_VAR, DEFAULT_QUEUE_POOL_SIZE, 1, 1000, ov('queuePoolSize'))
  const identityFile = r.path(`${P}IDENTITY_FILE`, defaultIdentityFile(role, queuePath, base), ov('identityFile'))
  const token = r.optString(TOKEN_VAR, nullToUndef(ov('token'))) ?? null
  const security = readSecurity(r, env, P, TOKEN_VAR)
  const cacheMaxBytes = r.int(`${P}CACHE_MAX_BYTES`, 256 * MIB, MIB, 64 * GIB, ov('cacheMaxBytes'))
  const authMode = r.custom(`${P}AUTH_MODE`, '', parseAuthMode,
    'is not a supported auth mode (use shared_token, shared, token or leave it empty; ignoring it would open the service)',
    ov('authMode'), v => parseAuthMode(v) !== undefined)
  const protocolOrder = r.custom<readonly Protocol[]>(`${P}PROTOCOL`, ['mcp'], text => {
    const res = parseProtocol(text)
    if (!res.ok) throw new Reject(res.reason)
    return res.value.length > 0 ? res.value : undefined
  }, `is not a protocol list (${PROTOCOL_ACCEPTED})`, ov('protocol'),
  v => v.length > 0 && v.every(p => p === 'mcp' || p === 'legacy'))
  const allowLegacyFallback = r.bool(`${P}ALLOW_LEGACY_FALLBACK`, false, ov('allowLegacyFallback'))
  const protocol = [...new Set<Protocol>([...protocolOrder, ...(allowLegacyFallback ? ['legacy' as const] : [])])]
  // Derived from PROTOCOL alone: ALLOW_LEGACY_FALLBACK is a client-side retry knob.
  const enableLegacyProtocol = r.optBool(`${P}ENABLE_LEGACY_PROTOCOL`, ov('enableLegacyProtocol')) ??
    protocolOrder.includes('legacy')
  const session = r.custom(`${P}SESSION`, '', text => text, 'is not a string', ov('session'))

  // §3.2
  const announceFile = r.pathOrDisabled(`${P}ANNOUNCE_FILE`,
    join(base, 'ipfs_accelerate_py', 'task_p2p_announce.json'), ov('announceFile'))
  const bootstrapPeers = r.addrList(`${P}BOOTSTRAP_PEERS`, [], ov('bootstrapPeers'))
  const rendezvousNs = r.custom(`${P}RENDEZVOUS_NS`, 'ipfs-accelerate-task-queue',
    text => validNamespace(text) ? text : undefined, 'is not a namespace of 1..255 bytes',
    ov('rendezvousNs'), validNamespace)
  const discoveryStepTimeouts = r.custom<StepTimeouts>(`${P}DISCOVERY_STEP_TIMEOUTS`, DEFAULT_STEP_TIMEOUTS, text => {
    const res = parseStepTimeouts(text)
    if (!res.ok) throw new Reject(res.reason)
    return res.value
  }, `is not a list of step timeouts (${STEP_TIMEOUTS_ACCEPTED})`, ov('discoveryStepTimeouts'), validStepTimeouts)
  const discovery = {
    announceFile,
    bootstrapPeers,
    bootstrapDial: r.bool(`${P}BOOTSTRAP_DIAL`, true, ov('bootstrapDial')),
    bootstrapMaxAttempts: r.int(`${P}BOOTSTRAP_MAX_ATTEMPTS`, 4, 1, 64, ov('bootstrapMaxAttempts')),
    dnsaddrResolve: r.bool(`${P}DNSADDR_RESOLVE`, true, ov('dnsaddrResolve')),
    rendezvous: r.bool(`${P}RENDEZVOUS`, true, ov('rendezvous')),
    rendezvousNs,
    rendezvousPoints: r.addrList(`${P}RENDEZVOUS_POINTS`, [], ov('rendezvousPoints')),
    rendezvousMaxAttempts: r.int(`${P}RENDEZVOUS_MAX_ATTEMPTS`, 6, 1, 64, ov('rendezvousMaxAttempts')),
    dht: r.bool(`${P}DHT`, true, ov('dht')),
    dhtProtocol: r.custom(`${P}DHT_PROTOCOL`, '/ipfs/kad/1.0.0', text => validProtocolId(text) ? text : undefined,
      'is not a protocol id (a path starting with "/", no spaces)', ov('dhtProtocol'), validProtocolId),
    dhtProvideIntervalS: r.custom(`${P}DHT_PROVIDE_INTERVAL_S`, 1800, text => {
      const n = parseNumber(text)
      return n !== undefined && validProvideInterval(n) ? n : undefined
    }, 'is not 0 or a number in 60..86400', ov('dhtProvideIntervalS'), validProvideInterval),
    dhtMaxProviderAttempts: r.int(`${P}DHT_MAX_PROVIDER_ATTEMPTS`, 8, 1, 64, ov('dhtMaxProviderAttempts')),
    mdns: r.bool(`${P}MDNS`, true, ov('mdns')),
    mdnsAllowLoopback: r.bool(`${P}MDNS_ALLOW_LOOPBACK`, false, ov('mdnsAllowLoopback')),
    mdnsMaxAttemptsPerPoll: r.int(`${P}MDNS_MAX_ATTEMPTS_PER_POLL`, 4, 1, 32, ov('mdnsMaxAttemptsPerPoll')),
    discoveryTimeoutS: r.number(`${P}DISCOVERY_TIMEOUT_S`, 10, { min: 0.5, max: 600 }, ov('discoveryTimeoutS')),
    discoveryStepTimeouts: Object.freeze({ ...discoveryStepTimeouts }),
    explicitDiscoveryFallback: r.bool(`${P}EXPLICIT_DISCOVERY_FALLBACK`, false, ov('explicitDiscoveryFallback')),
    debugDial: r.bool(`${P}DEBUG_DIAL`, false, ov('debugDial'))
  }

  // §3.3
  const nat = {
    relay: r.bool(`${P}RELAY`, false, ov('relay')),
    relayHop: r.bool(`${P}RELAY_HOP`, false, ov('relayHop')),
    holepunch: r.bool(`${P}HOLEPUNCH`, false, ov('holepunch')),
    autonat: r.bool(`${P}AUTONAT`, true, ov('autonat')),
    relayPeers: r.addrList(`${P}RELAY_PEERS`, [], ov('relayPeers')),
    relayMaxReservations: r.int(`${P}RELAY_MAX_RESERVATIONS`, 128, 1, 10000, ov('relayMaxReservations')),
    relayMaxCircuitDurationS: r.number(`${P}RELAY_MAX_CIRCUIT_DURATION_S`, 1800, { min: 0, max: MAX_TIMER_S },
      ov('relayMaxCircuitDurationS')),
    relayMaxCircuitBytes: r.int(`${P}RELAY_MAX_CIRCUIT_BYTES`, 256 * MIB, 0, Number.MAX_SAFE_INTEGER,
      ov('relayMaxCircuitBytes'))
  }

  // §3.4
  const queue = {
    leaseS: r.number(`${P}LEASE_S`, 300, { min: 10, max: 3600 }, ov('leaseS')),
    waitMaxS: r.number(`${P}WAIT_MAX_S`, 300, { min: 1, max: 3600 }, ov('waitMaxS')),
    deterministic: r.bool(`${P}DETERMINISTIC`, true, ov('deterministic')),
    peerTimeoutS: r.number(`${P}PEER_TIMEOUT_S`, 300, { min: 5, max: 86400 }, ov('peerTimeoutS')),
    schedulerStealAfterS: r.number(`${P}SCHEDULER_STEAL_AFTER_S`, 30, { min: 0, max: 86400 },
      ov('schedulerStealAfterS')),
    enableTools: r.bool(`${P}ENABLE_TOOLS`, false, ov('enableTools')),
    enableCache: r.bool(`${P}ENABLE_CACHE`, false, ov('enableCache')),
    cacheDir: r.custom<string | null>(`${P}CACHE_DIR`, null, text => r.resolvePath(text), 'is not a path',
      ov('cacheDir')),
    cacheMaxEntries: r.int(`${P}CACHE_MAX_ENTRIES`, 100000, 1, 1e8, ov('cacheMaxEntries')),
    cacheMaxBytes,
    cacheMaxValueBytes: r.int(`${P}CACHE_MAX_VALUE_BYTES`, 524288, 1, 983040, ov('cacheMaxValueBytes')),
    // ★ Default a quarter of the cache: one peer alone cannot push everyone else's entries out.
    peerMaxCacheBytes: r.int(`${P}PEER_MAX_CACHE_BYTES`, Math.floor(cacheMaxBytes / 4), 0, 64 * GIB),
    cacheSweepIntervalS: r.number(`${P}CACHE_SWEEP_INTERVAL_S`, 60, { min: 1, max: 3600 }, ov('cacheSweepIntervalS')),
    maxAttempts: r.int(`${P}MAX_ATTEMPTS`, 3, 0, 1000, ov('maxAttempts')),
    retryBackoff: r.custom<'fixed' | 'exponential'>(`${P}RETRY_BACKOFF`, 'exponential',
      text => { const t = text.toLowerCase(); return t === 'fixed' || t === 'exponential' ? t : undefined },
      'is not a backoff type (use fixed or exponential)', ov('retryBackoff')),
    retryDelayS: r.number(`${P}RETRY_DELAY_S`, 1, { min: 0, max: 86400 }, ov('retryDelayS')),
    retryMaxDelayS: r.number(`${P}RETRY_MAX_DELAY_S`, 3600, { min: 0, max: 86400 * 7 }, ov('retryMaxDelayS')),
    retentionCompletedS: r.number(`${P}RETENTION_COMPLETED_S`, 7 * 86400, { min: 0, max: 3650 * 86400 }, ov('retentionCompletedS')),
    retentionFailedS: r.number(`${P}RETENTION_FAILED_S`, 7 * 86400, { min: 0, max: 3650 * 86400 }, ov('retentionFailedS')),
    retentionMaxFinished: r.int(`${P}RETENTION_MAX_FINISHED`, 100_000, 0, 1e9, ov('retentionMaxFinished')),
    eventsMax: r.int(`${P}EVENTS_MAX`, 100_000, 0, 1e8, ov('eventsMax'))
  }
  const cacheDir = queue.cacheDir === null ? null : r.resolvePath(queue.cacheDir)

  // §3.5
  const mcpMaxFrames = r.int(`${M}MAX_FRAMES`, 128, 2, 100000, ov('mcpMaxFrames'))
  const mcp = {
    mcpMaxFrameBytes: r.int(`${M}MAX_FRAME_BYTES`, MIB, 1024, 64 * MIB, ov('mcpMaxFrameBytes')),
    mcpMaxFrames,
    mcpRateCapacity: r.number(`${M}RATE_CAPACITY`, mcpMaxFrames, { min: 1, max: MAX_RATE }, ov('mcpRateCapacity')),
    mcpRateRefillPerSec: r.number(`${M}RATE_REFILL_PER_SEC`, mcpMaxFrames, { min: 0, max: MAX_RATE, exclusiveMin: true },
      ov('mcpRateRefillPerSec')),
    mcpClientMaxOutboundFrameBytes: r.int(`${M}CLIENT_MAX_OUTBOUND_FRAME_BYTES`, MIB, 1024, 64 * MIB,
      ov('mcpClientMaxOutboundFrameBytes')),
    mcpClientMaxInboundFrameBytes: r.int(`${M}CLIENT_MAX_INBOUND_FRAME_BYTES`, 16 * MIB, 1024, 64 * MIB,
      ov('mcpClientMaxInboundFrameBytes'))
  }

  // §3.6
  const retries = {
    rpcRetries: r.int(`${P}RPC_RETRIES`, 2, 0, 10, ov('rpcRetries')),
    submitRetries: r.int(`${P}SUBMIT_RETRIES`, 2, 0, 10, ov('submitRetries')),
    waitRetries: r.int(`${P}WAIT_RETRIES`, 2, 0, 10, ov('waitRetries')),
    rpcRetryBaseMs: r.int(`${P}RPC_RETRY_BASE_MS`, 50, 0, 60000, ov('rpcRetryBaseMs')),
    retryDelayMaxMs: r.int(`${P}RETRY_DELAY_MAX_MS`, 5000, 0, 600000, ov('retryDelayMaxMs')),
    rpcDialTimeoutS: r.number(`${P}RPC_DIAL_TIMEOUT_S`, 8, { min: 0, max: 600, exclusiveMin: true }, ov('rpcDialTimeoutS'))
  }

  // §3.7
  const worker = {
    workerId: r.string('IPFS_ACCELERATE_PY_TASK_WORKER_ID', opts.hostname ?? hostname(), ov('workerId')),
    workerTaskTypes: r.custom<readonly string[] | null>('IPFS_ACCELERATE_PY_TASK_WORKER_TASK_TYPES', null,
      text => { const l = splitList(text); return l.length > 0 ? Object.freeze(l) : null },
      'is not a list', ov('workerTaskTypes'))
  }

  const logging = readLogSettings(r, opts.stderrIsTty ?? process.stderr.isTTY === true)
  // §3.8
  const httpHostVar = `${P}HTTP_HOST`
  const http = {
    httpPort: r.custom<number | null>(`${P}HTTP_PORT`, null,
      text => /^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined,
      'is not a TCP port (0..65535; 0 = any free port; unset = no HTTP listener)', ov('httpPort')),
    httpHost: r.custom(httpHostVar, '127.0.0.1', text => isIP(text) !== 0 ? text : undefined,
      'is not an IP address (use e.g. 127.0.0.1, 0.0.0.0, ::)', ov('httpHost'), v => isIP(v) !== 0),
    httpHostExplicit: ov('httpHost').value !== undefined || r.plain(httpHostVar) !== undefined || r.plain(aliasOf(httpHostVar) ?? httpHostVar) !== undefined
  }

  const settings: Settings = Object.freeze({
    role,
    listenHost,
    listenPort,
    publicIp,
    identityFile,
    token,
    ...security,
    authMode,
    protocol: Object.freeze(protocol),
    allowLegacyFallback,
    enableLegacyProtocol,
    session,
    queuePath,
    queueUrl,
    queuePoolSize,
    ...discovery,
    bootstrapPeers: Object.freeze([...discovery.bootstrapPeers]),
    rendezvousPoints: Object.freeze([...discovery.rendezvousPoints]),
    ...nat,
    relayPeers: Object.freeze([...nat.relayPeers]),
    ...queue,
    cacheDir,
    ...mcp,
    ...retries,
    ...worker,
    ...logging,
    ...http
  })
  return { settings, sources: Object.freeze(Object.fromEntries(r.sources)) }
}

/**
 * Reads every variable once. Throws ConfigError on the first invalid value; warnings
 * (alias conflicts, planned variables) go to `warn`.
 */
export function loadSettings (env: Env, overrides: SettingsOverrides = {}, warn: WarnSink = () => {},
  opts: LoadOptions = {}): Settings {
  return resolveSettings(env, overrides, warn, opts).settings
}

/** A copy safe to log: the token is replaced by `***`. */
export function redactSettings (s: Settings): Settings {
  return Object.freeze({
    ...s,
    token: s.token === null ? null : REDACTED,
    roleTokens: s.roleTokens.map(t => ({ role: t.role, token: REDACTED })),
    swarmKey: s.swarmKey === null ? null : REDACTED,
    queueUrl: s.queueUrl === null ? null : redactQueueUrl(s.queueUrl)
  })
}

/** config.md §4: refused variables throw, planned ones warn. */
function refuseAndWarn (r: EnvReader, env: Env, warn: WarnSink): void {
  r.custom<boolean>(`${P}TRUST_TIERS`, false, text => isFalseWord(text) ? false : undefined,
    `is not supported: trust tiers are not implemented and ignoring them would widen access (unset it or use ${FALSE_WORDS.join('/')})`)
  warnPlanned(env, warn)
}

/**
 * TASK_QUEUE_URL: empty = the SQLite file; otherwise a postgres:// or postgresql:// URL
 * with a host (the database defaults to the user's, as libpq's does). Refused with the
 * reason, never passed on to fail later at connect time.
 */
export function parseQueueUrl (text: string): string | null | undefined {
  const t = text.trim()
  if (t === '') return null
  let u: URL
  try {
    u = new URL(t)
  } catch {
    throw new Reject('not a URL')
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Reject(`scheme ${u.protocol.replace(/:$/, '')} is not postgres or postgresql`)
  if (u.hostname === '') throw new Reject('no host')
  return t
}

/** The URL with its password replaced, for logs and status. */
export function redactQueueUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = REDACTED
    return u.toString()
  } catch {
    return REDACTED
  }
}

function parseAuthMode (text: string): AuthMode | undefined {
  const t = text.trim().toLowerCase()
  return AUTH_MODES.find(m => m === t)
}

function parsePublicIp (text: string): string | null | undefined {
  if (text.toLowerCase() === 'auto') return null
  return isIP(text) !== 0 ? text : undefined
}

function validNamespace (ns: string): boolean {
  const n = Buffer.byteLength(ns, 'utf8')
  return n >= 1 && n <= 255
}

function validProtocolId (id: string): boolean {
  return /^\/\S+$/.test(id)
}

function validProvideInterval (n: number): boolean {
  return Number.isFinite(n) && (n === 0 || (n >= 60 && n <= 86400))
}

function nullToUndef (o: Override<string | null | undefined>): Override<string> {
  return { flag: o.flag, value: o.value ?? undefined }
}
