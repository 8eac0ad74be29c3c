/**
 * In-memory scheduler registry (wire-protocol.md §7.4). Deliberately not persisted:
 * liveness is a few minutes, and every claim or heartbeat re-registers the peer.
 */
import { expandTaskTypes } from './aliases.js'
import type { ClaimInput, PeerEntry } from './types.js'

export const DEFAULT_PEER_TIMEOUT_S = 300
export const DEFAULT_MAX_PEERS = 10_000
/**
 * Most claimers the scheduler hashes a task against. Each candidate costs one hash per
 * task walked, so the bound keeps a claim's work fixed however many ids claim; the
 * least recent claimers drop out first (and can still take tasks after the steal window).
 */
export const MAX_CANDIDATES = 256
/**
 * Most registry ids one remote peer (transport peer id) may hold at once: what a caller
 * keeps in the registry is bounded per peer, so one peer cannot fill it with made-up
 * workers and push everyone else out. The in-process worker (no transport id) is exempt.
 */
export const MAX_IDS_PER_PEER = 256
/**
 * Most characters of caller-supplied strings (ids, session, hint, task types) one remote
 * peer keeps in the registry across its ids: a real worker's entry is well under 1 KiB,
 * while 256 ids each with 64 task types of 256 characters would be 4 MiB.
 */
export const MAX_BYTES_PER_PEER = 256 * 1024

/** Why `admits` refuses: too many ids, or too many bytes kept for one remote peer. */
export type AdmitVerdict = 'ok' | 'ids' | 'bytes'

/** Fields a claim or heartbeat reports; an omitted field keeps its previous value. */
export interface PeerTouch {
  peer_id: string
  worker_id?: string
  /** Alias-expanded on the way in (idempotent on an already expanded list). */
  supported_task_types?: readonly string[]
  session_id?: string
  last_seen?: number
  transport_peer_id?: string
  peer_hint?: string
  /**
   * The peer claimed (or renewed a lease it holds) now: only such peers are scheduler
   * candidates, so ids that merely said hello cost a claim nothing.
   */
  active?: boolean
}

/** What a claim tells the registry about its claimer: claiming (or asking to) is a sign of life. */
export function claimerProfile (input: ClaimInput, now: number): PeerTouch {
  return {
    peer_id: input.peer_key !== '' ? input.peer_key : input.worker_id,
    worker_id: input.worker_id,
    supported_task_types: input.task_types ?? [],
    session_id: input.session,
    last_seen: now,
    transport_peer_id: input.transport_peer_id,
    peer_hint: input.peer_hint,
    active: true
  }
}

/** The scheduler's candidate owners: peers that claimed within the liveness window. */
export interface Candidates {
  /** Changes whenever the set or a member's profile changes (cache key for owners). */
  readonly version: number
  readonly peers: readonly PeerEntry[]
}

export interface PeerKeySources {
  peer?: string | null
  peer_id?: string | null
  worker_id?: string | null
  transport_peer_id?: string | null
}

/**
 * Registry key: first non-empty of peer, peer_id, worker_id, transport peer id. The
 * worker_id comes before the transport id so a CLI worker that dials with a fresh
 * identity each run is still one peer, not a new "ghost" every call.
 */
export function peerKey (src: PeerKeySources): string {
  for (const v of [src.peer, src.peer_id, src.worker_id, src.transport_peer_id]) {
    const s = typeof v === 'string' ? v.trim() : ''
    if (s !== '') return s
  }
  return ''
}

export interface PeerRegistryOptions {
  timeoutS?: number
  maxSize?: number
  now?: () => number
}

export class PeerRegistry {
  readonly timeoutS: number
  readonly maxSize: number
  private readonly now: () => number
  /** Insertion order = order of last touch, so the oldest entries are at the front. */
  private readonly entries = new Map<string, PeerEntry>()
  /** Peers with a worker_id that claimed recently, in order of last claim (oldest first). */
  private readonly claimers = new Map<string, { entry: PeerEntry, activeAt: number }>()
  private claimersVersion = 0
  private candidateList: PeerEntry[] | null = null
  /** Registry ids and their bytes per transport peer id (MAX_IDS_PER_PEER, MAX_BYTES_PER_PEER). */
  private readonly perTransport = new Map<string, { ids: number, bytes: number }>()

