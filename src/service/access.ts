/**
 * Who may call what (README "Security"), decided in one place for both transports:
 * the peer allow list (ALLOW_PEERS, also enforced at the connection gater before any
 * protocol runs), the tokens (TOKEN or the generated one: admin; ROLE_TOKENS: one role
 * each) and the role each op needs (protocol/ops.ts). Every refusal is a typed reply
 * and is counted in `refusals`, by reason, for status and metrics.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import type { ConnectionGater, PeerId, Startable } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import { parseAllowFile } from '../config/security.js'
import type { AccessRole, AllowEntry, AllowPeersSetting, RoleToken } from '../config/security.js'
import type { Logger } from '../logger.js'
import type { TaskQueueError } from '../protocol/errors.js'
import type { CallerInfo } from './context.js'
import { QUOTA_LIMITS } from '../store/submitter-usage.js'

/**
 * Why a caller was refused; the keys of `refusals`. `quota`: what a peer keeps is at its
 * bound (PEER_MAX_TASKS, PEER_MAX_TASK_BYTES, PEER_MAX_CACHE_BYTES; the reply is a
 * retryable `rate_limited` naming the setting in `limit`).
 */
export type RefusalReason = 'peer_not_allowed' | 'bad_token' | 'role' | 'rate_limited' | 'busy' | 'quota'

export type Refusals = Record<RefusalReason, number>

export function emptyRefusals (): Refusals {
  return { peer_not_allowed: 0, bad_token: 0, role: 0, rate_limited: 0, busy: 0, quota: 0 }
}

/**
 * ★ Whose per-peer bounds a write counts against (PEER_MAX_TASKS, PEER_MAX_TASK_BYTES,
 * PEER_MAX_CACHE_BYTES): the transport peer id; null for the dashboard, which is no
 * libp2p peer (its token and HTTP_HOST decide who reaches it), as for in-process calls.
 */
export function quotaPeerOf (caller: CallerInfo): string | null {
  return caller.via === 'http' || caller.remotePeerId === '' ? null : caller.remotePeerId
}

/** The reason a `rate_limited` error thrown by an op or the store is counted under. */
export function refusalReasonOf (err: TaskQueueError): RefusalReason {
  const limit = err.extra?.limit
  return typeof limit === 'string' && QUOTA_LIMITS.has(limit) ? 'quota' : 'rate_limited'
}

