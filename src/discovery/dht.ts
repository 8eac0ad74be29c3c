/**
 * DHT (discovery.md §6): the service provides CIDv1(raw, sha2-256(namespace)) on a
 * Kademlia DHT whose protocol id is configurable, so a private swarm never mixes with
 * the public one; clients find providers (or a known peer) and dial them.
 */
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import type { KadDHT, QueryEvent } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { serviceDependencies } from '@libp2p/interface'
import type { Libp2p, Libp2pEvents, PeerId, TypedEventTarget } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { NodeParts } from '../node/create-node.js'
import type { Logger } from '../logger.js'
import { Backoff } from '../util/backoff.js'
import { MAX_TIMER_MS } from '../util/timeout-signal.js'
import type { Discoverer, DiscoveryScope, ProbeSuccess } from './types.js'
import type { DiscoveryAttempts } from './attempts.js'

/** The go-libp2p convention: the namespace's UTF-8 bytes hashed into a raw CID. */
export async function namespaceCid (namespace: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(namespace)))
}

/** The original's value record key (discovery.md §6, compatibility). */
export function legacyRecordKey (namespace: string): Uint8Array {
  return new TextEncoder().encode(`/ipfs-accelerate/task-queue/ns/${namespace}`)
}

interface LegacyRecord { peer_id: string, multiaddr: string, ts: number }

function parseLegacyRecord (value: Uint8Array): LegacyRecord {
  const rec = JSON.parse(new TextDecoder().decode(value)) as Partial<LegacyRecord>
  if (typeof rec.peer_id !== 'string' || typeof rec.multiaddr !== 'string' || typeof rec.ts !== 'number') {
    throw new Error('record needs string peer_id, string multiaddr and numeric ts')
  }
  if (!rec.multiaddr.endsWith(`/p2p/${rec.peer_id}`)) throw new Error('multiaddr must end in /p2p/<peer_id>')
  return rec as LegacyRecord
}

/** "Never" for a client's self-query: the longest timer Node accepts. */
const CLIENT_NEVER_MS = MAX_TIMER_MS

export interface DhtPartsInit {
  protocol: string
  /** Services and coordination nodes answer queries; clients only ask. */
  mode: 'server' | 'client'
}

export function dhtParts (init: DhtPartsInit): NodeParts {
  return {
    services: {
      dht: kadDHT({
        protocol: init.protocol,
        // Forced either way: js-libp2p would otherwise wait for a confirmed public address.
        clientMode: init.mode === 'client',
        // No ~1 s pause before the first query (discovery.md §6). A server walks the
        // swarm for its own id at once, which fills its table before it provides.
        initialQuerySelfInterval: init.mode === 'server' ? 0 : CLIENT_NEVER_MS,
        // A client is short-lived and asks one question: it must not wait for that
        // self-walk (libp2p gates every query on it) nor pay for its dials. It seeds its
        // table itself before asking, so an empty table never reaches a query.
        ...(init.mode === 'client' ? { allowQueryWithZeroPeers: true, querySelfInterval: CLIENT_NEVER_MS } : {}),
        // libp2p's default of 10 parallel paths opens ~15 connections at once; in a
        // client those handshakes then compete with the dial to the provider it found.
        ...(init.mode === 'client' ? { alpha: 3, disjointPaths: 1 } : {}),
        // Private and loopback addresses are exactly what LAN and test swarms use.
        peerInfoMapper: passthroughMapper,
        validators: {
          'ipfs-accelerate': async (_key, value) => { parseLegacyRecord(value) }
        },
        selectors: {
          'ipfs-accelerate': (_key, records) => {
            let best = 0
            let bestTs = -Infinity
            records.forEach((r, i) => {
              try {
                const ts = parseLegacyRecord(r).ts
                if (ts > bestTs) { best = i; bestTs = ts }
              } catch {}
            })
            return best
          }
        }
      })
    }
  }
}

export function getDht (node: Libp2p): (KadDHT & { routingTable?: { size: number } }) | null {
  const services = node.services as Record<string, unknown>
  return (services.dht as (KadDHT & { routingTable?: { size: number } }) | undefined) ?? null
}

/** Counts the peers a provide or put reached: only their replies prove the record landed. */
async function countReached (events: AsyncIterable<QueryEvent>, messageName: 'ADD_PROVIDER' | 'PUT_VALUE'): Promise<number> {
  const reached = new Set<string>()
  for await (const e of events) {
    if (e.name === 'PEER_RESPONSE' && e.messageName === messageName) reached.add(e.from.toString())
  }
  return reached.size
}

