/**
 * mdns (discovery.md §7): listens to LAN responders while the step runs, dials at most
 * MDNS_MAX_ATTEMPTS_PER_POLL of them at a time, and asks `status` only of those whose
 * identify lists a TaskQueue protocol. Other libp2p nodes on the LAN are recorded
 * `not_taskqueue`, disconnected and left alone for 10 minutes, because the original
 * dialled (and kept dialling) every libp2p node it heard.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, IdentifyResult, Libp2p, PeerInfo } from '@libp2p/interface'
import { LEGACY_PROTOCOL, MCP_PROTOCOL } from '../protocol/ids.js'
import type { Discoverer, DiscoveryScope, ProbeSuccess } from './types.js'
import { filterMdnsAddrs, notTaskQueuePeers } from './mdns-candidates.js'
import type { NotTaskQueueMemory } from './mdns-candidates.js'
import { findMdns } from './mdns-service.js'

export { mdnsParts, findMdns, TaskQueueMdns, MDNS_SERVICE_TAG, MDNS_SERVICE_KEY } from './mdns-service.js'
export type { MdnsPartsOptions, MdnsLease } from './mdns-service.js'
export { classifyAddr, classifyIp } from '../node/addresses.js'
export type { AddressClass } from '../node/addresses.js'
export { filterMdnsAddrs, addrRank, NotTaskQueueMemory, notTaskQueuePeers, NOT_TASKQUEUE_TTL_MS } from './mdns-candidates.js'
export type { FilteredAddrs } from './mdns-candidates.js'

/** Budget per address, so unreachable private addresses cannot eat the step (§9.1). */
const PER_ADDRESS_DIAL_MS = 2000
const IDENTIFY_WAIT_MS = 3000
/** Margin before the chain's step timer, to conclude `no_taskqueue_peers` ourselves. */
const CONCLUDE_MARGIN_MS = 250
/** Two queries and their answer delay (RFC 6762 §6: up to 120 ms) with margin. */
export const SILENT_GIVE_UP_MS = 1500

export interface MdnsDiscovererInit {
  enabled: boolean
  node: () => Promise<Libp2p>
  allowLoopback: boolean
  maxAttemptsPerPoll: number
  /** PROTOCOL: which ids count as TaskQueue in identify (default mcp only). */
  protocols?: ReadonlyArray<'mcp' | 'legacy'>
  /**
   * The mdns step timeout (DISCOVERY_STEP_TIMEOUTS). With it, a step that found only
   * non-TaskQueue responders ends with `no_taskqueue_peers` just before the chain's
   * timer, which would otherwise record a plain `timeout` after it.
   */
  windowMs?: number
  /**
   * Issue 22: with nothing else configured and no announce file, a LAN where nobody
   * answered the first two queries (sent at once and after 1 s) will not answer later
   * either; when this returns true after SILENT_GIVE_UP_MS with no responder heard, the
   * step ends then with `timeout` (discovery.md §7: no responder) instead of at its window.
   */
  giveUpWhenSilent?: () => boolean
  /** Tests: a private memory instead of the process-wide one. */
  memory?: NotTaskQueueMemory
}

export function taskQueueProtocolIds (protocols: ReadonlyArray<'mcp' | 'legacy'> = ['mcp']): string[] {
  return protocols.map((p) => p === 'legacy' ? LEGACY_PROTOCOL : MCP_PROTOCOL)
}