/** Whether a caller holding `held` may call an op that needs `needed` (undefined = anyone). */
export function permits (held: AccessRole, needed: AccessRole | undefined): boolean {
  return needed === undefined || held === 'admin' || held === needed
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

export interface AccessInit {
  /** The admin token (TOKEN, or the generated one); null with no role tokens = open service. */
  token: string | null
  roleTokens?: readonly RoleToken[]
  allowPeers?: AllowPeersSetting | null
  logger?: Logger
  /** How often a watched allow-list file is checked for changes. */
  pollMs?: number
  /** Open connections one remote peer may hold (default unlimited). */
  peerMaxConnections?: number
  /** Ops per second per remote peer, burst one second's worth; 0/absent = no limit. */
  peerOpsPerS?: number
  /** Open TaskQueue streams one remote peer may hold across its connections (default unlimited). */
  peerMaxStreams?: number
}

/** What access control needs of a node: its connections (PEER_MAX_CONNECTIONS, allow-list reloads). */
export interface AccessControlComponents {
  connectionManager: Pick<ConnectionManager, 'getConnections'>
}

/** Most peers whose op rate is tracked at once (the least recently seen are forgotten). */
const MAX_TRACKED_PEERS = 10_000

export type Verdict = { ok: true, role: AccessRole } | { ok: false, reason: RefusalReason, detail: string }

/**
 * Made before its node, because the node's connection gater and the TaskQueue service
 * take it; it joins the node as a libp2p service (`service()`), which gives it the node's
 * connections and starts and stops its allow-list watch with the node.
 */
export class AccessControl implements Startable {
  readonly refusals: Refusals = emptyRefusals()
  private readonly tokens: Array<{ hash: Buffer, role: AccessRole }>
  private readonly allowSetting: AllowPeersSetting | null
  private allowed: Map<string, AccessRole> | null
  private readonly log: Logger | undefined
  private readonly pollMs: number
  private connections: AccessControlComponents['connectionManager'] | null = null
  private readonly maxConnections: number
  private readonly opsPerS: number
  private readonly maxStreams: number
  /** Open TaskQueue streams per remote peer. */
  private readonly streams = new Map<string, number>()
  /** Per-peer token buckets, in order of last use. */
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (init: AccessInit) {
    this.tokens = [
      ...(init.token !== null ? [{ hash: digest(init.token), role: 'admin' as const }] : []),
      ...(init.roleTokens ?? []).map(t => ({ hash: digest(t.token), role: t.role }))
    ]
    this.allowSetting = init.allowPeers ?? null
    this.log = init.logger
    this.pollMs = init.pollMs ?? 1000
    this.maxConnections = init.peerMaxConnections ?? Number.POSITIVE_INFINITY
    this.opsPerS = init.peerOpsPerS ?? 0
    this.maxStreams = init.peerMaxStreams ?? Number.POSITIVE_INFINITY
    this.allowed = null
    if (this.allowSetting?.kind === 'list') this.allowed = toMap(this.allowSetting.entries)
    if (this.allowSetting?.kind === 'file') this.allowed = toMap(parseAllowFile(readFileSync(this.allowSetting.path, 'utf8')))
  }

  /** Whether any token is required. */
  get tokenRequired (): boolean {
    return this.tokens.length > 0
  }

  get allowListOn (): boolean {
    return this.allowed !== null
  }

  /** For status and the doctor: which controls are on (never a secret). */
  describe (): Record<string, unknown> {
    return {
      token: this.tokenRequired ? 'required' : 'open',
      role_tokens: this.tokens.filter(t => t.role !== 'admin').length,
      allow_list: this.allowed === null ? null : { peers: this.allowed.size, source: this.allowSetting?.kind === 'file' ? this.allowSetting.path : 'ALLOW_PEERS' }
    }
  }

  /** The role the allow list gives `peerId`: admin with no list, null when not listed. */
  peerRole (peerId: string): AccessRole | null {
    if (this.allowed === null) return 'admin'
    return this.allowed.get(peerId) ?? null
  }

  /** The role a token gives: admin on an open service, null for a wrong or missing one. */
  tokenRole (candidate: unknown): AccessRole | null {
    if (this.tokens.length === 0) return 'admin'
    const given = digest(typeof candidate === 'string' ? candidate : '')
    let role: AccessRole | null = null
    // Every token is compared (constant time, no early exit) so timing tells nothing.
    for (const t of this.tokens) if (timingSafeEqual(t.hash, given) && role === null) role = t.role
    return role
  }

  /**
   * The decision for one call: the peer, its token and the role the op needs. `peerId`
   * null is a caller that is no libp2p peer (the node's own HTTP listener, behind its
   * bind address and the token): the allow list and per-peer limits do not apply to it.
   */
  check (peerId: string | null, token: unknown, needed: AccessRole | undefined): Verdict {
    const peer = peerId === null ? 'admin' : this.peerRole(peerId)
    if (peer === null) return this.refuse('peer_not_allowed', 'this peer is not on the allow list')
    const held = this.tokenRole(token)
    if (held === null) return this.refuse('bad_token', 'a valid token is required')
    for (const role of [peer, held]) {
      if (!permits(role, needed)) return this.refuse('role', `the ${role} role may not call this (it needs ${needed ?? 'any'})`)
    }
    if (peerId !== null && !this.takeOp(peerId)) return this.refuse('rate_limited', `more than ${this.opsPerS} ops per second from this peer`)
    return { ok: true, role: held === 'admin' ? peer : held }
  }

  /** One op from `peerId` against its token bucket (PEER_OPS_PER_S). */
  private takeOp (peerId: string): boolean {
    if (this.opsPerS <= 0) return true
    const now = performance.now()
    let b = this.buckets.get(peerId)
    if (b === undefined) {
      b = { tokens: Math.max(1, this.opsPerS), at: now }
      if (this.buckets.size >= MAX_TRACKED_PEERS) this.buckets.delete(this.buckets.keys().next().value as string)
    } else {
      this.buckets.delete(peerId)
      b.tokens = Math.min(Math.max(1, this.opsPerS), b.tokens + (now - b.at) / 1000 * this.opsPerS)
      b.at = now
    }
    this.buckets.set(peerId, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /**
   * A TaskQueue stream from `peerId` opens: false (a `busy` refusal) when the peer holds
   * PEER_MAX_STREAMS already. Each true must be paired with `streamClosed`.
   */
  streamOpened (peerId: string): boolean {
    const n = this.streams.get(peerId) ?? 0
    if (n >= this.maxStreams) {
      this.refusals.busy++
      return false
    }
    this.streams.set(peerId, n + 1)
    return true
  }

  streamClosed (peerId: string): void {
    const n = (this.streams.get(peerId) ?? 0) - 1
    if (n <= 0) this.streams.delete(peerId)
    else this.streams.set(peerId, n)
  }

  /** Counts a refusal decided elsewhere (rate limits, busy). */
  count (reason: RefusalReason): void {
    this.refusals[reason]++
  }

  private refuse (reason: RefusalReason, detail: string): Verdict {
    this.refusals[reason]++
    return { ok: false, reason, detail }
  }

  /** Refuses peers off the allow list before any protocol runs (inbound connections). */
  gater (): ConnectionGater {
    const denied = (peerId: PeerId): boolean => {
      if (this.peerRole(peerId.toString()) !== null) return false
      this.refusals.peer_not_allowed++
      return true
    }
    // PEER_MAX_CONNECTIONS: counted once the peer is known, before its connection is used.
    const tooMany = (peerId: PeerId): boolean => {
      if ((this.connections?.getConnections(peerId).length ?? 0) < this.maxConnections) return false
      this.refusals.busy++
      return true
    }
    return {
      denyInboundEncryptedConnection: async (peerId) => denied(peerId),
      denyInboundUpgradedConnection: async (peerId) => denied(peerId) || tooMany(peerId)
    }
  }

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/access-control'

  /** This access control as its node's service (one instance: the factory hands it the node's components). */
  service (): (components: AccessControlComponents) => AccessControl {
    return (components) => {
      this.connections = components.connectionManager
      return this
    }
  }

  /** Watches an allow-list file; a change applies at once and drops inbound connections of removed peers. */
  start (): void {
    if (this.allowSetting?.kind !== 'file') return
    const path = this.allowSetting.path
    watchFile(path, { interval: this.pollMs, persistent: false }, this.onAllowFileChange)
  }

  stop (): void {
    if (this.allowSetting?.kind === 'file') unwatchFile(this.allowSetting.path, this.onAllowFileChange)
  }

  private readonly onAllowFileChange = (): void => {
    if (this.allowSetting?.kind === 'file') this.reload(this.allowSetting.path)
  }

  private reload (path: string): void {
    let next: Map<string, AccessRole>
    try {
      next = toMap(parseAllowFile(readFileSync(path, 'utf8')))
    } catch (err) {
      // A half-written or broken file keeps the last good list (never opens the service).
      this.log?.warn({ err, path }, 'allow-list file unreadable or invalid: keeping the previous list')
      return
    }
    this.allowed = next
    this.log?.info({ path, peers: next.size }, 'allow list reloaded')
    for (const conn of this.connections?.getConnections() ?? []) {
      if (conn.direction === 'inbound' && !next.has(conn.remotePeer.toString())) {
        conn.close().catch(() => conn.abort(new Error('peer removed from the allow list')))
      }
    }
  }
}

function toMap (entries: readonly AllowEntry[]): Map<string, AccessRole> {
  return new Map(entries.map(e => [e.peerId, e.role]))
}
