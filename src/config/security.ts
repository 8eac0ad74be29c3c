/**
 * Who may talk to a service (README "Security"): the token's open mode, role tokens,
 * the peer allow list, the private-network swarm key and per-peer limits. Parsed here
 * like every other variable (config.md §2): a bad value is one line naming it, exit 2.
 */
import { readFileSync } from 'node:fs'
import { peerIdFromString } from '@libp2p/peer-id'
import { ConfigError, Reject, aliasOf, splitList } from './env.js'
import type { Env, EnvReader } from './env.js'
import type { OpRole } from '../protocol/ops.js'

/** What a caller may do (README "Roles"); `admin` may do everything. The op table's type. */
export type AccessRole = OpRole
export const ACCESS_ROLES: readonly AccessRole[] = ['client', 'worker', 'admin']

export interface AllowEntry {
  readonly peerId: string
  readonly role: AccessRole
}

/** ALLOW_PEERS: inline entries, or a file of them that is re-read when it changes. */
export type AllowPeersSetting =
  | { readonly kind: 'list', readonly entries: readonly AllowEntry[] }
  | { readonly kind: 'file', readonly path: string }

export interface RoleToken {
  readonly role: AccessRole
  /** Never log it. */
  readonly token: string
}

export interface SecuritySettings {
  /** TOKEN was set explicitly empty: open service, no generated token (the original's mode). */
  readonly tokenOpen: boolean
  /** ROLE_TOKENS: extra tokens, each limited to one role. Never log them. */
  readonly roleTokens: readonly RoleToken[]
  /** Null = every peer may connect. */
  readonly allowPeers: AllowPeersSetting | null
  /** The `/key/swarm/psk/1.0.0/` document, or null for the public network. Never log it. */
  readonly swarmKey: string | null
  /** Open connections one remote peer may hold to a service; more are refused at the gater. */
  readonly peerMaxConnections: number
  /** Open TaskQueue streams one remote peer may hold across its connections. */
  readonly peerMaxStreams: number
  /** TaskQueue ops per second one remote peer may call (burst = one second's worth); 0 = no limit. */
  readonly peerOpsPerS: number
  /** ★ Unfinished (queued + running) tasks one remote peer may have submitted; 0 = no bound. */
  readonly peerMaxTasks: number
  /** ★ UTF-8 payload bytes of those tasks; 0 = no bound. */
  readonly peerMaxTaskBytes: number
}

/** PEER_MAX_TASKS' default: far above any one client's normal backlog (the 1,000,000-task bench fits). */
export const DEFAULT_PEER_MAX_TASKS = 2_000_000
/** PEER_MAX_TASK_BYTES' default: 1 GiB of payloads per remote peer. */
export const DEFAULT_PEER_MAX_TASK_BYTES = 1024 * 1024 * 1024

const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
const ROLE_WORDS = 'use client, worker or admin'

/** `<peer id>` or `<peer id>:<role>` (also `<peer id> <role>` in a file); default role admin. */
export function parseAllowEntry (text: string): AllowEntry {
  const [id, role, ...rest] = text.trim().split(/[\s:=]+/)
  if (rest.length > 0) throw new Reject(`${text.trim()}: expected <peer id>[:<role>]`)
  try {
    peerIdFromString(id)
  } catch {
    throw new Reject(`${id} is not a peer id`)
  }
  const r = (role ?? 'admin').toLowerCase()
  if (!ACCESS_ROLES.includes(r as AccessRole)) throw new Reject(`${role ?? ''} is not a role (${ROLE_WORDS})`)
  return { peerId: id, role: r as AccessRole }
}

/** An allow-list file: one entry per line; `#` starts a comment; blank lines ignored. */
export function parseAllowFile (text: string): AllowEntry[] {
  const out: AllowEntry[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim()
    if (line !== '') out.push(parseAllowEntry(line))
  }
  return out
}

function looksLikePath (text: string): boolean {
  return text.includes('/') || text.startsWith('~') || text.startsWith('.')
}

/**
 * The swarm key document in the standard format (go-ipfs `swarm.key`): the header,
 * `/base16/`, then 64 hex digits. SWARM_KEY may also be just the 64 hex digits.
 */