/** A provide that could not land, with its code for the attempt counts. */
class ProvideFailure extends Error {
  constructor (readonly code: 'no_routing_peers' | 'reached_no_peer', message: string) {
    super(message)
  }
}

/** What the provider takes from the node: its DHT is the `dht` service. */
export interface DhtProviderComponents {
  peerId: PeerId
  events: TypedEventTarget<Libp2pEvents>
  dht: KadDHT
}

export interface DhtProviderInit {
  namespace: string
  /** 0 = provide once, never again. */
  provideIntervalS: number
  /** The announce file's preferred address, for the original's value record. */
  preferredMultiaddr: () => string
  logger: Logger
  /** Counts each provide as a `dht` `provide` (the service's /metrics). */
  attempts?: DiscoveryAttempts
}

export interface DhtProviderState {
  provided: boolean
  last_provide_at: number | null
  peers_reached: number
  last_error: string
}

/**
 * Keeps our provider record on the DHT: provides once a routing peer exists, retries
 * a provide that reached nobody (1 s doubling to 60 s), re-provides on the interval
 * and after address changes. One timer, nothing else.
 */
export class DhtProvider {
  private readonly init: DhtProviderInit
  private timer: NodeJS.Timeout | null = null
  private running = false
  private stopped = true
  /** discovery.md §6: a failed provide is retried from 1 s, doubling to 60 s. */
  private readonly retry = new Backoff({ initialMs: 1000, maxMs: 60_000, jitter: 'none' })
  private abort = new AbortController()
  readonly state: DhtProviderState = { provided: false, last_provide_at: null, peers_reached: 0, last_error: '' }
  private readonly onChange = (): void => { this.schedule(0) }

  constructor (private readonly components: DhtProviderComponents, init: DhtProviderInit) {
    this.init = init
  }

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/dht-provider'
  readonly [serviceDependencies] = ['@libp2p/kad-dht']

  start (): void {
    this.stopped = false
    this.abort = new AbortController()
    this.components.events.addEventListener('self:peer:update', this.onChange)
    this.components.events.addEventListener('peer:identify', this.onIdentify)
    this.schedule(0)
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.abort.abort()
    if (this.timer !== null) clearTimeout(this.timer)
    this.components.events.removeEventListener('self:peer:update', this.onChange)
    this.components.events.removeEventListener('peer:identify', this.onIdentify)
  }

  private dht (): (KadDHT & { routingTable?: { size: number } }) {
    return this.components.dht
  }

  /**
   * A first DHT peer appearing is the moment a pending provide can succeed; a routing
   * table that has since doubled (still below k) means the first provide only reached
   * our neighbours, so it is worth repeating.
   */
  private readonly onIdentify = (): void => {
    if (this.running) return
    const size = this.dht().routingTable?.size ?? 0
    // Only a table that grew since the last attempt can change a failed provide's outcome.
    if (!this.state.provided) { if (size > this.sizeAtProvide) this.schedule(200) }
    else if (this.sizeAtProvide < 20 && size >= Math.max(2, this.sizeAtProvide * 2)) this.schedule(500)
  }

  private sizeAtProvide = 0

  private schedule (ms: number): void {
    if (this.stopped) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = setTimeout(() => { void this.provideOnce() }, ms)
    this.timer.unref()
  }

  private async provideOnce (): Promise<void> {
    if (this.running || this.stopped) return
    const dht = this.dht()
    this.running = true
    const log = this.init.logger
    try {
      this.sizeAtProvide = dht.routingTable?.size ?? 0
      if (this.sizeAtProvide === 0) throw new ProvideFailure('no_routing_peers', 'no routing peers yet')
      const cid = await namespaceCid(this.init.namespace)
      const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(60_000)])
      const reached = await countReached(dht.provide(cid, { signal }), 'ADD_PROVIDER')
      if (reached === 0) throw new ProvideFailure('reached_no_peer', 'the provide reached no peer')
      Object.assign(this.state, { provided: true, last_provide_at: Date.now() / 1000, peers_reached: reached, last_error: '' })
      this.init.attempts?.record('dht', 'provide', 'ok')
      log.info({ peers: reached, cid: cid.toString() }, 'DHT provider record published')
      this.retry.reset()
      void this.putLegacyRecord(signal)
      if (this.init.provideIntervalS > 0) this.schedule(this.init.provideIntervalS * 1000)
    } catch (err) {
      if (this.stopped) return
      this.state.last_error = (err as Error).message
      this.init.attempts?.record('dht', 'provide', err instanceof ProvideFailure ? err.code : 'failed')
      const retryMs = this.retry.next()
      log.debug({ err: this.state.last_error, retryMs }, 'DHT provide failed; retrying')
      this.schedule(retryMs)
    } finally {
      this.running = false
    }
  }

  /** So that original clients still find us (best effort; they cannot read provider records for a CID). */
  private async putLegacyRecord (signal: AbortSignal): Promise<void> {
    const dht = this.dht()
    const value = new TextEncoder().encode(JSON.stringify({
      peer_id: this.components.peerId.toString(),
      multiaddr: this.init.preferredMultiaddr(),
      ts: Date.now() / 1000
    }))
    try {
      await countReached(dht.put(legacyRecordKey(this.init.namespace), value, { signal }), 'PUT_VALUE')
    } catch (err) {
      this.init.logger.debug({ err: (err as Error).message }, 'DHT value record not stored')
    }
  }
}

