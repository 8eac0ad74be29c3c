/**
 * `taskqueue-p2p relay` assembled (cli.md §2.3): the stable, reachable node of a WAN
 * setup. It is a rendezvous point, a DHT server and (via the NAT parts) a Circuit
 * Relay v2 HOP server and AutoNAT responder — and nothing else: no queue, no tools,
 * no cache, no announce file, because it is not a TaskQueue endpoint.
 */
import type { Settings } from '../config/index.js'
import { loadOrCreateIdentity } from '../node/identity.js'
import { createListeningNode } from '../node/listen.js'
import type { TaskQueueNode } from '../node/create-node.js'
import { withPeerId } from '../node/addresses.js'
import { discoveryParts } from '../discovery/parts.js'
import { BootstrapKeeper } from '../discovery/bootstrap-keeper.js'
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

export async function startCoordinationNode (s: Settings, logger?: Logger): Promise<CoordinationNode> {
  const log = logger ?? silentLogger()
  const privateKey = await loadOrCreateIdentity(s.identityFile)
  const node = await createListeningNode(s, privateKey, [...discoveryParts(s, 'relay', log), natParts(s, 'relay', { logger: log })], log)
  // Other coordination nodes given as bootstrap peers join one DHT and share clients.
  const bootstrap = new BootstrapKeeper({ node, peers: s.bootstrapPeers, logger: log })
  bootstrap.start()
  const peerId = node.peerId.toString()
  return {
    peerId,
    node,
    bootstrap,
    multiaddrs: () => node.getMultiaddrs().map((a) => withPeerId(a, peerId)),
    stop: async () => {
      bootstrap.stop()
      await node.stop()
    }
  }
}
