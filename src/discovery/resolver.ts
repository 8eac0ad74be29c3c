/**
 * Which TaskQueue service a client talks to (discovery.md §1): an explicit multiaddr, then
 * a remembered address for a known peer id (or the last chain winner), then the discovery
 * chain. The client supplies how a candidate is checked (`probe`: dial and ask for status)
 * and how a link to an unchecked address is made (`connect`); everything about where
 * candidates come from, their order and what is remembered lives here.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import type { Env, Settings } from '../config/index.js'
import type { NodeParts } from '../node/create-node.js'
import { withPeerId } from '../node/addresses.js'
import { AddressBook } from './address-book.js'
import { announceCandidates, announceFileDiscoverer, cacheHomeDir } from './announce-file.js'
import { bootstrapDiscoverer } from './bootstrap.js'
import { dhtDiscoverer } from './dht.js'
import { rendezvousDiscoverer } from './rendezvous/index.js'
import { mdnsDiscoverer } from './mdns.js'
import { discoveryParts } from './parts.js'
import { runDiscoveryChain } from './chain.js'
import type { ProbeOutcome } from './chain.js'
import type { Discoverer, DiscoveryTrace, FoundLink } from './types.js'
import { timeoutSignal } from '../util/timeout-signal.js'
import type { DiscoveryAttempts } from './attempts.js'

/** How long a chain's winner is tried first by later processes, and how long that check may take. */
const REMEMBERED_WINNER_MAX_AGE_S = 600
const REMEMBERED_CHECK_MS = 2000

export interface ServiceResolverOptions<L extends FoundLink> {
  settings: Settings
  env: Env
  /** Explicit target; used alone unless EXPLICIT_DISCOVERY_FALLBACK. */
  multiaddr: string | null
  /** Accept only this peer, in every mechanism. */
  peerId: string | null
  /** The only announce file read (null = ANNOUNCE_FILE rules). */
  announceFile: string | null
  /** Where remembered peer addresses are kept; undefined = the default file, null = none on disk. */
  addressBookPath?: string | null
  /** The client's node (started on first use). */
  node: () => Promise<Libp2p>
  /** Dials `addrs` and asks for status; only an ok status is a success. Honours `signal`. */
  probe: (node: Libp2p, addrs: string[], signal: AbortSignal) => Promise<ProbeOutcome<L>>
  /** A link to addresses used without a check (explicit address, no fallback). */
  connect: (node: Libp2p, addrs: string[]) => L
  /** Counts every attempt of every chain run (a client's discovery metrics). */
  attempts?: DiscoveryAttempts
}

/** A link, or why there is none (the client turns the latter into its DiscoveryError). */
export type Resolution<L> = { link: L } | { link: null, reason: string, trace?: DiscoveryTrace }

export class ServiceResolver<L extends FoundLink> {
  private readonly opts: ServiceResolverOptions<L>
  private readonly addressBook: AddressBook
  private lastBootstrap: string | null = null

  constructor (opts: ServiceResolverOptions<L>) {
    this.opts = opts
    const bookPath = opts.addressBookPath !== undefined ? opts.addressBookPath : join(cacheHomeDir(opts.env), 'ipfs_accelerate_py', 'peer_addresses.json')
    this.addressBook = new AddressBook(bookPath)
  }

  /** With an explicit address and no fallback the chain never runs. */
  explicitOnly (): boolean {
    return (this.opts.multiaddr ?? '') !== '' && !this.opts.settings.explicitDiscoveryFallback
  }

  /** The discovery services the client's node needs (none when the chain never runs). */
  nodeParts (): NodeParts[] {
    return this.explicitOnly() ? [] : discoveryParts(this.opts.settings, 'client')
  }

  async resolve (timeoutMs: number): Promise<Resolution<L>> {
    const node = await this.opts.node()
    const explicit = this.opts.multiaddr
    if (explicit !== null && explicit !== '') {
      const want = this.opts.peerId
      const addr = want !== null ? withPeerId(explicit, want) : explicit
      if (this.explicitOnly()) return { link: this.opts.connect(node, [addr]) }
      const { link, trace } = await this.runChain(timeoutMs, false, true)
      return link !== null ? { link } : { link: null, reason: 'no TaskQueue peer found (explicit address and discovery chain failed)', trace }
    }
    // A remembered address is checked with one status before it is trusted; when it
    // fails it is forgotten and the chain runs (discovery.md §1, scope).
    const peerId = this.opts.peerId
    const ns = this.opts.settings.rendezvousNs
    const remembered = peerId !== null ? this.addressBook.get(peerId) : this.addressBook.lastWinner(ns, REMEMBERED_WINNER_MAX_AGE_S)
    if (remembered !== null && remembered.length > 0) {
      const checked = await this.opts.probe(node, remembered, timeoutSignal(Math.min(timeoutMs / 2, REMEMBERED_CHECK_MS)))
      if (checked.ok && (peerId === null || checked.peerId === peerId)) return { link: checked.link }
      if (checked.ok) checked.link.close()
      if (peerId !== null) this.addressBook.forget(peerId)
      else this.addressBook.forgetWinner(ns)
    }
    const { link, trace } = await this.runChain(timeoutMs, false, false)
    return link !== null ? { link } : { link: null, reason: 'no TaskQueue peer found by discovery', trace }
  }

