/**
 * How the client checks a discovery candidate: dial it, ask for `status`, and only an
 * ok reply counts. A relayed connection with HOLEPUNCH on waits (bounded) for the DCUtR
 * upgrade, so the link the caller keeps, and the trace, are the direct one when it worked.
 */
import type { Libp2p } from '@libp2p/interface'
import { withoutPeerId } from '../node/addresses.js'
import { awaitDirect } from '../nat/connection-kind.js'
import type { ConnectionKind } from '../nat/connection-kind.js'
import type { ProbeOutcome } from '../discovery/chain.js'
import { ClientError, DeadlineError, ProtocolNotSupportedError } from './errors.js'
import type { PeerLink } from './peer-link.js'

/** How long a relayed probe waits for the hole punch to give a direct connection. */
const DIRECT_UPGRADE_WAIT_MS = 3000

export interface StatusProbeOptions {
  /** Builds a (not yet connected) link to `addrs`. */
  newLink: (node: Libp2p, addrs: string[]) => PeerLink
  token: string | null
  timeoutMs: number
  holepunch: boolean
}

export async function probeStatus (node: Libp2p, addrs: string[], signal: AbortSignal, opts: StatusProbeOptions): Promise<ProbeOutcome<PeerLink>> {
  let link: PeerLink
  try {
    link = opts.newLink(node, addrs)
  } catch (err) {
    return { ok: false, error: 'invalid_multiaddr', peerId: '', multiaddr: addrs[0] ?? '' }
  }
  const abort = (): void => link.close()
  signal.addEventListener('abort', abort, { once: true })
  try {
    const env: Record<string, unknown> = { op: 'status', detail: false, timeout_s: 5 }
    if (opts.token !== null) env.token = opts.token
    const response = await link.call(env, { timeoutMs: opts.timeoutMs })
    const peerId = link.remotePeerId ?? ''
    const dialled = link.connectedAddr !== null ? `${withoutPeerId(link.connectedAddr)}/p2p/${peerId}` : addrs[0]
    if (response.ok !== true) {
      link.close()
      return { ok: false, error: typeof response.error === 'string' ? response.error : 'status_failed', peerId, multiaddr: dialled, response }
    }
    let connection: ConnectionKind = link.connectionKind ?? 'direct'
    if (connection === 'relayed' && opts.holepunch) {
      connection = await awaitDirect(node, peerId, DIRECT_UPGRADE_WAIT_MS, signal)
      if (connection === 'direct') {
        const relayed = link
        link = opts.newLink(node, addrs)
        relayed.close()
      }
    }
    return { ok: true, link, peerId, multiaddr: dialled, response, connection }
  } catch (err) {
    link.close()
    const code = err instanceof ProtocolNotSupportedError
      ? 'protocol_not_supported'
      : err instanceof DeadlineError ? 'timeout' : err instanceof ClientError ? err.code : 'dial_failed'
    return { ok: false, error: code, peerId: link.remotePeerId ?? '', multiaddr: addrs[0] ?? '' }
  } finally {
    signal.removeEventListener('abort', abort)
  }
}