export function dhtProvider (init: DhtProviderInit): (components: DhtProviderComponents) => DhtProvider {
  return (components) => new DhtProvider(components, init)
}

export interface DhtDiscovererInit {
  enabled: boolean
  node: () => Promise<Libp2p>
  namespace: string
  /** Routing seeds: the bootstrap peers (at most 8 are dialled). */
  seeds: readonly string[]
  maxProviderAttempts: number
}

const MAX_SEEDS = 8

/** Dials seeds until one speaks our DHT protocol and sits in the routing table. */
async function seedRoutingTable (node: Libp2p, dht: NonNullable<ReturnType<typeof getDht>>, seeds: readonly string[], signal: AbortSignal): Promise<boolean> {
  if ((dht.routingTable?.size ?? 0) > 0) return true
  const added = new Promise<boolean>((resolve) => {
    const check = (): void => {
      if ((dht.routingTable?.size ?? 0) > 0) { cleanup(); resolve(true) }
    }
    const timer = setInterval(check, 20)
    const cleanup = (): void => { clearInterval(timer); signal.removeEventListener('abort', onAbort) }
    const onAbort = (): void => { cleanup(); resolve(false) }
    signal.addEventListener('abort', onAbort, { once: true })
    const dials = seeds.slice(0, MAX_SEEDS).map(async (s) => await node.dial(multiaddr(s), { signal }).catch(() => null))
    void Promise.all(dials).then(async (conns) => {
      // Identify (and so the routing table) follows the dial; give it a moment, then give up.
      if (conns.every((c) => c === null)) { cleanup(); resolve(false); return }
      await new Promise((r) => setTimeout(r, 2000))
      check()
      cleanup()
      resolve((dht.routingTable?.size ?? 0) > 0)
    })
  })
  return await added
}

export function dhtDiscoverer (init: DhtDiscovererInit): Discoverer {
  return {
    method: 'dht',
    skipReason: () => !init.enabled ? 'disabled' : init.seeds.length === 0 ? 'no_routing_peers' : null,
    run: async (scope: DiscoveryScope): Promise<ProbeSuccess | null> => {
      const node = await init.node()
      const dht = getDht(node)
      if (dht === null) { scope.fail('disabled'); return null }
      const started = performance.now()
      if (!await seedRoutingTable(node, dht, init.seeds, scope.signal)) {
        if (!scope.signal.aborted) scope.fail('no_routing_peers', { startedAt: started })
        return null
      }
      if (scope.peerIdFilter !== null) return await findPeerAndDial(node, dht, scope, scope.peerIdFilter)
      return await findProvidersAndDial(node, dht, init, scope)
    }
  }
}

async function findPeerAndDial (node: Libp2p, dht: KadDHT, scope: DiscoveryScope, peerId: string): Promise<ProbeSuccess | null> {
  const started = performance.now()
  let target: PeerId
  try {
    target = peerIdFromString(peerId)
  } catch {
    scope.fail('peer_not_found', { source: 'find_peer', peer_id: peerId, startedAt: started })
    return null
  }
  const addrs = await resolvePeerAddrs(dht, target, scope.signal)
  if (addrs.length === 0) {
    if (!scope.signal.aborted) scope.fail('peer_not_found', { source: 'find_peer', peer_id: peerId, startedAt: started })
    return null
  }
  const r = await scope.probe(addrs, 'find_peer', peerId)
  return r.ok ? r : null
}

