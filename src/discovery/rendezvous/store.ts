/**
 * A rendezvous point's in-memory registrations. Every accepted REGISTER gets the next
 * value of one point-wide sequence counter; a cookie is the position (sequence number)
 * a DISCOVER stopped at, so paging on returns only registrations made after it. The
 * per-namespace Maps are kept in sequence order (a re-registration is deleted and
 * re-inserted) so a page is a single in-order scan.
 */
import { createHash, randomBytes } from 'node:crypto'
import { utf8Length } from './proto.js'

export interface StoredRegistration {
  ns: string
  peerId: string
  signedPeerRecord: Uint8Array
  expiresAtMs: number
  seq: number
}

export interface StoreLimits {
  perNamespace: number
  namespacesPerPeer: number
  total: number
}

export type PutOutcome = { ok: true, replaced: boolean } | { ok: false, reason: 'namespace_full' | 'peer_full' | 'point_full' }

export interface StorePage {
  registrations: StoredRegistration[]
  /** Sequence number the next page starts after. */
  nextSeq: number
}

export interface RegistrationCounts {
  namespaces: number
  registrations: number
  peers: number
  /** Largest namespaces first, at most 50 of them. */
  byNamespace: Record<string, number>
}

/**
 * A cookie is 8 bytes of this point's instance id, then ASCII `tq1.<seq>.<namespace hash>`.
 * The spec makes cookies opaque, but rust-libp2p's client parses them as its own point
 * writes them (8 bytes of id, then the namespace as UTF-8 of at most 255 bytes) and fails
 * the whole DISCOVER page on anything else, so ours fit that shape: the namespace is bound
 * by a hash, not carried.
 */
const COOKIE_INSTANCE_BYTES = 8
const COOKIE_TAIL = /^tq1\.(\d{1,16})\.([0-9a-f]{16})$/
/** Fixed per-registration overhead in an encoded DISCOVER_RESPONSE (tags, lengths, ttl). */
const ENTRY_OVERHEAD_BYTES = 32

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

function namespaceTag (ns: string | null): string {
  return createHash('sha256').update(ns ?? '').digest('hex').slice(0, 16)
}

export class RegistrationStore {
  private readonly byNamespace = new Map<string, Map<string, StoredRegistration>>()
  private readonly byPeer = new Map<string, Set<string>>()
  private count = 0
  private lastSeq = 0
  /** Cookies from another point, or from before a restart, must not be mistaken for ours. */
  private readonly instance = randomBytes(8)

  constructor (private readonly limits: StoreLimits, private readonly now: () => number) {}

  /** Adds or replaces the peer's registration in `ns` (a replacement moves to the newest position). */
  put (reg: Omit<StoredRegistration, 'seq'>): PutOutcome {
    const nsMap = this.byNamespace.get(reg.ns)
    const existing = nsMap?.get(reg.peerId)
    if (existing === undefined) {
      if (nsMap !== undefined && nsMap.size >= this.limits.perNamespace) {
        this.purgeNamespace(reg.ns)
        if (nsMap.size >= this.limits.perNamespace) return { ok: false, reason: 'namespace_full' }
      }
      const peerNamespaces = this.byPeer.get(reg.peerId)
      if (peerNamespaces !== undefined && peerNamespaces.size >= this.limits.namespacesPerPeer) {
        this.purgePeer(reg.peerId)
        if ((this.byPeer.get(reg.peerId)?.size ?? 0) >= this.limits.namespacesPerPeer) return { ok: false, reason: 'peer_full' }
      }
      if (this.count >= this.limits.total) {
        this.sweep()
        if (this.count >= this.limits.total) return { ok: false, reason: 'point_full' }
      }
    } else {
      this.remove(reg.ns, reg.peerId)
    }
    const stored: StoredRegistration = { ...reg, seq: ++this.lastSeq }
    let target = this.byNamespace.get(reg.ns)
    if (target === undefined) {
      target = new Map()
      this.byNamespace.set(reg.ns, target)
    }
    target.set(reg.peerId, stored)
    let peerSet = this.byPeer.get(reg.peerId)
    if (peerSet === undefined) {
      peerSet = new Set()
      this.byPeer.set(reg.peerId, peerSet)
    }
    peerSet.add(reg.ns)
    this.count++
    return { ok: true, replaced: existing !== undefined }
  }