  /** Runs the full chain (the explicit address first, when there is one) and reports every attempt. */
  async discover (timeoutMs: number, detail: boolean, all: boolean): Promise<{ trace: DiscoveryTrace, link: L | null }> {
    return await this.runChain(timeoutMs, detail, true, all)
  }

  private discoverers (): Discoverer[] {
    const s = this.opts.settings
    const env = this.opts.env
    const envSet = (env.IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE ?? env.IPFS_DATASETS_PY_TASK_P2P_ANNOUNCE_FILE ?? '').trim() !== ''
    const announceFiles = [this.opts.announceFile, s.announceFile, ...announceCandidates()].filter((p): p is string => p !== null)
    const anyAnnounceFile = announceFiles.some((p) => existsSync(p))
    return [
      announceFileDiscoverer({
        explicitPath: this.opts.announceFile,
        envPath: s.announceFile,
        envPathSet: envSet,
        candidates: announceCandidates()
      }),
      bootstrapDiscoverer({
        peers: s.bootstrapPeers,
        dial: s.bootstrapDial,
        maxAttempts: s.bootstrapMaxAttempts,
        lastGood: () => this.lastBootstrap
      }),
      rendezvousDiscoverer({
        enabled: s.rendezvous,
        node: this.opts.node,
        namespace: s.rendezvousNs,
        points: [...s.rendezvousPoints],
        bootstrapPeers: [...s.bootstrapPeers],
        maxAttempts: s.rendezvousMaxAttempts
      }),
      dhtDiscoverer({
        enabled: s.dht,
        node: this.opts.node,
        namespace: s.rendezvousNs,
        seeds: s.bootstrapPeers,
        maxProviderAttempts: s.dhtMaxProviderAttempts
      }),
      mdnsDiscoverer({
        enabled: s.mdns,
        node: this.opts.node,
        allowLoopback: s.mdnsAllowLoopback,
        maxAttemptsPerPoll: s.mdnsMaxAttemptsPerPoll,
        protocols: [...s.protocol],
        windowMs: s.discoveryStepTimeouts.mdns * 1000,
        giveUpWhenSilent: () => s.bootstrapPeers.length === 0 && s.rendezvousPoints.length === 0 && !anyAnnounceFile
      })
    ]
  }

  private async runChain (timeoutMs: number, detail: boolean, includeExplicit: boolean, all = false): Promise<{ trace: DiscoveryTrace, link: L | null }> {
    const node = await this.opts.node()
    // The chain keeps links as FoundLink; the client gets back the very link its probe made.
    const opened: L[] = []
    const probe = async (addrs: string[], signal: AbortSignal): Promise<ProbeOutcome<L>> => {
      const outcome = await this.opts.probe(node, addrs, signal)
      if (outcome.ok) opened.push(outcome.link)
      return outcome
    }
    const discoverers = this.discoverers()
    const explicit = this.opts.multiaddr
    if (includeExplicit && explicit !== null && explicit !== '') {
      discoverers.unshift({
        method: 'explicit',
        skipReason: () => null,
        run: async (scope) => {
          const r = await scope.probe([explicit], explicit)
          return r.ok ? r : null
        }
      })
      if (this.explicitOnly()) discoverers.splice(1)
    }
    const st = this.opts.settings.discoveryStepTimeouts
    const { trace, winner } = await runDiscoveryChain({
      discoverers,
      probe,
      stepTimeoutsMs: {
        explicit: timeoutMs,
        'announce-file': st['announce-file'] * 1000 * 2,
        bootstrap: st.bootstrap * 1000,
        rendezvous: st.rendezvous * 1000,
        dht: st.dht * 1000,
        mdns: st.mdns * 1000
      },
      deadlineMs: timeoutMs,
      peerIdFilter: this.opts.peerId,
      selfPeerId: node.peerId.toString(),
      detail,
      all
    })
    this.opts.attempts?.recordTrace(trace)
    if (winner === null) return { trace, link: null }
    const peerId = winner.record.peer_id
    if (winner.record.method === 'bootstrap' && winner.record.source !== undefined) this.lastBootstrap = winner.record.source
    const addrs = [winner.record.multiaddr, ...winner.link.addrs.map(String)].filter((a, i, every) => every.indexOf(a) === i)
    if (peerId !== '') this.addressBook.remember(peerId, addrs)
    if (peerId !== '' && winner.record.method !== 'announce-file' && winner.record.method !== 'explicit') {
      this.addressBook.rememberWinner(this.opts.settings.rendezvousNs, peerId, addrs)
    }
    return { trace, link: opened.find((l) => l === winner.link) ?? null }
  }
}
