/**
 * rendezvous in the discovery chain (discovery.md §5 "Client"): DISCOVER at every point
 * concurrently, then probe registered peers at the addresses of their verified
 * records, starting each probe as soon as its page arrives. The first ok:true wins.
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Discoverer, DiscoveryScope, ProbeSuccess } from '../types.js'
import { RendezvousError, discoverMany } from './client.js'
import type { DiscoveredRegistration } from './client.js'
import { RENDEZVOUS_PROTOCOL } from './proto.js'
import { peerIdOfMultiaddr } from './record.js'
import { raceSignal } from './wire.js'

export interface RendezvousDiscovererInit {
  enabled: boolean
  node: () => Promise<Libp2p>
  namespace: string
  /** RENDEZVOUS_POINTS; when empty, bootstrap peers that speak the protocol are the points. */
  points: string[]
  bootstrapPeers: string[]
  /** RENDEZVOUS_MAX_ATTEMPTS: registered peers probed at most. */
  maxAttempts: number
  /** DISCOVER page size (spec: 100). */
  pageLimit?: number
  /** Bound on cookie-following round trips per point. */
  maxPages?: number
}

interface PointTarget {
  source: string
  target: Multiaddr
  /** Came from BOOTSTRAP_PEERS: not speaking rendezvous is then normal, not an error. */
  fromBootstrap: boolean
}

/** Addresses to dial, each ending in `/p2p/<peerId>` so the handshake checks who answers (circuit ones included). */
function dialAddresses (reg: DiscoveredRegistration): string[] {
  const out: string[] = []
  for (const a of reg.multiaddrs) {
    try {
      const ma = multiaddr(a)
      out.push(peerIdOfMultiaddr(ma) === reg.peerId ? a : ma.encapsulate(`/p2p/${reg.peerId}`).toString())
    } catch {}
  }
  return out
}

/** Whether the peer store already knows (from identify) that this peer is not a point. */
async function knownNotPoint (node: Libp2p, target: Multiaddr): Promise<boolean> {
  const id = peerIdOfMultiaddr(target)
  if (id === null) return false
  let peerId: PeerId
  try {
    peerId = peerIdFromString(id)
  } catch {
    return false
  }
  const peer = await node.peerStore.get(peerId).catch(() => null)
  return peer !== null && peer.protocols.length > 0 && !peer.protocols.includes(RENDEZVOUS_PROTOCOL)
}

export function rendezvousDiscoverer (init: RendezvousDiscovererInit): Discoverer {
  const usingBootstrap = init.points.length === 0
  return {
    method: 'rendezvous',
    skipReason: () => !init.enabled ? 'disabled' : init.points.length === 0 && init.bootstrapPeers.length === 0 ? 'no_rendezvous_point' : null,
    run: async (scope: DiscoveryScope): Promise<ProbeSuccess | null> => {
      let node: Libp2p
      try {
        node = await raceSignal(init.node(), scope.signal)
      } catch {
        return null
      }
      const self = node.peerId.toString()
      const filter = scope.peerIdFilter
      // Background work must stop (and stop recording) once a winner is chosen.
      const done = new AbortController()
      const signal = AbortSignal.any([scope.signal, done.signal])
      const targets: PointTarget[] = []
      for (const source of usingBootstrap ? init.bootstrapPeers : init.points) {
        try {
          targets.push({ source, target: multiaddr(source), fromBootstrap: usingBootstrap })
        } catch {
          scope.fail('point_unreachable', { source, multiaddr: source })
        }
      }

      let settled = false
      let resolveRun: (value: ProbeSuccess | null) => void = () => {}
      const result = new Promise<ProbeSuccess | null>((resolve) => { resolveRun = resolve })
      const finish = (value: ProbeSuccess | null): void => {
        if (settled) return
        settled = true
        done.abort(new Error('cancelled'))
        resolveRun(value)
      }
      let pending = 0
      const release = (): void => {
        if (--pending === 0) finish(null)
      }
      const offered = new Set<string>()
      let attempts = 0
      let pointsAnswered = 0
      let pointsFailed = 0

      const offer = (reg: DiscoveredRegistration, addrs: string[], source: string): void => {
        if (settled || offered.has(reg.peerId)) return
        offered.add(reg.peerId)
        if (attempts >= init.maxAttempts) {
          scope.fail('attempt_limit', { source, peer_id: reg.peerId, multiaddr: addrs[0] })
          return
        }
        attempts++
        pending++
        scope.probe(addrs, source, reg.peerId).then((r) => {
          if (r.ok && settled) r.link.close()
          else if (r.ok) finish(r)
        }, () => {}).finally(release)
      }

      const queryPoint = async (point: PointTarget): Promise<void> => {
        const startedAt = performance.now()
        if (point.fromBootstrap && await knownNotPoint(node, point.target)) return
        let usable = 0
        let mismatched = 0
        try {
          await discoverMany(node, point.target, init.namespace, {
            limit: init.pageLimit ?? 100,
            maxPages: init.maxPages ?? 10,
            signal,
            want: Number.MAX_SAFE_INTEGER,
            // Page on only while nothing has won and candidates are still wanted.
            more: () => !settled && attempts < init.maxAttempts && (filter === null || !offered.has(filter)),
            onPage: (page) => {
              for (const reg of page.registrations) {
                if (reg.peerId === self) continue
                if (filter !== null && reg.peerId !== filter) {
                  mismatched++
                  continue
                }
                // A record without addresses cannot be dialled: it is not a candidate.
                const addrs = dialAddresses(reg)
                if (addrs.length === 0) continue
                usable++
                offer(reg, addrs, point.source)
              }
            }
          })
          pointsAnswered++
        } catch (err) {
          if (settled || scope.signal.aborted) return
          const code = err instanceof RendezvousError ? err.code : 'point_unreachable'
          // A bootstrap peer that is merely not a point is normal (a relay, a DHT node).
          if (point.fromBootstrap && code === 'protocol_not_supported') return
          pointsFailed++
          const error = code.startsWith('E_') ? `point_error:${code}` : code === 'protocol_error' ? 'point_error:protocol_error' : code === 'aborted' ? 'point_unreachable' : code
          scope.fail(error, { source: point.source, multiaddr: point.source, startedAt })
          return
        }
        if (settled || usable > 0) return
        scope.fail(mismatched > 0 ? 'peer_id_mismatch' : 'no_registrations', { source: point.source, multiaddr: point.source, startedAt })
      }

      pending++
      for (const point of targets) {
        pending++
        queryPoint(point).catch(() => {}).finally(release)
      }
      // Released last, so a run with no reachable point still ends once everything has.
      release()
      const abortRun = (): void => finish(null)
      scope.signal.addEventListener('abort', abortRun, { once: true })
      if (scope.signal.aborted) abortRun()
      const winner = await result
      scope.signal.removeEventListener('abort', abortRun)
      if (winner === null && usingBootstrap && !scope.signal.aborted && pointsAnswered === 0 && pointsFailed === 0) {
        scope.fail('no_rendezvous_point')
      }
      return winner
    }
  }
}
