/**
 * The multicast-dns socket inside @libp2p/mdns (its `mdns` field): the library drops
 * bind and send errors, so we listen for them and run the client's query loop ourselves.
 */
import { reportPatch } from './report.js'

/** The part of multicast-dns we rely on (the library's own typing is not exported). */
export interface MdnsSocket {
  on: (event: 'ready' | 'error' | 'warning', fn: (err?: Error) => void) => unknown
  removeListener: (event: string, fn: (...args: never[]) => void) => unknown
  query: (q: { questions: Array<{ name: string, type: 'PTR' }> }, cb: (err: Error | null) => void) => void
}

/** The socket of a started @libp2p/mdns discovery, or null when it is not where we expect it. */
export function mdnsSocketOf (inner: object): MdnsSocket | null {
  const sock = (inner as { mdns?: Partial<MdnsSocket> }).mdns
  const known = sock !== undefined && sock !== null && typeof sock.on === 'function' &&
    typeof sock.removeListener === 'function' && typeof sock.query === 'function'
  reportPatch('mdns-socket', known, 'no multicast-dns socket on the started discovery')
  return known ? sock as MdnsSocket : null
}
