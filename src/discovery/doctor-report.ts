/**
 * The doctor's facts and report (issue 4.5), shared by `taskqueue-p2p doctor`,
 * `p2p-rpc doctor` (src/cli/doctor.ts gathers what only a separate process can: the
 * announce file, a status over the wire, the discovery trace) and the service's own
 * dashboard (issue 22), which runs the same checks from inside the service: every
 * configured peer dialled once from a throw-away node, the mechanisms judged, one
 * verdict with its fix (nat/diagnose.ts).
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { IdentifyResult } from '@libp2p/interface'
import type { Settings } from '../config/index.js'
import { createTaskQueueNode } from '../node/create-node.js'
import type { DiscoveryTrace } from './types.js'
import { MCP_PROTOCOL } from '../protocol/ids.js'
import { serviceVerdict } from '../nat/diagnose.js'
import type { MechanismCheck, PeerCheck, Reach, Verdict } from '../nat/diagnose.js'
import { HOP_PROTOCOL } from '../nat/relay-keeper.js'
import { timeoutSignal } from '../util/timeout-signal.js'

export interface SecurityFacts {
  token: string
  allow_list: string
  private_network: string
}

/** What the settings say about tokens, the allow list and the private network (no secrets). */
export function securityFacts (s: Settings): SecurityFacts {
  const loopback = s.listenHost === '::1' || s.listenHost.startsWith('127.')
  return {
    token: s.token !== null ? 'configured' : s.tokenOpen ? 'open (TOKEN set empty)' : loopback ? 'open (loopback only)' : 'generated (service_token beside the identity)',
    allow_list: s.allowPeers === null ? 'off' : s.allowPeers.kind === 'file' ? `on, from ${s.allowPeers.path}` : `on, ${s.allowPeers.entries.length} peer(s)`,
    private_network: s.swarmKey !== null ? 'on (swarm key)' : 'off'
  }
}

/** The rendezvous protocol id (discovery.md §5). */
const RENDEZVOUS_PROTOCOL = '/rendezvous/1.0.0'

export interface DoctorReport {
  ok: boolean
  side: 'service' | 'client'
  peer_id: string
  listen: string[]
  announced: string[]
  reachability: { status: Reach, code: number | null }
  relay: { enabled: boolean, hop: boolean, reservations: Array<{ relay_peer_id: string, addr: string, expires_at: number | null }> }
  holepunch: { enabled: boolean, attempts: number, successes: number }
  peers: PeerCheck[]
  discovery: MechanismCheck[]
  verdict: Verdict
  /** ★ Which access controls these settings turn on (README "Security"). */
  security?: SecurityFacts
  /** Client side: the discovery trace the verdict is based on. */
  trace?: DiscoveryTrace
}

/** The part of the service's `status.nat` the doctor reads. */
export interface ServiceNat {
  autonat?: { status?: string, code?: number | null }
  relay?: DoctorReport['relay']
  holepunch?: DoctorReport['holepunch']
}

// ---- facts ----------------------------------------------------------------------------------

/** Dials every configured peer once (in parallel) and records what identify says it speaks. */
export async function checkPeers (s: Settings, timeoutMs: number): Promise<PeerCheck[]> {
  const wanted: Array<{ addr: string, role: string }> = []
  const add = (list: readonly string[], role: string): void => {
    for (const addr of list) if (!wanted.some((w) => w.addr === addr)) wanted.push({ addr, role })
  }
  add(s.bootstrapPeers, 'BOOTSTRAP_PEERS')
  add(s.relayPeers, 'RELAY_PEERS')
  add(s.rendezvousPoints, 'RENDEZVOUS_POINTS')
  if (wanted.length === 0) return []
  const node = await createTaskQueueNode({ listen: [], dialTimeoutMs: timeoutMs, swarmKey: s.swarmKey })
  try {
    return await Promise.all(wanted.map(async ({ addr, role }): Promise<PeerCheck> => {
      const started = Date.now()
      const check: PeerCheck = { addr, role, peer_id: '', reachable: false, error: '', hop: false, rendezvous: false, dht: false, taskqueue: false, elapsed_ms: 0 }
      try {
        const identified = new Promise<IdentifyResult | null>((resolve) => {
          const timer = setTimeout(() => { node.removeEventListener('peer:identify', on); resolve(null) }, timeoutMs)
          const on = (evt: CustomEvent<IdentifyResult>): void => {
            if (check.peer_id !== '' && evt.detail.peerId.toString() !== check.peer_id) return
            if (check.peer_id === '' && !addr.includes(evt.detail.peerId.toString())) return
            clearTimeout(timer)
            node.removeEventListener('peer:identify', on)
            resolve(evt.detail)
          }
          node.addEventListener('peer:identify', on)
        })
        const conn = await node.dial(multiaddr(addr), { signal: timeoutSignal(timeoutMs) })
        check.peer_id = conn.remotePeer.toString()
        check.reachable = true
        const id = await identified
        const protocols = id?.protocols ?? (await node.peerStore.get(conn.remotePeer)).protocols
        check.hop = protocols.includes(HOP_PROTOCOL)
        check.rendezvous = protocols.includes(RENDEZVOUS_PROTOCOL)
        check.dht = protocols.includes(s.dhtProtocol)
        check.taskqueue = protocols.includes(MCP_PROTOCOL)
      } catch (err) {
        check.error = (err as Error).message.split('\n')[0].slice(0, 160)
      }
      check.elapsed_ms = Date.now() - started
      return check
    }))
  } finally {
    await node.stop()
  }
}

