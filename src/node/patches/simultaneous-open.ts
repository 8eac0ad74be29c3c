/**
 * The dial of a TCP simultaneous open (DCUtR hole punch), where both ends dial and the
 * DCUtR roles, not the socket, decide who is the client. js-libp2p's upgrader honours
 * `initiator: false` for multistream-select and Noise (it negotiates as the inbound
 * side), but the stream muxer takes its role from the raw connection's `direction`,
 * which the TCP transport set to 'outbound': @chainsafe/libp2p-yamux then acts as a
 * client too, and both ends number their streams as clients. go-libp2p closes such a
 * session at once ("both yamux endpoints are clients"), and js yamux resets every
 * stream the peer opens. Marking the raw connection inbound before the upgrade makes
 * the muxer a server, as go-libp2p and rust-libp2p do (the muxer follows the security
 * role), and matches the 'inbound' direction the upgrader already gives the Connection.
 */
import type { Connection, Transport, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { reportPatch } from './report.js'

export interface SimultaneousOpenDial {
  signal: AbortSignal
  /** The local port the socket binds (the port announced in DCUtR CONNECT). */
  localPort: number
  /** The DCUtR role: false = the multistream, Noise and Yamux responder. */
  initiator: boolean
}

/** `upgrader` with the muxer's role following `initiator: false` (see above). */
function responderUpgrader (upgrader: Upgrader): Upgrader {
  const wrapped: Upgrader = Object.create(upgrader)
  wrapped.upgradeOutbound = async (maConn, opts) => {
    if (typeof maConn.direction === 'string') {
      maConn.direction = 'inbound'
      reportPatch('simultaneous-open-muxer-role', true)
    } else {
      reportPatch('simultaneous-open-muxer-role', false, 'multiaddr connection has no direction')
    }
    return await upgrader.upgradeOutbound(maConn, opts)
  }
  return wrapped
}

/** Dials `target` with the transport that handles it, in the given DCUtR role. */
export async function dialSimultaneousOpen (transport: Transport, upgrader: Upgrader, target: Multiaddr, opts: SimultaneousOpenDial): Promise<Connection> {
  const dialUpgrader = opts.initiator ? upgrader : responderUpgrader(upgrader)
  return await transport.dial(target, { ...opts, upgrader: dialUpgrader } as Parameters<Transport['dial']>[1])
}
