/**
 * Processes for the NAT acceptance tests: a coordination node (relay) on the WAN,
 * services and p2p-rpc runs inside the namespaces of test/helpers/netns-nat.ts.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { SERVE_BIN, runNode, runRpc, sandbox, startDaemon } from './procs.js'
import type { CliResult, Daemon, Env, Sandbox } from './procs.js'
import type { Host } from './netns.js'

export const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
export const PORT = 9710
/**
 * The fleet's shared token: these nodes listen beyond loopback and talk across hosts,
 * where a service's generated token is out of reach, so it is configured everywhere.
 */
export const FLEET_TOKEN = 'nat-fleet-token'

/** Environment of a node in a namespace: every discovery mechanism off unless asked. */
export function nodeEnv (box: Sandbox, extra: Env = {}): Env {
  return {
    ...box.env,
    [`${P}LISTEN_HOST`]: '0.0.0.0',
    [`${P}LISTEN_PORT`]: String(PORT),
    [`${P}TOKEN`]: FLEET_TOKEN,
    [`${P}MDNS`]: '0',
    [`${P}DHT`]: '0',
    [`${P}RENDEZVOUS`]: '0',
    TASKQUEUE_P2P_LOG_LEVEL: 'warn',
    ...extra
  }
}

export interface Relay {
  daemon: Daemon
  peerId: string
  /** The WAN address clients and services are given. */
  addr: string
  box: Sandbox
  restart: () => Promise<void>
}

/** `taskqueue-p2p relay` on `host`, with a persistent identity so a restart keeps its id. */
export async function startRelay (host: Host, extra: Env = {}): Promise<Relay> {
  const box = sandbox()
  const env = nodeEnv(box, { [`${P}IDENTITY_FILE`]: join(box.dir, 'relay.key'), ...extra })
  const start = async (): Promise<Daemon> => await startDaemon('relay', [], env, 20_000, host.ns)
  const relay: Relay = { daemon: await start(), peerId: '', addr: '', box, restart: async () => {} }
  relay.peerId = relay.daemon.peerId
  relay.addr = `/ip4/${host.ip}/tcp/${PORT}/p2p/${relay.peerId}`
  relay.restart = async () => {
    await relay.daemon.stop()
    relay.daemon = await start()
    assert.equal(relay.daemon.peerId, relay.peerId, 'relay identity changed across restart')
  }
  return relay
}

export interface Service { daemon: Daemon, box: Sandbox, env: Env }

export async function startService (host: Host, extra: Env, args: string[] = ['--enable-cache', '--enable-tools']): Promise<Service> {
  const box = sandbox()
  const env = nodeEnv(box, extra)
  const daemon = await startDaemon('serve', args, env, 20_000, host.ns)
  return { daemon, box, env }
}

/** `taskqueue-p2p doctor --json` with a service's own environment, on its host. */
export async function serviceDoctor (host: Host, svc: Service): Promise<{ code: number | null, report: DoctorJson, text: string }> {
  const json = await runNode([SERVE_BIN, 'doctor', '--json', '--timeout', '5'], svc.env, 40_000, host.ns)
  assert.ok(json.json !== undefined, `doctor printed no JSON: ${json.stdout}\n${json.stderr}`)
  const text = await runNode([SERVE_BIN, 'doctor', '--timeout', '5'], svc.env, 40_000, host.ns)
  return { code: json.code, report: json.json as unknown as DoctorJson, text: text.stdout }
}

export interface DoctorJson {
  ok: boolean
  reachability: { status: string }
  verdict: { ok: boolean, code: string, text: string, fix: string }
  discovery: Array<{ mechanism: string, configured: boolean, works: boolean | null }>
}

/** p2p-rpc inside a namespace, with a private sandbox and no announce file. */
export async function rpc (host: Host, args: string[], extra: Env = {}, timeoutMs = 60_000): Promise<CliResult> {
  const box = sandbox()
  try {
    return await runRpc(args, nodeEnv(box, { [`${P}ANNOUNCE_FILE`]: '0', [`${P}LISTEN_PORT`]: '0', ...extra }), timeoutMs, host.ns)
  } finally {
    box.cleanup()
  }
}

export function assertOk (r: CliResult, what: string): Record<string, unknown> {
  assert.ok(r.json !== undefined, `${what}: no JSON (exit ${String(r.code)}): ${r.stdout}\n${r.stderr}`)
  assert.equal(r.code, 0, `${what}: exit ${String(r.code)}: ${r.stdout}\n${r.stderr.slice(-2000)}`)
  return r.json
}

/** Polls `fn` every `everyMs` until it returns a value or `timeoutMs` passes (bounded). */
export async function waitFor<T> (what: string, timeoutMs: number, fn: () => Promise<T | null>, everyMs = 500): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown = null
  while (Date.now() < end) {
    try {
      const v = await fn()
      if (v !== null) return v
    } catch (err) {
      last = err
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== null ? `: ${String(last)}` : ''}`)
}

export interface NatJson {
  autonat: { supported: boolean, status: string, code: number | null }
  relay: { enabled: boolean, hop: boolean, reservations: Array<{ relay_peer_id: string, addr: string, expires_at: number | null }>, serving?: Record<string, number> }
  holepunch: { enabled: boolean, attempts: number, successes: number }
  public_ip: string | null
}

/** status.nat of the service, asked on its own loopback (works whatever the NAT does). */
export async function localNat (host: Host, peerId: string, port = PORT): Promise<NatJson> {
  const r = await rpc(host, ['status', '--multiaddr', `/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`, '--timeout', '5'])
  return assertOk(r, 'local status').nat as NatJson
}