  remove (ns: string, peerId: string): boolean {
    const nsMap = this.byNamespace.get(ns)
    if (nsMap?.delete(peerId) !== true) return false
    if (nsMap.size === 0) this.byNamespace.delete(ns)
    const peerSet = this.byPeer.get(peerId)
    peerSet?.delete(ns)
    if (peerSet?.size === 0) this.byPeer.delete(peerId)
    this.count--
    return true
  }

  /** Drops every expired registration; returns how many. */
  sweep (): number {
    let dropped = 0
    for (const ns of [...this.byNamespace.keys()]) dropped += this.purgeNamespace(ns)
    return dropped
  }

  private purgeNamespace (ns: string): number {
    const now = this.now()
    let dropped = 0
    for (const reg of [...(this.byNamespace.get(ns)?.values() ?? [])]) {
      if (reg.expiresAtMs <= now && this.remove(ns, reg.peerId)) dropped++
    }
    return dropped
  }

  private purgePeer (peerId: string): void {
    const now = this.now()
    for (const ns of [...(this.byPeer.get(peerId) ?? [])]) {
      const reg = this.byNamespace.get(ns)?.get(peerId)
      if (reg !== undefined && reg.expiresAtMs <= now) this.remove(ns, peerId)
    }
  }

  /**
   * Live registrations in `ns` (null: every namespace) made after `afterSeq`, oldest
   * first, at most `limit` of them and at most `budgetBytes` of encoded response.
   */
  page (ns: string | null, afterSeq: number, limit: number, budgetBytes: number): StorePage {
    if (limit <= 0) return { registrations: [], nextSeq: afterSeq }
    const now = this.now()
    const sources = ns === null ? [...this.byNamespace.values()] : [this.byNamespace.get(ns) ?? new Map<string, StoredRegistration>()]
    const candidates: StoredRegistration[] = []
    const expired: StoredRegistration[] = []
    for (const nsMap of sources) {
      for (const reg of nsMap.values()) {
        if (reg.expiresAtMs <= now) expired.push(reg)
        else if (reg.seq > afterSeq) candidates.push(reg)
      }
    }
    for (const reg of expired) this.remove(reg.ns, reg.peerId)
    // One namespace is already in order; several must be merged.
    if (sources.length > 1) candidates.sort((a, b) => a.seq - b.seq)
    const out: StoredRegistration[] = []
    let bytes = 0
    for (const reg of candidates) {
      const size = reg.signedPeerRecord.byteLength + utf8Length(reg.ns) + ENTRY_OVERHEAD_BYTES
      if (out.length >= limit || bytes + size > budgetBytes) {
        return { registrations: out, nextSeq: out.length > 0 ? out[out.length - 1].seq : afterSeq }
      }
      out.push(reg)
      bytes += size
    }
    // Exhausted: anything registered from now on is newer than the point's current position.
    return { registrations: out, nextSeq: this.lastSeq }
  }

  encodeCookie (ns: string | null, seq: number): Uint8Array {
    const tail = enc.encode(`tq1.${seq}.${namespaceTag(ns)}`)
    const out = new Uint8Array(COOKIE_INSTANCE_BYTES + tail.byteLength)
    out.set(this.instance, 0)
    out.set(tail, COOKIE_INSTANCE_BYTES)
    return out
  }

  /** The position a cookie names, or null when it is not one of ours for this namespace. */
  decodeCookie (cookie: Uint8Array, ns: string | null): number | null {
    if (cookie.byteLength <= COOKIE_INSTANCE_BYTES || cookie.byteLength > COOKIE_INSTANCE_BYTES + 64) return null
    for (let i = 0; i < COOKIE_INSTANCE_BYTES; i++) if (cookie[i] !== this.instance[i]) return null
    let tail: string
    try {
      tail = dec.decode(cookie.subarray(COOKIE_INSTANCE_BYTES))
    } catch {
      return null
    }
    const m = COOKIE_TAIL.exec(tail)
    if (m === null || m[2] !== namespaceTag(ns)) return null
    const seq = Number(m[1])
    return seq <= this.lastSeq ? seq : null
  }

  counts (): RegistrationCounts {
    this.sweep()
    const sizes = [...this.byNamespace.entries()].map(([ns, m]) => [ns, m.size] as const)
    sizes.sort((a, b) => b[1] - a[1])
    return {
      namespaces: this.byNamespace.size,
      registrations: this.count,
      peers: this.byPeer.size,
      byNamespace: Object.fromEntries(sizes.slice(0, 50))
    }
  }
}
