/**
 * Client side of "direct or relayed" (issue 4.3): what kind of connection a call used,
 * and — with HOLEPUNCH on — a bounded wait for the DCUtR upgrade that starts as soon as
 * a relayed connection is identified, so the discover trace can say what the caller
 * will actually use from then on.
 */
import type { Connection, Libp2p } from '@libp2p/interface'
import { isRelayedConnection } from './addrs.js'
import { holePunchOf } from './report.js'

export type ConnectionKind = 'direct' | 'relayed'

export function connectionKindOf (conn: Pick<Connection, 'limits' | 'remoteAddr'>): ConnectionKind {
  return isRelayedConnection(conn) ? 'relayed' : 'direct'
}

/** Kind of the best open connection to `peerId` (direct preferred), or null when none. */
export function currentKind (node: Libp2p, peerId: string): ConnectionKind | null {
  const conns = node.getConnections().filter((c) => c.remotePeer.toString() === peerId && c.status === 'open')
  if (conns.length === 0) return null
  return conns.some((c) => connectionKindOf(c) === 'direct') ? 'direct' : 'relayed'
}

/**
 * Resolves 'direct' once a direct connection to `peerId` is open, 'relayed' when this
 * node does no hole punching, the punch failed, `maxWaitMs` passed or `signal` fired.
 */
export async function awaitDirect (node: Libp2p, peerId: string, maxWaitMs: number, signal?: AbortSignal): Promise<ConnectionKind> {
  if (currentKind(node, peerId) === 'direct') return 'direct'
  const punch = holePunchOf(node)
  if (punch === null || maxWaitMs <= 0 || signal?.aborted === true) return 'relayed'
  // A punch that already ended (fast links finish it while the status call is in flight).
  const last = punch.snapshot().recent.filter((r) => r.peer_id === peerId).pop()
  if (last !== undefined && Date.now() - last.at < 10_000 && last.outcome !== 'direct') return currentKind(node, peerId) ?? 'relayed'
  return await new Promise<ConnectionKind>((resolve) => {
    const done = (kind: ConnectionKind): void => {
      clearTimeout(timer)
      node.removeEventListener('connection:open', onOpen)
      signal?.removeEventListener('abort', onAbort)
      stopListening()
      resolve(kind)
    }
    const onOpen = (evt: CustomEvent<Connection>): void => {
      if (evt.detail.remotePeer.toString() === peerId && connectionKindOf(evt.detail) === 'direct') done('direct')
    }
    const onAbort = (): void => done(currentKind(node, peerId) ?? 'relayed')
    const stopListening = punch.onOutcome((peer, outcome) => {
      if (peer === peerId) done(outcome === 'direct' || currentKind(node, peerId) === 'direct' ? 'direct' : 'relayed')
    })
    const timer = setTimeout(onAbort, maxWaitMs)
    node.addEventListener('connection:open', onOpen)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