async function resolvePeerAddrs (dht: KadDHT, target: PeerId, signal: AbortSignal): Promise<string[]> {
  try {
    for await (const e of dht.findPeer(target, { signal })) {
      if (e.name === 'FINAL_PEER' && e.peer.id.equals(target)) return e.peer.multiaddrs.map(String)
    }
  } catch {}
  return []
}

/** Lookups per discovery when the providers found first do not answer. */
const LOOKUP_ROUNDS = 3

async function findProvidersAndDial (node: Libp2p, dht: KadDHT, init: DhtDiscovererInit, scope: DiscoveryScope): Promise<ProbeSuccess | null> {
  const started = performance.now()
  const self = node.peerId.toString()
  const cid = await namespaceCid(init.namespace)
  const seen = new Set<string>()
  const probes: Array<Promise<ProbeSuccess | null>> = []
  let attempts = 0

  const probeProvider = async (p: { id: PeerId, multiaddrs: Array<{ toString: () => string }> }): Promise<ProbeSuccess | null> => {
    const id = p.id.toString()
    // A provider listed without addresses is resolved first.
    const addrs = p.multiaddrs.length > 0 ? p.multiaddrs.map(String) : await resolvePeerAddrs(dht, p.id, scope.signal)
    if (addrs.length === 0) {
      scope.fail('peer_not_found', { source: 'providers', peer_id: id })
      return null
    }
    const r = await scope.probe(addrs, 'providers', id)
    return r.ok ? r : null
  }

  // Outside --all, the lookup pauses at the first providers: its remaining dials would
  // only compete with the probe. If none of them answers, a new lookup goes on.
  const rounds = scope.all === true ? 1 : LOOKUP_ROUNDS
  for (let round = 0; round < rounds && !scope.signal.aborted; round++) {
    const lookup = new AbortController()
    const signal = AbortSignal.any([scope.signal, lookup.signal])
    const batch: Array<Promise<ProbeSuccess | null>> = []
    try {
      for await (const e of dht.findProviders(cid, { signal })) {
        if (e.name !== 'PROVIDER') continue
        for (const p of e.providers) {
          const id = p.id.toString()
          if (id === self || seen.has(id)) continue
          seen.add(id)
          if (attempts >= init.maxProviderAttempts) {
            scope.fail('attempt_limit', { source: 'providers', peer_id: id })
            continue
          }
          attempts++
          batch.push(probeProvider(p))
        }
        if (batch.length > 0 && scope.all !== true) break
      }
    } catch {
      // The lookup was aborted (the step timeout) or ran out of peers.
    } finally {
      lookup.abort()
    }
    probes.push(...batch)
    if (scope.all === true) break
    const found = await firstSuccess(batch)
    if (found !== null) {
      void Promise.all(batch).then((all) => { for (const r of all) if (r !== null && r !== found) r.link.close() })
      return found
    }
    if (batch.length === 0 || attempts >= init.maxProviderAttempts) break
  }
  const all = await Promise.all(probes)
  const found = all.find((r) => r !== null) ?? null
  for (const r of all) if (r !== null && r !== found) r.link.close()
  if (found !== null || seen.size > 0 || scope.signal.aborted) return found
  // No provider record: original services only put their value record (discovery.md §6).
  const fromRecord = await probeLegacyRecord(dht, init.namespace, self, scope)
  if (fromRecord === null && !scope.signal.aborted) scope.fail('no_providers', { source: 'providers', startedAt: started })
  return fromRecord
}

/** Reads the original's value record for the namespace and dials the service it names. */
async function probeLegacyRecord (dht: KadDHT, namespace: string, self: string, scope: DiscoveryScope): Promise<ProbeSuccess | null> {
  let best: LegacyRecord | null = null
  try {
    for await (const e of dht.get(legacyRecordKey(namespace), { signal: scope.signal })) {
      if (e.name !== 'VALUE') continue
      try {
        const rec = parseLegacyRecord(e.value)
        if (rec.peer_id !== self && (best === null || rec.ts > best.ts)) best = rec
      } catch {}
    }
  } catch {
    // No peer had the record, or the step timed out.
  }
  if (best === null) return null
  const r = await scope.probe([best.multiaddr], 'value_record', best.peer_id)
  return r.ok ? r : null
}

async function firstSuccess (probes: Array<Promise<ProbeSuccess | null>>): Promise<ProbeSuccess | null> {
  if (probes.length === 0) return null
  return await new Promise((resolve) => {
    let pending = probes.length
    for (const p of probes) {
      void p.then((r) => {
        pending--
        if (r !== null) resolve(r)
        else if (pending === 0) resolve(null)
      })
    }
  })
}
