/**
 * The other coordinators of the client's queue (★ issue 20): several `serve`s on one
 * PostgreSQL database are one queue, and each lists the others in its `status` reply
 * (`coordinators: [{peer_id, multiaddrs}]`). The client remembers the latest list, so
 * when its coordinator dies it fails over to one of them at once, without running the
 * discovery chain (and also when it was given one explicit address).
 */
import { withPeerId } from '../node/addresses.js'

/** At most this many remembered (a status reply is bounded too). */
const MAX_KNOWN = 64

export interface KnownCoordinator { peerId: string, addrs: string[] }

export class CoordinatorAlternates {
  private known: KnownCoordinator[] = []

  /**
   * Takes the coordinators a status reply of `fromPeerId` lists (the replying one is not
   * in its own list; it is kept too, so a client that failed over can come back to it).
   */
  learn (reply: Record<string, unknown>, fromPeerId: string | null, fromAddrs: readonly string[]): void {
    const list = reply.coordinators
    if (!Array.isArray(list)) return
    const next: KnownCoordinator[] = []
    for (const c of list.slice(0, MAX_KNOWN)) {
      if (typeof c !== 'object' || c === null) continue
      const { peer_id: peerId, multiaddrs } = c as Record<string, unknown>
      if (typeof peerId !== 'string' || peerId === '' || !Array.isArray(multiaddrs)) continue
      const addrs = multiaddrs.filter((a): a is string => typeof a === 'string' && a !== '').map((a) => withPeerId(a, peerId))
      if (addrs.length > 0) next.push({ peerId, addrs })
    }
    if (fromPeerId !== null && fromPeerId !== '' && fromAddrs.length > 0 && !next.some((c) => c.peerId === fromPeerId)) {
      next.push({ peerId: fromPeerId, addrs: fromAddrs.map((a) => withPeerId(a, fromPeerId)) })
    }
    this.known = next
  }

  /**
   * Coordinators to try instead of `failedPeerId`, starting at a random one so the
   * clients of a dead coordinator spread over the survivors.
   */
  candidates (failedPeerId: string | null): KnownCoordinator[] {
    const others = this.known.filter((c) => c.peerId !== failedPeerId)
    const start = others.length === 0 ? 0 : Math.floor(Math.random() * others.length)
    return [...others.slice(start), ...others.slice(0, start)]
  }
}
