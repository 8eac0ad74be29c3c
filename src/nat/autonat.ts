/**
 * AutoNAT v1 (discovery.md §9.3), both halves, on the standard protocol id:
 *
 * - responder: a peer asks us to dial it back at the addresses it sends; we dial each
 *   eligible one on a NEW connection and say whether it worked;
 * - prober: we ask connected peers to dial us back, and derive our reachability
 *   (`public` when a peer reached us, `private` when peers tried and failed, `unknown`
 *   otherwise), confirming reachable addresses so libp2p announces them.
 *
 * Why not @libp2p/autonat: its responder dials with `openConnection` without `force`,
 * which hands back the connection the request arrived on, whose remote address is the
 * requester's ephemeral port, so every request is answered E_DIAL_ERROR; and its prober
 * needs 4 successes (or 8 failures) from distinct /8 networks before it concludes, which
 * a small deployment with one relay never reaches. It also exposes no reachability.
 */
import type { Connection, IdentifyResult, Logger, Stream } from '@libp2p/interface'
import type { NatComponents } from './components.js'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { AUTONAT_PROTOCOL, AutoNatStatus, PbStream, withSignal } from './pb.js'
import { ipPortOf, isCircuitAddr, isPrivateIp, isPublicTcpAddr, isRelayedConnection, tcpAddr } from './addrs.js'

export type Reachability = 'unknown' | 'public' | 'private'
export const REACHABILITY_CODE: Record<Reachability, number> = { unknown: 0, public: 1, private: 2 }

export type AutoNatComponents = NatComponents

export interface AutoNatInit {
  /** Ask peers to dial us back (false for pure responders). */
  probe: boolean
  /** Dial-back and request timeout. */
  timeoutMs?: number
  /** Re-probe interval once reachability is known. */
  refreshMs?: number
  /** Re-probe interval while it is unknown. */
  unknownRefreshMs?: number
  /** How long one peer's answer counts. */
  resultTtlMs?: number
  onChange?: (status: Reachability) => void
}

interface ProbeResult { ok: boolean, addr: string, at: number }

export interface AutoNatSnapshot {
  status: Reachability
  code: number
  /** Addresses a peer dialled back successfully. */
  confirmed: string[]
  /** Public IPs peers saw us connect from (identify). */
  observed_ips: string[]
  probes: number
  /** Per peer: its latest answer. */
  results: Array<{ peer_id: string, ok: boolean, addr: string, at: number }>
}

const MAX_CONCURRENT_DIAL_BACKS = 4
/** How long a probe waits for the answer: go-libp2p's server dials back for up to 15 s, its client waits 30 s. */
const PEER_DIAL_BACK_WAIT_MS = 30_000
/** Ports tried per request, one after another: within the 30 s a go-libp2p client waits. */
const MAX_DIAL_BACK_PORTS = 2

export class AutoNatService {
  private readonly c: AutoNatComponents
  private readonly log: Logger
  private readonly init: Required<Omit<AutoNatInit, 'onChange'>> & Pick<AutoNatInit, 'onChange'>
  private readonly results = new Map<string, ProbeResult>()
  /** Observed public IP → last seen, reported by peers over direct connections. */
  private readonly observed = new Map<string, number>()
  /** What each peer told us our address is (the responder only dials that IP). */
  private readonly observedBy = new Map<string, string>()
  private readonly confirmed = new Set<string>()
  private readonly probing = new Set<string>()
  private dialBacks = 0
  private probes = 0
  private last: Reachability = 'unknown'
  private timer: NodeJS.Timeout | undefined
  private started = false

  constructor (components: AutoNatComponents, init: AutoNatInit) {
    this.c = components
    this.log = components.logger.forComponent('taskqueue:nat:autonat')
    this.init = {
      probe: init.probe,
      timeoutMs: init.timeoutMs ?? 10_000,
      refreshMs: init.refreshMs ?? 15 * 60_000,
      unknownRefreshMs: init.unknownRefreshMs ?? 30_000,
      resultTtlMs: init.resultTtlMs ?? 60 * 60_000,
      onChange: init.onChange
    }
  }

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/autonat'

  async start (): Promise<void> {
    await this.c.registrar.handle(AUTONAT_PROTOCOL, (stream, connection) => {
      void this.answer(stream, connection)
    }, { maxInboundStreams: 4, maxOutboundStreams: 4 })
    this.c.events.addEventListener('peer:identify', this.onIdentify)
    this.started = true
    this.schedule(this.init.unknownRefreshMs)
  }

  async stop (): Promise<void> {
    this.started = false
    clearTimeout(this.timer)
    this.c.events.removeEventListener('peer:identify', this.onIdentify)
    await this.c.registrar.unhandle(AUTONAT_PROTOCOL)
  }

  status (): Reachability {
    const now = Date.now()
    let failed = false
    for (const r of this.results.values()) {
      if (now - r.at > this.init.resultTtlMs) continue
      if (r.ok) return 'public'
      failed = true
    }
    return failed ? 'private' : 'unknown'
  }

