/**
 * Everything that reaches into js-libp2p internals lives in this folder; nothing outside
 * it casts a libp2p object to reach a private field. Each patch recognises the shape it
 * needs and otherwise leaves the object alone (the library then behaves as shipped), and
 * reports which it did (report.ts). The packages they rely on are pinned to a patch range
 * in package.json; test/unit/patch-shapes.test.ts fails when one changes shape.
 *
 * - transport-tuning.ts: socket write batching (@libp2p/tcp), Noise's length decoder
 *   (@chainsafe/libp2p-noise), Yamux window updates (@chainsafe/libp2p-yamux), unheard
 *   'idle' events (libp2p message streams).
 * - optimistic-select.ts: a stream straight from the connection's muxer (libp2p).
 * - relay-reservations.ts: the circuit relay transport's reservation store.
 * - mdns-socket.ts: the multicast-dns socket inside @libp2p/mdns.
 * - simultaneous-open.ts: the muxer's role in a hole punch's dial (@chainsafe/libp2p-yamux).
 */
import type { Connection, Libp2p } from '@libp2p/interface'
import type { Logger } from '../../logger.js'
import { setPatchLogger } from './report.js'
import { tuneConnection } from './transport-tuning.js'

export { tuneConnection, deferWindowUpdates as tuneStream } from './transport-tuning.js'
export { openOptimisticStream, NegotiationError } from './optimistic-select.js'
export type { OptimisticStream } from './optimistic-select.js'
export { reservationStoreOf } from './relay-reservations.js'
export type { ReservationStoreView } from './relay-reservations.js'
export { mdnsSocketOf } from './mdns-socket.js'
export type { MdnsSocket } from './mdns-socket.js'
export { dialSimultaneousOpen } from './simultaneous-open.js'
export type { SimultaneousOpenDial } from './simultaneous-open.js'
export { PATCHES } from './report.js'
export type { PatchName } from './report.js'

const patchedNodes = new WeakSet<Libp2p>()

/**
 * Tunes every connection of `node`, present and future (write batching, the quiet Noise
 * decoder, unheard 'idle' events; identify and ping share the socket with our streams).
 * Streams are tuned where they are opened or handled (`tuneStream`). Idempotent; logs at
 * debug which patches applied and which were skipped.
 */
export function applyTransportPatches (node: Libp2p, log?: Logger): void {
  if (log !== undefined) setPatchLogger(log)
  if (patchedNodes.has(node)) return
  patchedNodes.add(node)
  node.addEventListener('connection:open', (evt: CustomEvent<Connection>) => { tuneConnection(evt.detail) })
  for (const conn of node.getConnections()) tuneConnection(conn)
}