/** Resolves with the identify protocols of `peerId`, or null when identify does not report in time. */
function waitIdentify (node: Libp2p, peerId: string, signal: AbortSignal): { result: Promise<string[] | null>, cancel: () => void } {
  let cancel = (): void => {}
  const result = new Promise<string[] | null>((resolve) => {
    const onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
      if (evt.detail.peerId.toString() !== peerId) return
      done()
      resolve(evt.detail.protocols)
    }
    const timer = setTimeout(() => { done(); resolve(null) }, IDENTIFY_WAIT_MS)
    const onAbort = (): void => { done(); resolve(null) }
    const done = (): void => {
      clearTimeout(timer)
      node.removeEventListener('peer:identify', onIdentify)
      signal.removeEventListener('abort', onAbort)
    }
    cancel = () => { done(); resolve(null) }
    node.addEventListener('peer:identify', onIdentify)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  return { result, cancel }
}

async function knownProtocols (node: Libp2p, peerId: string): Promise<string[]> {
  try {
    return (await node.peerStore.get(peerIdFromString(peerId))).protocols
  } catch {
    return []
  }
}

/** Dials addresses one at a time in preference order, each with its own budget. */
async function connectFirst (node: Libp2p, peerId: string, addrs: string[], signal: AbortSignal): Promise<{ conn: Connection, addr: string } | null> {
  for (const addr of addrs) {
    if (signal.aborted) return null
    const target = `${addr}/p2p/${peerId}`
    try {
      const conn = await node.dial(multiaddr(target), { signal: AbortSignal.any([signal, AbortSignal.timeout(PER_ADDRESS_DIAL_MS)]) })
      return { conn, addr: target }
    } catch {}
  }
  return null
}

export function mdnsDiscoverer (init: MdnsDiscovererInit): Discoverer {
  const memory = init.memory ?? notTaskQueuePeers
  const accepted = taskQueueProtocolIds(init.protocols)
  const maxActive = Math.max(1, init.maxAttemptsPerPoll)
  return {
    method: 'mdns',
    skipReason: () => init.enabled ? null : 'disabled',
    run: async (scope: DiscoveryScope): Promise<ProbeSuccess | null> => {
      const started = performance.now()
      const { signal } = scope
      // Registered before any await so it runs ahead of the chain's own abort handling.
      let onStepEnd: () => void = () => {}
      signal.addEventListener('abort', () => onStepEnd(), { once: true })
      if (signal.aborted) return null
      const node = await init.node()
      if (signal.aborted) return null
      const svc = findMdns(node.services)
      if (svc === null) {
        scope.fail('mdns_unavailable: this node has no mdns capability')
        return null
      }
      const self = node.peerId.toString()
      const lease = svc.acquire()

      return await new Promise<ProbeSuccess | null>((resolve) => {
        let done = false
        let active = 0
        /** Responders handled without a TaskQueue answer (not_taskqueue, dial or probe failure). */
        let failedResponders = 0
        const handled = new Set<string>()
        const queue: Array<{ peerId: string, addrs: string[] }> = []
        let concludeTimer: NodeJS.Timeout | null = null
        let unsubscribe: () => void = () => {}

        const finish = (result: ProbeSuccess | null): void => {
          if (done) return
          done = true
          if (concludeTimer !== null) clearTimeout(concludeTimer)
          unsubscribe()
          onStepEnd = () => {}
          void lease.release()
          resolve(result)
        }

        const conclude = (): void => {
          if (done) return
          if (failedResponders > 0 && active === 0 && queue.length === 0) {
            scope.fail('no_taskqueue_peers', { startedAt: started })
            finish(null)
          }
          // Otherwise: nothing heard (the chain records `timeout`) or a dial still runs.
        }

        onStepEnd = () => {
          // A step timeout after only non-TaskQueue responders; the chain adds `timeout` after this when no windowMs was given.
          if (!done && signal.reason instanceof Error && signal.reason.message === 'timeout' && failedResponders > 0 && active === 0) {
            scope.fail('no_taskqueue_peers', { startedAt: started })
          }
          finish(null)
        }

        const handle = async (peerId: string, addrs: string[]): Promise<void> => {
          const t = performance.now()
          const identify = waitIdentify(node, peerId, signal)
          const link = await connectFirst(node, peerId, addrs, signal)
          if (done) { identify.cancel(); return }
          if (link === null) {
            identify.cancel()
            failedResponders++
            scope.fail(signal.aborted ? 'timeout' : 'dial_failed', { peer_id: peerId, multiaddr: `${addrs[0]}/p2p/${peerId}`, source: 'mdns', startedAt: t })
            return
          }
          const protocols = (await identify.result) ?? await knownProtocols(node, peerId)
          if (done) return
          // Unknown protocols (identify too slow) are left to the status probe to judge.
          if (protocols.length > 0 && !protocols.some((p) => accepted.includes(p))) {
            memory.mark(peerId)
            failedResponders++
            scope.fail('not_taskqueue', { peer_id: peerId, multiaddr: link.addr, source: 'mdns', startedAt: t })
            await node.hangUp(peerIdFromString(peerId)).catch(() => {})
            return
          }
          const rest = addrs.map((a) => `${a}/p2p/${peerId}`).filter((a) => a !== link.addr)
          const r = await scope.probe([link.addr, ...rest], 'mdns', peerId)
          if (r.ok) {
            if (done) r.link.close()
            else finish(r)
          } else {
            failedResponders++
          }
        }

        const pump = (): void => {
          while (!done && active < maxActive && queue.length > 0) {
            const next = queue.shift() as { peerId: string, addrs: string[] }
            active++
            void handle(next.peerId, next.addrs).catch((err: Error) => {
              failedResponders++
              if (!done) scope.fail(`error: ${err.message}`, { peer_id: next.peerId, source: 'mdns' })
            }).finally(() => {
              active--
              pump()
              if (concludeTimer === null && init.windowMs !== undefined && performance.now() - started >= init.windowMs - CONCLUDE_MARGIN_MS) conclude()
            })
          }
        }

        const onPeer = (info: PeerInfo): void => {
          if (done) return
          const peerId = info.id.toString()
          if (peerId === self || handled.has(peerId)) return
          handled.add(peerId)
          if (scope.peerIdFilter !== null && peerId !== scope.peerIdFilter) {
            scope.fail('peer_id_mismatch', { peer_id: peerId, source: 'mdns' })
            return
          }
          if (memory.has(peerId)) {
            failedResponders++
            scope.fail('not_taskqueue', { peer_id: peerId, source: 'mdns-cache' })
            return
          }
          const { usable } = filterMdnsAddrs(info.multiaddrs, init.allowLoopback)
          if (usable.length === 0) {
            scope.fail('no_usable_address', { peer_id: peerId, source: 'mdns' })
            return
          }
          queue.push({ peerId, addrs: usable })
          pump()
        }

        unsubscribe = svc.onPeer(onPeer)
        void lease.failed.then((reason) => {
          if (done) return
          scope.fail(`mdns_unavailable: ${reason}`, { startedAt: started })
          finish(null)
        })
        if (init.giveUpWhenSilent !== undefined && scope.all !== true) {
          const giveUp = init.giveUpWhenSilent
          const silentTimer = setTimeout(() => {
            if (done || handled.size > 0 || !giveUp()) return
            scope.fail('timeout', { startedAt: started })
            finish(null)
          }, SILENT_GIVE_UP_MS)
          const clearSilent = unsubscribe
          unsubscribe = () => { clearTimeout(silentTimer); clearSilent() }
        }
        if (init.windowMs !== undefined) {
          concludeTimer = setTimeout(() => {
            concludeTimer = null
            conclude()
          }, Math.max(0, init.windowMs - CONCLUDE_MARGIN_MS))
        }
      })
    }
  }
}
