/**
 * In-memory scheduler registry (wire-protocol.md §7.4). Deliberately not persisted:
 * liveness is a few minutes, and every claim or heartbeat re-registers the peer.
 */
import { expandTaskTypes } from './aliases.js'
import type { PeerEntry } from './types.js'

export const DEFAULT_PEER_TIMEOUT_S = 300
export const DEFAULT_MAX_PEERS = 10_000

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
    const entry: PeerEntry = {
      peer_id: key,
      worker_id: t.worker_id ?? prev?.worker_id ?? '',
      supported_task_types: t.supported_task_types !== undefined
        ? expandTaskTypes(t.supported_task_types)
        : (prev?.supported_task_types ?? []),
      session_id: t.session_id ?? prev?.session_id ?? '',
      last_seen: t.last_seen ?? this.now(),
      transport_peer_id: t.transport_peer_id ?? prev?.transport_peer_id ?? '',
      peer_hint: t.peer_hint ?? prev?.peer_hint ?? ''
    }
    // Re-insert so Map order tracks recency; the front is then the eviction victim.
    if (prev !== undefined) this.entries.delete(key)
    this.entries.set(key, entry)
    while (this.entries.size > this.maxSize) {
      const oldest = this.entries.keys().next()
      if (oldest.done === true) break
      this.entries.delete(oldest.value)
    }
    return entry
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

  /** Drops dead entries from the front (touch order ≈ last_seen order). */
  prune (now: number = this.now()): void {
    for (const [k, e] of this.entries) {
      if (this.isLive(e, now)) break
      this.entries.delete(k)
    }
  }

  /** Drops every entry of this worker (keyed by it, or reporting it as worker_id). */
  forgetWorker (workerId: string): void {
    for (const [k, e] of this.entries) {
      if (k === workerId || e.worker_id === workerId) this.entries.delete(k)
    }
  }

  delete (key: string): boolean {
    return this.entries.delete(key)
  }

  clear (): void {
    this.entries.clear()
  }
}
