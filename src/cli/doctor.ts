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
import { isFalseWord, loadSettings } from '../config/index.js'
import type { Env, Settings } from '../config/index.js'
import { parseNumberOption } from './args.js'
import type { ParsedArgs } from './args.js'
import { EXIT_OK, EXIT_UNREACHABLE } from './exit-codes.js'
import { writeStdout } from './output.js'
import { readAnnounceFile } from '../discovery/announce-file.js'
import type { AnnounceInfo } from '../discovery/announce-file.js'
import type { DiscoveryTrace } from '../discovery/types.js'
import { clientVerdict } from '../nat/diagnose.js'
import type { MechanismCheck, Reach } from '../nat/diagnose.js'
import { checkPeers, serviceReport } from '../discovery/doctor-report.js'
import type { DoctorReport } from '../discovery/doctor-report.js'
import type { Logger } from '../logger.js'

export { checkPeers, securityFacts, serviceReport } from '../discovery/doctor-report.js'
export type { DoctorReport, SecurityFacts } from '../discovery/doctor-report.js'

function pidAlive (pid: number | undefined): boolean {
  if (pid === undefined) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
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
  return serviceReport(s, {
    running,
    status,
    statusError,
    peerId: info?.peer_id ?? '',
    listen: info?.multiaddrs ?? [],
    port: Number((info?.multiaddr ?? '').match(/\/tcp\/(\d+)/)?.[1] ?? s.listenPort),
    peers: await peersP
  })
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
