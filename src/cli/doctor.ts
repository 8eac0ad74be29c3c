/**
 * `p2p-rpc doctor` (client side) and `taskqueue-p2p doctor` (service side), issue 4.5:
 * addresses, reachability, relay reservations, which discovery mechanisms are
 * configured and whether each works right now, and one plain-language verdict with the
 * fix (src/nat/diagnose.ts). Human-readable by default, `--json` for scripts; exit 0
 * when the verdict is fine, 3 when something stops clients from connecting.
 *
 * The service doctor asks the running service (found through its announce file) for
 * its own view — AutoNAT status and reservations are measured on its real port — and
 * checks every configured peer from a throw-away node.
 */
import { multiaddr } from '@multiformats/multiaddr'
import type { IdentifyResult } from '@libp2p/interface'
import { isFalseWord, loadSettings } from '../config/index.js'
import type { Env, Settings } from '../config/index.js'
import { parseNumberOption } from './args.js'
import type { ParsedArgs } from './args.js'
import { EXIT_OK, EXIT_UNREACHABLE } from './exit-codes.js'
import { writeStdout } from './output.js'
import { createTaskQueueNode } from '../node/create-node.js'
import { readAnnounceFile } from '../discovery/announce-file.js'
import type { AnnounceInfo } from '../discovery/announce-file.js'
import type { DiscoveryTrace } from '../discovery/types.js'
import { MCP_PROTOCOL } from '../protocol/ids.js'
import { clientVerdict, serviceVerdict } from '../nat/diagnose.js'
import type { MechanismCheck, PeerCheck, Reach, Verdict } from '../nat/diagnose.js'
import { HOP_PROTOCOL } from '../nat/relay-keeper.js'
import type { Logger } from '../logger.js'
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
interface ServiceNat {
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

function pidAlive (pid: number | undefined): boolean {
  if (pid === undefined) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function peerMechanisms (s: Settings, peers: PeerCheck[]): MechanismCheck[] {
  const reach = peers.filter((p) => p.reachable)
  const points = s.rendezvousPoints.length > 0 ? peers.filter((p) => p.role === 'RENDEZVOUS_POINTS') : peers
  return [
    { mechanism: 'bootstrap', configured: s.bootstrapPeers.length > 0, works: s.bootstrapPeers.length > 0 ? reach.some((p) => p.role === 'BOOTSTRAP_PEERS') : null, detail: `${reach.filter((p) => p.role === 'BOOTSTRAP_PEERS').length}/${s.bootstrapPeers.length} reachable` },
    { mechanism: 'rendezvous', configured: s.rendezvous && points.length > 0, works: s.rendezvous && points.length > 0 ? points.some((p) => p.reachable && p.rendezvous) : null, detail: !s.rendezvous ? 'disabled' : points.length === 0 ? 'no rendezvous point known' : `${points.filter((p) => p.rendezvous).length} point(s) answer` },
    { mechanism: 'dht', configured: s.dht && s.bootstrapPeers.length > 0, works: s.dht && s.bootstrapPeers.length > 0 ? reach.some((p) => p.dht) : null, detail: !s.dht ? 'disabled' : `${reach.filter((p) => p.dht).length} peer(s) speak ${s.dhtProtocol}` },
    { mechanism: 'mdns', configured: s.mdns, works: null, detail: s.mdns ? 'LAN only; not testable without a responder' : 'disabled' }
  ]
}

export async function serviceDoctor (s: Settings, env: Env, timeoutMs: number, logger: Logger): Promise<DoctorReport> {
  let info: AnnounceInfo | null = null
  if (s.announceFile !== null) {
    try { info = readAnnounceFile(s.announceFile) } catch {}
  }
  const running = info !== null && pidAlive(info.pid)
  const peersP = checkPeers(s, Math.min(timeoutMs, 5000))
  let status: Record<string, unknown> | null = null
  let statusError = ''
  if (running && info !== null) {
    const { RemoteQueue } = await import('../client/remote-queue.js')
    const rq = new RemoteQueue({ multiaddr: info.multiaddr, settings: loadSettings(env, {}, () => {}, { role: 'client' }), env, addressBookPath: null, logger })
    try {
      status = await rq.status(true, { timeoutMs })
    } catch (err) {
      statusError = (err as Error).message
    } finally {
      await rq.close()
    }
  }
  const peers = await peersP
  const nat = (status?.nat ?? null) as ServiceNat | null
  const reach = (nat?.autonat?.status ?? (running ? 'unavailable' : 'unknown')) as Reach
  const relay = nat?.relay ?? { enabled: s.relay, hop: false, reservations: [] }
  const port = Number((info?.multiaddr ?? '').match(/\/tcp\/(\d+)/)?.[1] ?? s.listenPort)
  const announced = Array.isArray(status?.multiaddrs) ? status.multiaddrs as string[] : []
  const verdict = serviceVerdict({
    running: running && status !== null,
    port,
    reachability: reach,
    relayEnabled: s.relay,
    reservations: relay.reservations,
    holepunch: s.holepunch,
    peers,
    announced
  })
  if (running && status === null) verdict.text = `the service's announce file exists but it does not answer (${statusError}); ${verdict.text}`
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
    peer_id: info?.peer_id ?? '',
    listen: info?.multiaddrs ?? [],
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

/** `discover` runs the client's discovery chain (the RemoteQueue of p2p-rpc). */
export async function clientDoctor (s: Settings, timeoutMs: number, discover: (opts: { timeoutMs: number }) => Promise<DiscoveryTrace>): Promise<DoctorReport> {
  const [peers, trace] = await Promise.all([checkPeers(s, Math.min(timeoutMs, 5000)), discover({ timeoutMs })])
  type Attempt = DiscoveryTrace['attempts'][number] & { connection?: 'direct' | 'relayed' }
  const win = (trace.attempts as Attempt[]).find((a) => a.ok)
  const serviceNat = (trace.nat ?? null) as { autonat?: { status?: string } } | null
  const verdict = clientVerdict({
    found: trace.ok,
    method: trace.method,
    connection: win?.connection ?? '',
    serviceReach: serviceNat?.autonat?.status ?? '',
    bootstrapConfigured: s.bootstrapPeers.length > 0 || s.rendezvousPoints.length > 0,
    mdns: s.mdns,
    peers,
    holepunch: s.holepunch,
    error: trace.attempts.filter((a) => !a.ok && a.error !== '' && a.error !== 'disabled').map((a) => `${a.method}: ${a.error}`).slice(0, 3).join('; ')
  })
  const skipped = new Set(['disabled', 'not_explicitly_configured', 'no_rendezvous_point', 'cancelled'])
  const byMethod = (m: string): MechanismCheck => {
    const recs = trace.attempts.filter((a) => a.method === m)
    const configured = recs.length > 0 && !recs.every((a) => skipped.has(a.error))
    return { mechanism: m as MechanismCheck['mechanism'], configured, works: configured ? recs.some((a) => a.ok) : null, detail: recs.map((a) => a.ok ? `ok ${a.peer_id.slice(-8)}` : a.error).join(', ') || 'not run' }
  }
  const discovery = ['announce-file', 'bootstrap', 'rendezvous', 'dht', 'mdns'].map(byMethod)
  discovery.push({ mechanism: 'holepunch', configured: s.holepunch, works: win?.connection === 'direct' ? true : null, detail: win?.connection !== undefined ? `connection ${win.connection}` : 'no connection' })
  return {
    ok: verdict.ok,
    side: 'client',
    peer_id: win?.peer_id ?? '',
    listen: [],
    announced: [],
    reachability: { status: (serviceNat?.autonat?.status ?? 'unknown') as Reach, code: null },
    relay: { enabled: s.relay, hop: false, reservations: [] },
    holepunch: { enabled: s.holepunch, attempts: 0, successes: 0 },
    peers,
    discovery,
    verdict,
    trace
  }
}

// ---- presentation ---------------------------------------------------------------------------

const mark = (works: boolean | null, configured = true): string => !configured ? '  - ' : works === true ? ' ok ' : works === false ? 'FAIL' : '  ? '

export function formatDoctor (r: DoctorReport): string {
  const out: string[] = []
  const line = (k: string, v: string): void => { out.push(`  ${k.padEnd(13)}${v}`) }
  out.push(r.side === 'service' ? 'taskqueue-p2p doctor (service side)' : 'p2p-rpc doctor (client side)')
  if (r.peer_id !== '') line(r.side === 'service' ? 'peer id' : 'service', r.peer_id)
  if (r.side === 'service') {
    line('listening', r.listen.length > 0 ? r.listen[0] : '(not running)')
    for (const a of r.listen.slice(1)) line('', a)
    line('announced', r.announced.length > 0 ? r.announced[0] : '-')
    for (const a of r.announced.slice(1)) line('', a)
  }
  line('reachability', `${r.reachability.status}${r.side === 'client' ? ' (as the service reports it)' : ' (AutoNAT)'}`)
  line('relay', `${r.relay.enabled ? 'on' : 'off'}${r.relay.hop ? ', relaying for others (HOP)' : ''}, ${r.relay.reservations.length} reservation(s)`)
  for (const res of r.relay.reservations) line('', `${res.addr}${res.expires_at !== null ? ` (until ${new Date(res.expires_at * 1000).toISOString()})` : ''}`)
  if (r.security !== undefined) {
    line('token', r.security.token)
    line('allow list', r.security.allow_list)
    line('private net', r.security.private_network)
  }
  line('hole punch', r.holepunch.enabled ? `on, ${r.holepunch.successes}/${r.holepunch.attempts} succeeded` : 'off')
  if (r.peers.length > 0) {
    out.push('  peers')
    for (const p of r.peers) {
      const speaks = [p.hop ? 'relay' : '', p.rendezvous ? 'rendezvous' : '', p.dht ? 'dht' : '', p.taskqueue ? 'taskqueue' : ''].filter((x) => x !== '').join(', ')
      out.push(`    ${mark(p.reachable)} ${p.addr} [${p.role}] ${p.reachable ? `${speaks !== '' ? speaks : 'no known service'}, ${p.elapsed_ms} ms` : p.error}`)
    }
  }
  out.push('  discovery')
  for (const m of r.discovery) out.push(`    ${mark(m.works, m.configured)} ${m.mechanism.padEnd(14)}${m.configured ? '' : 'not configured; '}${m.detail}`)
  out.push('')
  out.push(`verdict: ${r.verdict.text}`)
  if (r.verdict.fix !== '') out.push(`fix:     ${r.verdict.fix}`)
  return out.join('\n') + '\n'
}

// ---- `taskqueue-p2p doctor` -------------------------------------------------------------------

/** Runs the service-side doctor for `taskqueue-p2p doctor`; returns the exit code. */
export async function runServiceDoctor (a: ParsedArgs, log: Logger): Promise<number> {
  const overrides: { announceFile?: string | null } = {}
  const af = a.string('announce-file')
  if (af !== undefined) overrides.announceFile = isFalseWord(af.trim()) ? null : af
  const settings = loadSettings(process.env, overrides, (m) => log.warn(m), { role: 'serve' })
  const seconds = parseNumberOption('timeout', a.requireString('timeout'), { min: 0, exclusiveMin: true, max: 600 })
  const report = await serviceDoctor(settings, process.env, Math.round(seconds * 1000), log)
  await writeStdout(a.flag('json') ? JSON.stringify(report) + '\n' : formatDoctor(report))
  return report.ok ? EXIT_OK : EXIT_UNREACHABLE
}
