/**
 * `taskqueue-p2p relay` assembled (cli.md §2.3): the stable, reachable node of a WAN
 * setup. It is a rendezvous point, a DHT server and (via the NAT parts) a Circuit
 * Relay v2 HOP server and AutoNAT responder — and nothing else: no queue, no tools,
 * no cache, no announce file, because it is not a TaskQueue endpoint.
 */
import type { Settings } from '../config/index.js'
import { loadOrCreateIdentity } from '../node/identity.js'
import { createListeningNode } from '../node/listen.js'
import type { ServiceFactory, TaskQueueNode } from '../node/create-node.js'
import { withPeerId } from '../node/addresses.js'
import { discoveryParts } from '../discovery/parts.js'
import { bootstrapKeeper } from '../discovery/bootstrap-keeper.js'
import type { BootstrapKeeper } from '../discovery/bootstrap-keeper.js'
import { natParts } from '../nat/parts.js'
import type { Logger } from '../logger.js'
import { silentLogger } from '../logger.js'

export interface CoordinationNode {
  readonly peerId: string
  /** Announced addresses, each with /p2p/. */
  multiaddrs: () => string[]
  readonly node: TaskQueueNode
  readonly bootstrap: BootstrapKeeper
  stop: () => Promise<void>
}

/** One libp2p node; its bootstrap keeper is one of its services, so stopping is the node's stop. */
export async function startCoordinationNode (s: Settings, logger?: Logger): Promise<CoordinationNode> {
  const log = logger ?? silentLogger()
  const privateKey = await loadOrCreateIdentity(s.identityFile)
  // Other coordination nodes given as bootstrap peers join one DHT and share clients.
  const services: Record<string, ServiceFactory> = { bootstrapKeeper: bootstrapKeeper({ peers: s.bootstrapPeers, logger: log }) as ServiceFactory }
  const node = await createListeningNode(s, privateKey, [...discoveryParts(s, 'relay', log), natParts(s, 'relay', { logger: log }), { services }], log)
  const peerId = node.peerId.toString()
  return {
    peerId,
    node,
    bootstrap: (node.services as Record<string, unknown>).bootstrapKeeper as BootstrapKeeper,
    multiaddrs: () => node.getMultiaddrs().map((a) => withPeerId(a, peerId)),
    stop: async () => { await node.stop() }
  }
}