export function normalizeSwarmKey (text: string): string {
  const lines = text.trim().split(/\r?\n/).map(l => l.trim()).filter(l => l !== '')
  if (lines.length === 1 && /^[0-9a-fA-F]{64}$/.test(lines[0])) return `${SWARM_KEY_HEADER}\n/base16/\n${lines[0].toLowerCase()}\n`
  if (lines.length !== 3 || lines[0] !== SWARM_KEY_HEADER) throw new Reject(`is not a swarm key (${SWARM_KEY_HEADER}, /base16/, 64 hex digits)`)
  if (lines[1] !== '/base16/') throw new Reject('uses an unsupported encoding (only /base16/)')
  if (!/^[0-9a-fA-F]{64}$/.test(lines[2])) throw new Reject('does not hold 64 hex digits (a 32-byte key)')
  return `${SWARM_KEY_HEADER}\n/base16/\n${lines[2].toLowerCase()}\n`
}

/** True when TOKEN (either spelling) is present in the environment but empty. */
function explicitlyEmpty (env: Env, name: string): boolean {
  const values = [env[name], env[aliasOf(name) ?? '']].filter((v): v is string => v !== undefined)
  return values.length > 0 && values.every(v => v.trim() === '')
}

export function readSecurity (r: EnvReader, env: Env, p: string, tokenVar: string): SecuritySettings {
  const roleTokens = r.custom<readonly RoleToken[]>(`${p}ROLE_TOKENS`, [], text => splitList(text).map(item => {
    const at = item.indexOf(':')
    const role = item.slice(0, Math.max(0, at)).trim().toLowerCase()
    const token = item.slice(at + 1).trim()
    if (at < 0 || !ACCESS_ROLES.includes(role as AccessRole) || token === '') throw new Reject(`is not a list of <role>:<token> (${ROLE_WORDS})`)
    return { role: role as AccessRole, token }
  }), 'is not a list of <role>:<token>')

  const allowPeers = r.custom<AllowPeersSetting | null>(`${p}ALLOW_PEERS`, null, text => {
    if (looksLikePath(text)) {
      const path = r.resolvePath(text)
      try {
        parseAllowFile(readFileSync(path, 'utf8'))
      } catch (err) {
        if (err instanceof Reject) throw new Reject(`${path}: ${err.message}`)
        throw new Reject(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
      }
      return { kind: 'file', path }
    }
    return { kind: 'list', entries: Object.freeze(splitList(text).map(parseAllowEntry)) }
  }, 'is not a list of peer ids or a file of them')

  const inlineKey = r.custom<string | null>(`${p}SWARM_KEY`, null, normalizeSwarmKey, 'is not a swarm key')
  const keyFile = r.custom<string | null>(`${p}SWARM_KEY_FILE`, null, text => r.resolvePath(text), 'is not a path')
  let swarmKey = inlineKey
  if (keyFile !== null) {
    if (inlineKey !== null) throw new ConfigError(`${p}SWARM_KEY_FILE`, keyFile, `conflicts with ${p}SWARM_KEY (set one of them)`)
    let text: string
    try {
      text = readFileSync(keyFile, 'utf8')
    } catch (err) {
      throw new ConfigError(`${p}SWARM_KEY_FILE`, keyFile, `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
    }
    try {
      swarmKey = normalizeSwarmKey(text)
    } catch (err) {
      throw new ConfigError(`${p}SWARM_KEY_FILE`, keyFile, err instanceof Error ? err.message : String(err))
    }
  }

  return Object.freeze({
    tokenOpen: explicitlyEmpty(env, tokenVar),
    roleTokens: Object.freeze(roleTokens),
    allowPeers,
    swarmKey,
    peerMaxConnections: r.int(`${p}PEER_MAX_CONNECTIONS`, 16, 1, 10_000),
    peerMaxStreams: r.int(`${p}PEER_MAX_STREAMS`, 1024, 1, 1_000_000),
    peerOpsPerS: r.number(`${p}PEER_OPS_PER_S`, 0, { min: 0, max: 1e9 }),
    peerMaxTasks: r.int(`${p}PEER_MAX_TASKS`, DEFAULT_PEER_MAX_TASKS, 0, 1e12),
    peerMaxTaskBytes: r.int(`${p}PEER_MAX_TASK_BYTES`, DEFAULT_PEER_MAX_TASK_BYTES, 0, 2 ** 50)
  })
}