  constructor (opts: PeerRegistryOptions = {}) {
    this.timeoutS = opts.timeoutS ?? DEFAULT_PEER_TIMEOUT_S
    this.maxSize = Math.max(1, opts.maxSize ?? DEFAULT_MAX_PEERS)
    this.now = opts.now ?? (() => Date.now() / 1000)
  }

  get size (): number {
    return this.entries.size
  }

  touch (t: PeerTouch): PeerEntry {
    const key = t.peer_id.trim()
    const prev = this.entries.get(key)
    const entry = compose(key, t, prev, this.now)
    // Re-insert so Map order tracks recency; the front is then the eviction victim.
    if (prev !== undefined) this.remove(key)
    this.entries.set(key, entry)
    this.countTransport(entry, 1)
    while (this.entries.size > this.maxSize) {
      const oldest = this.entries.keys().next()
      if (oldest.done === true) break
      this.dropClaimer(oldest.value)
      this.remove(oldest.value)
    }
    const claimer = this.claimers.get(key)
    if (t.active === true && entry.worker_id !== '') {
      if (claimer === undefined || !sameProfile(claimer.entry, entry)) this.changed()
      this.claimers.delete(key)
      this.claimers.set(key, { entry, activeAt: entry.last_seen })
      while (this.claimers.size > MAX_CANDIDATES) {
        const oldest = this.claimers.keys().next()
        if (oldest.done === true) break
        this.dropClaimer(oldest.value)
      }
    } else if (claimer !== undefined) {
      // A heartbeat refreshes liveness, not candidacy; a changed profile still counts.
      if (!sameProfile(claimer.entry, entry)) this.changed()
      claimer.entry = entry
    }
    return entry
  }

  /**
   * Whether the touch `t` (from remote peer `t.transport_peer_id`) fits that peer's share
   * of the registry: at most MAX_IDS_PER_PEER ids (an id it holds already is always
   * refreshed) and MAX_BYTES_PER_PEER characters of its strings, counting the entry as
   * it would be after the touch (its task types before alias expansion: claims send
   * them expanded, and a check on every claim must stay cheap). Ops ask first and refuse with a typed reply; `touch`
   * itself never refuses (the local worker, with no transport id, is exempt).
   */
  admits (t: PeerTouch): AdmitVerdict {
    const transport = t.transport_peer_id ?? ''
    if (transport === '') return 'ok'
    const key = t.peer_id.trim()
    const prev = this.entries.get(key)
    const held = this.perTransport.get(transport) ?? { ids: 0, bytes: 0 }
    const own = prev !== undefined && prev.transport_peer_id === transport
    if (!own && held.ids >= MAX_IDS_PER_PEER) return 'ids'
    const bytes = held.bytes - (own ? entryBytes(prev) : 0) + entryBytes(compose(key, t, prev, this.now, false))
    return bytes > MAX_BYTES_PER_PEER ? 'bytes' : 'ok'
  }

  /** Marks a known peer as active (it renewed a lease it holds), as a claim would. */
  markActive (key: string, now: number = this.now()): void {
    const entry = this.entries.get(key.trim())
    if (entry === undefined || entry.worker_id === '') return
    if (!this.claimers.has(entry.peer_id)) this.changed()
    this.claimers.delete(entry.peer_id)
    this.claimers.set(entry.peer_id, { entry, activeAt: now })
  }

  /**
   * The scheduler's candidates: peers with a worker_id whose last claim (or lease
   * renewal) is within the liveness window, at most MAX_CANDIDATES. Costs nothing per
   * peer that only sent heartbeats, and the version only moves when the set does.
   */
  candidates (now: number = this.now()): Candidates {
    for (const [k, c] of this.claimers) {
      if (now - c.activeAt <= this.timeoutS) break
      this.dropClaimer(k)
    }
    this.candidateList ??= [...this.claimers.values()].map(c => c.entry)
    return { version: this.claimersVersion, peers: this.candidateList }
  }

  /** Deletes an entry and its per-transport count (not its candidacy). */
  private remove (key: string): boolean {
    const e = this.entries.get(key)
    if (e === undefined) return false
    this.entries.delete(key)
    this.countTransport(e, -1)
    return true
  }