  snapshot (): AutoNatSnapshot {
    const status = this.status()
    return {
      status,
      code: REACHABILITY_CODE[status],
      confirmed: [...this.confirmed],
      observed_ips: [...this.observed.keys()],
      probes: this.probes,
      results: [...this.results.entries()].map(([peer, r]) => ({ peer_id: peer, ok: r.ok, addr: r.addr, at: r.at }))
    }
  }

  /** The public IP peers see us as, most recently observed first. */
  observedPublicIps (): string[] {
    return [...this.observed.entries()].sort((a, b) => b[1] - a[1]).map(([ip]) => ip)
  }

  // ---- responder --------------------------------------------------------------------------

  private async answer (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.init.timeoutMs + 5000)
    const pb = new PbStream(stream)
    try {
      const request = (await withSignal(pb.readAutoNat(), signal, () => stream.abort(new Error('autonat request timed out'))))
      const response = await this.dialBack(request.dial, connection)
      this.log('AutoNAT: dial-back for %p: %s', connection.remotePeer, response.statusText)
      await pb.writeAutoNat({ dialResponse: response })
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  private async dialBack (dial: { peerId: Uint8Array, addrs: Uint8Array[] } | undefined, connection: Connection): Promise<{ status: AutoNatStatus, statusText: string, addr?: Uint8Array }> {
    if (dial === undefined) return { status: AutoNatStatus.E_BAD_REQUEST, statusText: 'no dial message' }
    const remote = connection.remotePeer
    if (!equalBytes(dial.peerId, remote.toMultihash().bytes)) return { status: AutoNatStatus.E_BAD_REQUEST, statusText: 'peer id mismatch' }
    // Only the IP the request came from, only public, only TCP: we must never become a
    // tool to make connections to third parties or into private networks.
    const seenFrom = ipPortOf(connection.remoteAddr)?.ip
    const ours = new Set(this.c.addressManager.getAddresses().map((a) => ipPortOf(a)?.ip))
    const targets: Multiaddr[] = []
    // As go-libp2p does, a requested port on another IP (a node behind NAT knows only its
    // private address) is tried on the IP the request came from: still only that IP.
    const ports = new Set<number>()
    if (seenFrom !== undefined && !isPrivateIp(seenFrom) && !ours.has(seenFrom)) {
      for (const bytes of dial.addrs.slice(0, 8)) {
        try {
          const ma = multiaddr(bytes)
          const ipp = ipPortOf(ma)
          if (ipp === null || ipp.port === null || isCircuitAddr(ma) || ports.has(ipp.port) || ports.size >= MAX_DIAL_BACK_PORTS) continue
          ports.add(ipp.port)
          targets.push(tcpAddr(seenFrom, ipp.port).encapsulate(`/p2p/${remote.toString()}`))
        } catch {}
      }
    }
    if (targets.length === 0) return { status: AutoNatStatus.E_DIAL_REFUSED, statusText: 'no dialable addresses' }
    if (this.dialBacks >= MAX_CONCURRENT_DIAL_BACKS) return { status: AutoNatStatus.E_DIAL_REFUSED, statusText: 'busy' }
    this.dialBacks++
    try {
      let lastError = ''
      for (const target of targets) {
        try {
          // force: a new connection, never the one the request arrived on.
          const conn = await this.c.connectionManager.openConnection(target, { force: true, signal: AbortSignal.timeout(this.init.timeoutMs) })
          const reached = conn.remotePeer.equals(remote)
          await conn.close().catch(() => conn.abort(new Error('close failed')))
          if (reached) return { status: AutoNatStatus.OK, statusText: 'OK', addr: target.decapsulateCode(421).bytes }
          lastError = 'reached a different peer'
        } catch (err) {
          lastError = (err as Error).message
        }
      }
      // No `addr` on a failure: the spec sets it only for OK, and rust-libp2p's AutoNAT v1
      // client rejects a failure that carries one as an invalid message (its verdict stays
      // unknown; rust-autonat.test.ts).
      return { status: AutoNatStatus.E_DIAL_ERROR, statusText: lastError.slice(0, 200) }
    } finally {
      this.dialBacks--
    }
  }

  // ---- prober ---------------------------------------------------------------------------

  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const { connection, observedAddr, peerId, protocols } = evt.detail
    if (isRelayedConnection(connection)) return
    const seen = observedAddr !== undefined ? ipPortOf(observedAddr) : null
    if (seen !== null && !isPrivateIp(seen.ip)) {
      this.observed.set(seen.ip, Date.now())
      this.observedBy.set(peerId.toString(), seen.ip)
    }
    if (this.init.probe && protocols.includes(AUTONAT_PROTOCOL)) {
      // Give identify's own address bookkeeping a moment before we read our addresses.
      setTimeout(() => { void this.probePeer(connection) }, 200).unref()
    }
  }