export function peerMechanisms (s: Settings, peers: PeerCheck[]): MechanismCheck[] {
  const reach = peers.filter((p) => p.reachable)
  const points = s.rendezvousPoints.length > 0 ? peers.filter((p) => p.role === 'RENDEZVOUS_POINTS') : peers
  return [
    { mechanism: 'bootstrap', configured: s.bootstrapPeers.length > 0, works: s.bootstrapPeers.length > 0 ? reach.some((p) => p.role === 'BOOTSTRAP_PEERS') : null, detail: `${reach.filter((p) => p.role === 'BOOTSTRAP_PEERS').length}/${s.bootstrapPeers.length} reachable` },
    { mechanism: 'rendezvous', configured: s.rendezvous && points.length > 0, works: s.rendezvous && points.length > 0 ? points.some((p) => p.reachable && p.rendezvous) : null, detail: !s.rendezvous ? 'disabled' : points.length === 0 ? 'no rendezvous point known' : `${points.filter((p) => p.rendezvous).length} point(s) answer` },
    { mechanism: 'dht', configured: s.dht && s.bootstrapPeers.length > 0, works: s.dht && s.bootstrapPeers.length > 0 ? reach.some((p) => p.dht) : null, detail: !s.dht ? 'disabled' : `${reach.filter((p) => p.dht).length} peer(s) speak ${s.dhtProtocol}` },
    { mechanism: 'mdns', configured: s.mdns, works: null, detail: s.mdns ? 'LAN only; not testable without a responder' : 'disabled' }
  ]
}

/** What the service-side doctor found out; `serviceReport` judges it. */
export interface ServiceDoctorFacts {
  /** A live service runs with this configuration (its announce file and pid, or this very process). */
  running: boolean
  /** Its `status --detail`, or null when it did not answer. */
  status: Record<string, unknown> | null
  statusError: string
  peerId: string
  listen: string[]
  port: number
  peers: PeerCheck[]
}

/** The service-side doctor's report from its facts: `taskqueue-p2p doctor`, and the dashboard's own. */
export function serviceReport (s: Settings, f: ServiceDoctorFacts): DoctorReport {
  const { running, status, peers } = f
  const nat = (status?.nat ?? null) as ServiceNat | null
  const reach = (nat?.autonat?.status ?? (running ? 'unavailable' : 'unknown')) as Reach
  const relay = nat?.relay ?? { enabled: s.relay, hop: false, reservations: [] }
  const announced = Array.isArray(status?.multiaddrs) ? status.multiaddrs as string[] : []
  const verdict = serviceVerdict({
    running: running && status !== null,
    port: f.port,
    reachability: reach,
    relayEnabled: s.relay,
    reservations: relay.reservations,
    holepunch: s.holepunch,
    peers,
    announced
  })
  if (running && status === null) verdict.text = `the service's announce file exists but it does not answer (${f.statusError}); ${verdict.text}`
  const discovery: MechanismCheck[] = [
    { mechanism: 'announce-file', configured: s.announceFile !== null, works: s.announceFile === null ? null : running, detail: s.announceFile ?? 'disabled' },
    ...peerMechanisms(s, peers),
    { mechanism: 'relay', configured: s.relay, works: s.relay ? relay.reservations.length > 0 : null, detail: `${relay.reservations.length} reservation(s)` },
    { mechanism: 'autonat', configured: s.autonat, works: s.autonat ? reach === 'public' || reach === 'private' : null, detail: `reachability ${reach}` },
    { mechanism: 'holepunch', configured: s.holepunch, works: null, detail: nat?.holepunch !== undefined ? `${nat.holepunch.successes}/${nat.holepunch.attempts} punches succeeded` : 'off' }
  ]
  return {
    ok: verdict.ok,
    side: 'service',
    peer_id: f.peerId,
    listen: f.listen,
    announced,
    reachability: { status: reach, code: nat?.autonat?.code ?? null },
    relay,
    holepunch: nat?.holepunch ?? { enabled: s.holepunch, attempts: 0, successes: 0 },
    peers,
    discovery,
    verdict,
    security: securityFacts(s)
  }
}
