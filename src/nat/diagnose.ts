/**
 * The doctor's judgement (issue 4.5): from facts gathered by src/discovery/doctor-report.ts to one
 * plain-language verdict with the fix. Pure functions, so every verdict is unit-tested
 * without a network.
 */

export type Reach = 'public' | 'private' | 'unknown' | 'unavailable'

export interface PeerCheck {
  /** The configured address. */
  addr: string
  /** Where it was configured: BOOTSTRAP_PEERS, RELAY_PEERS, RENDEZVOUS_POINTS. */
  role: string
  peer_id: string
  reachable: boolean
  error: string
  /** Whether identify lists a Circuit Relay v2 HOP / rendezvous / the DHT protocol / TaskQueue. */
  hop: boolean
  rendezvous: boolean
  dht: boolean
  taskqueue: boolean
  elapsed_ms: number
}

export interface MechanismCheck {
  mechanism: 'announce-file' | 'bootstrap' | 'rendezvous' | 'dht' | 'mdns' | 'relay' | 'holepunch' | 'autonat'
  configured: boolean
  /** true/false once tested; null when it cannot be tested from here right now. */
  works: boolean | null
  detail: string
}

export interface Verdict {
  ok: boolean
  code: string
  text: string
  fix: string
}

export interface ServiceFacts {
  running: boolean
  port: number
  reachability: Reach
  relayEnabled: boolean
  reservations: Array<{ relay_peer_id: string, addr: string }>
  holepunch: boolean
  peers: PeerCheck[]
  /** Announced addresses (with /p2p/). */
  announced: string[]
}

export interface ClientFacts {
  found: boolean
  method: string
  connection: 'direct' | 'relayed' | ''
  /** The service's own status.nat.autonat.status, when it answered. */
  serviceReach: string
  bootstrapConfigured: boolean
  mdns: boolean
  peers: PeerCheck[]
  holepunch: boolean
  error: string
}

const relayHint = (peers: PeerCheck[]): string => peers.find((p) => p.reachable && p.hop)?.addr ?? '<relay multiaddr>'

export function serviceVerdict (f: ServiceFacts): Verdict {
  const port = f.port > 0 ? f.port : 9710
  const unreachable = f.peers.filter((p) => !p.reachable)
  if (!f.running) {
    return { ok: false, code: 'service_not_running', text: 'no TaskQueue service is running with this configuration (no live announce file)', fix: 'start it with `taskqueue-p2p serve`, then run the doctor again' }
  }
  if (f.reachability === 'public') {
    return { ok: true, code: 'public', text: `reachable from the internet on TCP port ${port}: clients anywhere can connect directly`, fix: '' }
  }
  if (f.reservations.length > 0) {
    const via = f.reservations.map((r) => r.relay_peer_id).join(', ')
    return {
      ok: true,
      code: 'relayed',
      text: `${f.reachability === 'private' ? 'behind NAT' : 'reachability not confirmed'}, but reachable through relay ${via}: clients outside your LAN connect through it`,
      fix: f.holepunch ? '' : 'optional: set HOLEPUNCH=1 here and on clients so connections can upgrade to direct where the NAT allows it'
    }
  }
  if (f.relayEnabled) {
    if (f.peers.length === 0) {
      return { ok: false, code: 'relay_without_peers', text: 'RELAY=1 but no relay is configured: this service has no peer to reserve a slot on', fix: 'set BOOTSTRAP_PEERS=<relay multiaddr> (a `taskqueue-p2p relay` on a public host), or RELAY_PEERS' }
    }
    if (unreachable.length === f.peers.length) {
      return { ok: false, code: 'relay_unreachable', text: `RELAY=1 but no configured peer answers (${unreachable.map((p) => `${p.addr}: ${p.error}`).join('; ')})`, fix: 'check that the relay runs and that its address and port are right; this service retries on its own' }
    }
    if (!f.peers.some((p) => p.reachable && p.hop)) {
      return { ok: false, code: 'no_hop_peer', text: 'RELAY=1 but none of the reachable peers offers relaying (Circuit Relay v2 HOP)', fix: 'run `taskqueue-p2p relay` on a public host and set BOOTSTRAP_PEERS=<its multiaddr>' }
    }
    return { ok: false, code: 'reservation_pending', text: `a relay is reachable (${relayHint(f.peers)}) but no reservation is held yet`, fix: 'wait a few seconds and run the doctor again; if it persists, the relay may be full (RELAY_MAX_RESERVATIONS)' }
  }
  if (f.reachability === 'private') {
    return {
      ok: false,
      code: 'nat_no_relay',
      text: 'behind NAT with no relay: clients outside your LAN cannot reach this service',
      fix: `set RELAY=1 and BOOTSTRAP_PEERS=${relayHint(f.peers)}, or forward TCP port ${port} to this host`
    }
  }
  if (f.peers.length === 0) {
    return { ok: true, code: 'lan_only', text: 'no peers configured, so reachability from outside is unknown: LAN clients (announce file, mDNS) can connect', fix: `for clients outside your LAN: set BOOTSTRAP_PEERS=<relay multiaddr> and RELAY=1, or forward TCP port ${port}` }
  }
  if (unreachable.length === f.peers.length) {
    return { ok: false, code: 'peers_unreachable', text: `no configured peer answers (${unreachable.map((p) => `${p.addr}: ${p.error}`).join('; ')}), so reachability cannot be tested`, fix: 'check BOOTSTRAP_PEERS and that those nodes are running' }
  }
  return { ok: true, code: 'unknown', text: 'reachability not determined yet (AutoNAT has no answer from a peer)', fix: `run the doctor again in a minute; to be safe for clients outside your LAN set RELAY=1 and BOOTSTRAP_PEERS=${relayHint(f.peers)}` }
}

export function clientVerdict (f: ClientFacts): Verdict {
  if (f.found) {
    if (f.connection === 'relayed') {
      return { ok: true, code: 'relayed', text: `found a service by ${f.method}; reached through a relay (works, with relay latency)`, fix: f.holepunch ? '' : 'optional: HOLEPUNCH=1 here and on the service can upgrade to a direct connection' }
    }
    return { ok: true, code: 'direct', text: `found a service by ${f.method} and connected directly`, fix: '' }
  }
  const unreachable = f.peers.filter((p) => !p.reachable)
  if (f.peers.length > 0 && unreachable.length === f.peers.length) {
    return { ok: false, code: 'bootstrap_unreachable', text: `no service found, and no bootstrap peer answers (${unreachable.map((p) => `${p.addr}: ${p.error}`).join('; ')})`, fix: 'check BOOTSTRAP_PEERS and that the relay runs' }
  }
  if (!f.bootstrapConfigured) {
    return {
      ok: false,
      code: 'nothing_to_search',
      text: `no service found: only ${f.mdns ? 'the announce file and mDNS (same LAN)' : 'the announce file'} could be searched`,
      fix: 'for a service outside your LAN: set BOOTSTRAP_PEERS=<relay multiaddr> (the service needs the same, plus RELAY=1 when it is behind NAT), or give --multiaddr'
    }
  }
  return {
    ok: false,
    code: 'not_found',
    text: `no service found through ${f.peers.filter((p) => p.reachable).map((p) => p.addr).join(', ') || 'the configured peers'}${f.error !== '' ? ` (${f.error})` : ''}`,
    fix: 'check that the service runs with the same BOOTSTRAP_PEERS and RENDEZVOUS_NS; behind NAT it also needs RELAY=1 (its `taskqueue-p2p doctor` says which)'
  }
}