  private countTransport (e: PeerEntry, sign: 1 | -1): void {
    const transport = e.transport_peer_id
    if (transport === '') return
    const held = this.perTransport.get(transport) ?? { ids: 0, bytes: 0 }
    held.ids += sign
    held.bytes += sign * entryBytes(e)
    if (held.ids <= 0) this.perTransport.delete(transport)
    else this.perTransport.set(transport, held)
  }

  private changed (): void {
    this.claimersVersion++
    this.candidateList = null
  }

  private dropClaimer (key: string): void {
    if (this.claimers.delete(key)) this.changed()
  }

  get (key: string): PeerEntry | undefined {
    return this.entries.get(key)
  }

  isLive (e: PeerEntry, now: number = this.now()): boolean {
    return now - e.last_seen <= this.timeoutS
  }

  /** Live entries, most recently seen last. Dead entries at the front are dropped. */
  live (now: number = this.now()): PeerEntry[] {
    this.prune(now)
    const out: PeerEntry[] = []
    for (const e of this.entries.values()) if (this.isLive(e, now)) out.push(e)
    return out
  }

  /** The `limit` most recently seen live entries, most recent last; O(size) at worst, no copy of the rest. */
  recent (limit: number, now: number = this.now()): PeerEntry[] {
    this.prune(now)
    let skip = this.entries.size - limit
    const out: PeerEntry[] = []
    for (const e of this.entries.values()) {
      if (skip-- > 0) continue
      if (this.isLive(e, now)) out.push(e)
    }
    return out
  }

  /** Drops dead entries from the front (touch order ≈ last_seen order). */
  prune (now: number = this.now()): void {
    for (const [k, e] of this.entries) {
      if (this.isLive(e, now)) break
      this.dropClaimer(k)
      this.remove(k)
    }
  }

  /** Drops every entry of this worker (keyed by it, or reporting it as worker_id). */
  forgetWorker (workerId: string): void {
    for (const [k, e] of this.entries) {
      if (k === workerId || e.worker_id === workerId) {
        this.dropClaimer(k)
        this.remove(k)
      }
    }
  }

  /**
   * Drops every entry that reached us over this libp2p peer (its connection closed),
   * candidacy included: a gone worker left as a candidate owner would keep its tasks
   * from the others until the steal window passes.
   */
  forgetTransportPeer (peerId: string): number {
    let n = 0
    if (peerId === '') return n
    for (const [k, e] of this.entries) {
      if (e.transport_peer_id === peerId) {
        this.delete(k)
        n++
      }
    }
    return n
  }

  delete (key: string): boolean {
    this.dropClaimer(key)
    return this.remove(key)
  }

  clear (): void {
    this.entries.clear()
    this.perTransport.clear()
    this.claimers.clear()
    this.changed()
  }
}

/** The entry a touch makes: an omitted field keeps its previous value. */
function compose (key: string, t: PeerTouch, prev: PeerEntry | undefined, now: () => number, expand = true): PeerEntry {
  return {
    peer_id: key,
    worker_id: t.worker_id ?? prev?.worker_id ?? '',
    supported_task_types: t.supported_task_types !== undefined
      ? (expand ? expandTaskTypes(t.supported_task_types) : [...t.supported_task_types])
      : (prev?.supported_task_types ?? []),
    session_id: t.session_id ?? prev?.session_id ?? '',
    last_seen: t.last_seen ?? now(),
    transport_peer_id: t.transport_peer_id ?? prev?.transport_peer_id ?? '',
    peer_hint: t.peer_hint ?? prev?.peer_hint ?? ''
  }
}

/** Characters of caller-supplied strings an entry keeps (MAX_BYTES_PER_PEER). */
function entryBytes (e: PeerEntry): number {
  let n = e.peer_id.length + e.worker_id.length + e.session_id.length + e.peer_hint.length
  for (const t of e.supported_task_types) n += t.length
  return n
}

/** The fields ownership depends on (wire-protocol.md §7.4 eligibility). */
function sameProfile (a: PeerEntry, b: PeerEntry): boolean {
  return a.worker_id === b.worker_id && a.session_id === b.session_id &&
    a.supported_task_types.length === b.supported_task_types.length &&
    a.supported_task_types.every((t, i) => t === b.supported_task_types[i])
}
