/**
 * Which discovery capabilities a node carries, by role (discovery.md §1, cli.md §2):
 * a service advertises (DHT server, mDNS responder, rendezvous point + registration),
 * a coordination node only helps others find each other, and clients only ask.
 */
import type { Role, Settings } from '../config/index.js'
import type { NodeParts } from '../node/create-node.js'
import { dhtParts } from './dht.js'
import { rendezvousPoint, rendezvousRegistrar } from './rendezvous/index.js'
import { mdnsParts } from './mdns.js'
import type { Logger } from '../logger.js'
import type { DiscoveryAttempts } from './attempts.js'

/** `attempts` counts the service's own discovery work (its rendezvous registrations) for /metrics. */
export function discoveryParts (s: Settings, role: Role, logger?: Logger, attempts?: DiscoveryAttempts): NodeParts[] {
  const parts: NodeParts[] = []
  const advertises = role === 'serve' || role === 'relay'
  if (s.dht) parts.push(dhtParts({ protocol: s.dhtProtocol, mode: advertises ? 'server' : 'client' }))
  if (s.rendezvous && advertises) {
    // Any service or coordination node is a point; a service also lists itself (discovery.md §5).
    const services: NonNullable<NodeParts['services']> = {
      rendezvous: rendezvousPoint(role === 'serve' ? { self: () => ({ namespaces: [s.rendezvousNs] }) } : {})
    }
    if (role === 'serve') {
      services.rendezvousRegistrar = rendezvousRegistrar({
        namespace: s.rendezvousNs,
        points: [...s.rendezvousPoints],
        bootstrapPeers: [...s.bootstrapPeers],
        logger,
        attempts
      })
    }
    parts.push({ services })
  }
  // A coordination node lives on the WAN, where multicast does not reach.
  if (s.mdns && role !== 'relay') parts.push(mdnsParts({ role: role === 'serve' ? 'service' : 'client', logger }))
  return parts
}
