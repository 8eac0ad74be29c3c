/**
 * NAT traversal capabilities (discovery.md §9) as node parts, by role:
 *
 * | part                    | client | serve                 | relay (coordination) |
 * |-------------------------|--------|-----------------------|----------------------|
 * | circuit transport (dial)| yes    | yes                   | yes                  |
 * | reservations            | —      | RELAY=1               | —                    |
 * | HOP server              | —      | RELAY=1 + RELAY_HOP=1 | always               |
 * | AutoNAT                 | —      | AUTONAT (probe+answer)| AUTONAT (probe+answer)|
 * | DCUtR with prediction   | HOLEPUNCH | HOLEPUNCH          | —                    |
 *
 * Every node can dial `/p2p-circuit` addresses: that is inert until a peer advertises
 * one, and it is what lets a client on the WAN reach a NATed service without any extra
 * setting (cli.md §2.3 asks RELAY=1 of NATed services only).
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Settings, Role } from '../config/index.js'
import type { NodeParts, ServiceFactory } from '../node/create-node.js'
import type { Logger } from '../logger.js'
import { autoNatService } from './autonat.js'
import type { AutoNatComponents, AutoNatService, Reachability } from './autonat.js'
import { holePunchService } from './holepunch.js'
import { relayKeeperService } from './relay-keeper.js'
import { relayServerService } from './relay-server.js'
import { classifyIp, ipPortOf, isCircuitAddr, isPublicTcpAddr, isRelayedConnection } from './addrs.js'

/** Names of the NAT services in `node.services`. */
export const NAT_SERVICES = {
  relayServer: 'natRelayServer',
  relayKeeper: 'natRelayKeeper',
  autonat: 'natAutonat',
  holepunch: 'natHolepunch',
  relayedCloser: 'natRelayedCloser'
} as const

/**
 * Aborts relayed connections as the node begins to stop. Closing one gracefully
 * afterwards never settles once the connection to the relay that carries it is closed
 * first, and node.stop() then hangs (measured: RemoteQueue.close() over a relayed
 * connection never returned; with this, it does at once).
 */
class RelayedConnectionCloser {
  constructor (private readonly c: { connectionManager: ConnectionManager }) {}
  readonly [Symbol.toStringTag] = 'taskqueue-p2p/relayed-connection-closer'
  start (): void {}
  stop (): void {}
  beforeStop (): void {
    for (const conn of this.c.connectionManager.getConnections()) {
      if (isRelayedConnection(conn)) conn.abort(new Error('node stopping'))
    }
  }
}

export interface NatPartsOptions {
  logger?: Logger
}

/** Whether this role runs a HOP server with these settings. */
export function hopEnabled (s: Settings, role: Role): boolean {
  return role === 'relay' || (role === 'serve' && s.relay && s.relayHop)
}

/**
 * What a node may tell others about itself once AutoNAT has spoken: while it says
 * `private`, public direct addresses (a stale PUBLIC_IP, an unforwarded port) do not
 * work, so only relay circuits and LAN addresses (which work inside the LAN, and which
 * libp2p dials after public and relayed ones) are announced.
 */
export function reachableAnnounceFilter (reachability: () => Reachability): (addrs: Multiaddr[]) => Multiaddr[] {
  return (addrs) => {
    // A circuit through the relay's loopback address only works on the relay's host.
    const useful = addrs.filter((a) => !isCircuitAddr(a) || classifyIp(ipPortOf(a)?.ip ?? '') !== 'loopback')
    return reachability() !== 'private' ? useful : useful.filter((a) => isCircuitAddr(a) || !isPublicTcpAddr(a))
  }
}

export function natParts (s: Settings, role: Role, opts: NatPartsOptions = {}): NodeParts {
  const log = opts.logger
  const services: Record<string, ServiceFactory> = {}
  const hop = hopEnabled(s, role)
  let autonat: AutoNatService | null = null

  if (hop) {
    services[NAT_SERVICES.relayServer] = relayServerService({
      maxReservations: s.relayMaxReservations,
      maxCircuitDurationS: s.relayMaxCircuitDurationS,
      maxCircuitBytes: s.relayMaxCircuitBytes
    }) as ServiceFactory
  }
  if (role === 'serve' && s.relay) {
    services[NAT_SERVICES.relayKeeper] = relayKeeperService({ relays: s.relayPeers, max: 2 }) as ServiceFactory
  }
  if (s.autonat && role !== 'client' && role !== 'worker') {
    const factory = autoNatService({
      probe: true,
      onChange: (status) => {
        log?.info({ reachability: status }, 'AutoNAT reachability changed')
        if (hop && status === 'private') log?.warn('this node relays for others (HOP) but AutoNAT says it is not reachable from outside: relayed connections through it will fail')
      }
    })
    services[NAT_SERVICES.autonat] = ((components: AutoNatComponents) => {
      autonat = factory(components)
      return autonat
    }) as ServiceFactory
  }
  if (s.holepunch && role !== 'relay') {
    services[NAT_SERVICES.holepunch] = holePunchService() as ServiceFactory
  }
  services[NAT_SERVICES.relayedCloser] = ((components: { connectionManager: ConnectionManager }) => new RelayedConnectionCloser(components)) as ServiceFactory
  return {
    transports: [circuitRelayTransport({ reservationCompletionTimeout: 10_000 })],
    services,
    announceFilter: reachableAnnounceFilter(() => autonat?.status() ?? 'unknown')
  }
}
