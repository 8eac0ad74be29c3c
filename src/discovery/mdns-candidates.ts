/**
 * What an mDNS responder's addresses are worth (discovery.md §7): unspecified and
 * link-local addresses are never dialable from another host, loopback only reaches
 * this host (kept when MDNS_ALLOW_LOOPBACK), and IPv4 TCP is tried first because it
 * is what every TaskQueue node listens on. Also the memory of LAN peers that turned
 * out not to serve TaskQueue, so a busy LAN is not re-dialled on every poll.
 */
import type { Multiaddr } from '@multiformats/multiaddr'
import { classifyAddr, isCircuitAddr, withoutPeerId } from '../node/addresses.js'
import type { AddressClass } from '../node/addresses.js'

/** 0: IPv4 TCP, 1: IPv6 TCP, 2: named TCP, 3: anything else (other transports, relayed). */
export function addrRank (addr: string): number {
  if (isCircuitAddr(addr)) return 3
  const tcp = /^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+(\/p2p\/[^/]+)?$/.exec(addr)
  if (tcp === null) return 3
  return tcp[1] === 'ip4' ? 0 : tcp[1] === 'ip6' ? 1 : 2
}


export interface FilteredAddrs {
  /** Dialable addresses without `/p2p/`, best first. */
  usable: string[]
  /** What was dropped and why (for logs and tests). */
  dropped: Array<{ addr: string, reason: Exclude<AddressClass, 'usable'> }>
}

/** Drops what no other host can dial (loopback unless allowed), dedupes, puts IPv4 TCP first. */
export function filterMdnsAddrs (addrs: ReadonlyArray<Multiaddr | string>, allowLoopback: boolean): FilteredAddrs {
  const usable: string[] = []
  const dropped: FilteredAddrs['dropped'] = []
  for (const a of addrs) {
    const addr = withoutPeerId(a.toString())
    const cls = classifyAddr(addr)
    if (cls === 'usable' || (cls === 'loopback' && allowLoopback)) {
      if (!usable.includes(addr)) usable.push(addr)
    } else {
      dropped.push({ addr, reason: cls })
    }
  }
  // Stable: equal ranks keep the responder's own order.
  usable.sort((x, y) => addrRank(x) - addrRank(y))
  return { usable, dropped }
}

export const NOT_TASKQUEUE_TTL_MS = 10 * 60_000

/** Peer ids that answered mDNS but do not serve TaskQueue, each for NOT_TASKQUEUE_TTL_MS. */
export class NotTaskQueueMemory {
  private readonly until = new Map<string, number>()
  private readonly now: () => number
  private readonly ttlMs: number

  constructor (now: () => number = Date.now, ttlMs = NOT_TASKQUEUE_TTL_MS) {
    this.now = now
    this.ttlMs = ttlMs
  }

  mark (peerId: string): void {
    this.until.set(peerId, this.now() + this.ttlMs)
  }

  has (peerId: string): boolean {
    const t = this.until.get(peerId)
    if (t === undefined) return false
    if (this.now() < t) return true
    this.until.delete(peerId)
    return false
  }

  /** Forgets everything (tests, or after the user changes PROTOCOL). */
  clear (): void {
    this.until.clear()
  }

  get size (): number {
    for (const id of [...this.until.keys()]) this.has(id)
    return this.until.size
  }
}

/** Process-wide: one RemoteQueue's discovery spares the next one the same dials. */
export const notTaskQueuePeers = new NotTaskQueueMemory()