  /** Addresses worth asking about, given the IP that peer sees us as. */
  private candidates (seenAs: string | undefined): Multiaddr[] {
    const out = new Map<string, Multiaddr>()
    const listenPorts = new Set<number>()
    for (const a of this.c.transportManager.getAddrs()) {
      const ipp = ipPortOf(a)
      if (ipp?.port != null && !isCircuitAddr(a)) listenPorts.add(ipp.port)
    }
    // Our own public transport and announce addresses (WAN hosts, PUBLIC_IP).
    for (const { multiaddr: a, type } of this.c.addressManager.getAddressesWithMetadata()) {
      if ((type === 'transport' || type === 'announce' || type === 'ip-mapping') && isPublicTcpAddr(a)) {
        const ipp = ipPortOf(a)
        if (ipp !== null) out.set(`${ipp.ip}:${ipp.port}`, tcpAddr(ipp.ip, ipp.port ?? 0))
      }
    }
    // Behind NAT the peer only dials the IP it sees us as: would a forwarded listen port work?
    if (seenAs !== undefined) for (const port of listenPorts) out.set(`${seenAs}:${port}`, tcpAddr(seenAs, port))
    return [...out.values()].filter((a) => seenAs === undefined || ipPortOf(a)?.ip === seenAs)
  }

  private async probePeer (connection: Connection): Promise<void> {
    const key = connection.remotePeer.toString()
    if (!this.started || this.probing.has(key) || connection.status !== 'open') return
    const seenAs = this.observedBy.get(key)
    const addrs = this.candidates(seenAs).slice(0, 4)
    if (addrs.length === 0) return
    this.probing.add(key)
    this.probes++
    this.log('AutoNAT: asking %s to dial back %s', key, addrs.map(String).join(', '))
    let stream: Stream | undefined
    try {
      // The peer's dial-back may take its own timeout (go-libp2p: 15 s), not ours.
      const signal = AbortSignal.timeout(Math.max(this.init.timeoutMs + 5000, PEER_DIAL_BACK_WAIT_MS))
      stream = await connection.newStream(AUTONAT_PROTOCOL, { signal })
      const pb = new PbStream(stream)
      await pb.writeAutoNat({ dial: { peerId: this.c.peerId.toMultihash().bytes, addrs: addrs.map((a) => a.bytes) } })
      const s = stream
      const reply = (await withSignal(pb.readAutoNat(), signal, () => s.abort(new Error('autonat reply timed out')))).dialResponse
      await stream.close().catch(() => {})
      if (reply === undefined) return
      if (reply.status === AutoNatStatus.OK) {
        const addr = reply.addr !== undefined ? safeMultiaddr(reply.addr) ?? addrs[0] : addrs[0]
        this.log('AutoNAT: %s reached us at %a', key, addr)
        this.record(key, { ok: true, addr: addr.toString(), at: Date.now() })
        this.confirm(addr)
      } else if (reply.status === AutoNatStatus.E_DIAL_ERROR) {
        this.log('AutoNAT: %s could not dial us back: %s', key, reply.statusText ?? '')
        this.record(key, { ok: false, addr: addrs.map(String).join(','), at: Date.now() })
        for (const a of addrs) this.unconfirm(a)
      }
    } catch (err) {
      this.log.error('AutoNAT: probe of %s failed: %e', key, err)
      stream?.abort(new Error('autonat probe failed'))
    } finally {
      this.probing.delete(key)
    }
  }

  private record (peer: string, r: ProbeResult): void {
    this.results.set(peer, r)
    const now = this.status()
    if (now !== this.last) {
      this.log('AutoNAT verdict: %s (was %s; %d answers)', now, this.last, this.results.size)
      this.last = now
      this.init.onChange?.(now)
      this.schedule(now === 'unknown' ? this.init.unknownRefreshMs : this.init.refreshMs)
    }
  }

  private confirm (addr: Multiaddr): void {
    this.confirmed.add(addr.toString())
    const own = this.c.transportManager.getAddrs().some((a) => a.decapsulateCode(421).equals(addr))
    this.c.addressManager.confirmObservedAddr(addr, { type: own ? 'transport' : 'observed' })
  }

  private unconfirm (addr: Multiaddr): void {
    if (this.confirmed.delete(addr.toString())) this.c.addressManager.removeObservedAddr(addr)
  }

  private schedule (ms: number): void {
    clearTimeout(this.timer)
    if (!this.started) return
    this.timer = setTimeout(() => { this.refresh() }, ms)
    this.timer.unref()
  }

  /** Periodic re-probe through up to 3 connected peers that speak AutoNAT. */
  private refresh (): void {
    if (!this.started) return
    if (this.init.probe) {
      const direct = this.c.connectionManager.getConnections().filter((c) => !isRelayedConnection(c))
      const seen = new Set<string>()
      for (const conn of direct) {
        const key = conn.remotePeer.toString()
        if (seen.has(key) || !this.observedBy.has(key)) continue
        seen.add(key)
        void this.probePeer(conn)
        if (seen.size >= 3) break
      }
    }
    this.schedule(this.status() === 'unknown' ? this.init.unknownRefreshMs : this.init.refreshMs)
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i])
}

function safeMultiaddr (bytes: Uint8Array): Multiaddr | null {
  try { return multiaddr(bytes) } catch { return null }
}

export function autoNatService (init: AutoNatInit): (components: AutoNatComponents) => AutoNatService {
  return (components) => new AutoNatService(components, init)
}
