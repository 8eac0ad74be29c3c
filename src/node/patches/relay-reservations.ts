/**
 * The circuit relay transport's reservation store (@libp2p/circuit-relay-v2 internals):
 * when our reservation expires, and the "previously invalid relay" mark that the store
 * only clears in discovery mode (so a relay that flapped once would be refused forever,
 * the same family of bugs as js-libp2p #3601).
 */
import type { PeerId, Transport } from '@libp2p/interface'
import { reportPatch } from './report.js'

export interface ReservationStoreView {
  getReservation?: (p: PeerId) => { expire?: bigint } | undefined
  relayFilter?: { remove?: (b: Uint8Array) => unknown }
}

/** The reservation store of the first transport that has one, when its shape is the one we know. */
export function reservationStoreOf (transports: Transport[]): ReservationStoreView | null {
  for (const t of transports) {
    const candidate = (t as unknown as { reservationStore?: unknown }).reservationStore
    if (candidate !== undefined && candidate !== null && typeof candidate === 'object') {
      const store = candidate as ReservationStoreView
      const known = typeof store.getReservation === 'function' && typeof store.relayFilter?.remove === 'function'
      reportPatch('relay-reservation-store', known, 'reservation store has another shape')
      return store
    }
  }
  reportPatch('relay-reservation-store', false, 'no transport with a reservation store')
  return null
}
