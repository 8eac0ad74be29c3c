/**
 * The HTTP listener's /metrics while tasks flow (issue 22): a real `serve --worker` with
 * HTTP_PORT, real p2p-rpc submits, scrapes before and after, parsed with a Prometheus
 * text-format parser; the counters must have moved exactly as the work did. And the
 * discovery attempts by mechanism: a service's bootstrap dials, rendezvous registrations
 * and DHT provides against a real coordination node, and a client's lookups.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import type { PromFamily } from 'parse-prometheus-text-format'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { runRpc, sandbox, startDaemon } from '../helpers/procs.js'
import type { Daemon, Sandbox } from '../helpers/procs.js'
import { freePort } from '../helpers/event-follower.js'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import { loadSettings } from '../../src/config/index.js'

const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
const TOKEN = 'metrics-test-token'

interface Scrape { families: Map<string, PromFamily>, text: string }

/**
 * The parser reads a histogram only without labels (it drops them and keeps the last
 * series' buckets), so one labelled series is cut out of the text with its labels
 * removed, and that is parsed.
 */
function histogramCount (scrape: Scrape, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  const lines = scrape.text.split('\n').filter((l) => l.startsWith(`# HELP ${name} `) || l.startsWith(`# TYPE ${name} `) ||
    (l.startsWith(`${name}_`) && want.every((w) => l.includes(w))))
  const unlabelled = lines.map((l) => want.reduce((acc, w) => acc.replace(new RegExp(`,?${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), ''), l).replace('{,', '{').replace('{}', ''))
  const fam = parsePrometheusTextFormat(unlabelled.join('\n') + '\n').find((f) => f.name === name)
  return Number(fam?.metrics[0]?.count ?? 0)
}

function value (scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  const fam = scrape.families.get(name)
  if (fam === undefined) return 0
  const hit = fam.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  if (hit === undefined) return 0
  return Number(hit.value ?? hit.count)
}

describe('/metrics while tasks flow', () => {
  let box: Sandbox
  let svc: Daemon
  let base: string

  before(async () => {
    box = sandbox({ [`${P}HTTP_PORT`]: '0', [`${P}TOKEN`]: TOKEN, [`${P}ENABLE_CACHE`]: '1' })
    svc = await startDaemon('serve', ['--worker', '--task-types', 'echo'], box.env)
    base = String((JSON.parse(readFileSync(box.announceFile, 'utf8')) as { http_url?: string }).http_url)
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/, 'the announce file names the HTTP listener')
  })
  after(async () => {
    await svc?.stop()
    box?.cleanup()
  })

  const scrape = async (): Promise<Scrape> => {
    const r = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(r.status, 200)
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/)
    const text = await r.text()
    return { text, families: new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f])) }
  }

  it('health and readiness answer without a token; metrics need it', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200)
    assert.equal((await fetch(`${base}/readyz`)).status, 200)
    assert.equal((await fetch(`${base}/metrics`)).status, 401)
    assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status, 401)
  })

  it('counters and gauges move as the work did', async () => {
    const before = await scrape()
    const N = 5
    for (let i = 0; i < N; i++) {
      const r = await runRpc(['task-submit', '--task-type', 'echo', '--model-name', 'm', '--payload', `{"i":${i}}`], box.env)
      assert.equal(r.code, 0, r.stdout + r.stderr)
      const id = String(r.json?.task_id)
      const w = await runRpc(['task-wait', '--task-id', id, '--timeout', '30'], box.env)
      assert.equal((w.json?.result as { status?: string } | undefined)?.status, 'completed')
    }
    // Nobody claims this type: it waits, and the oldest-waiting gauge sees it.
    const idle = await runRpc(['task-submit', '--task-type', 'nobody-runs-this', '--model-name', 'm'], box.env)
    assert.equal(idle.code, 0)
    await runRpc(['cache-set', '--key', 'k', '--value', '1'], box.env)
    await runRpc(['cache-get', '--key', 'k'], box.env)
    await runRpc(['cache-get', '--key', 'absent'], box.env)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const after = await scrape()

    const moved = (name: string, labels: Record<string, string> = {}): number => value(after, name, labels) - value(before, name, labels)
    assert.equal(moved('taskqueue_task_transitions_total', { status: 'queued', task_type: 'echo' }), N, 'submits')
    assert.equal(moved('taskqueue_task_transitions_total', { status: 'running', task_type: 'echo' }), N, 'claims')
    assert.equal(moved('taskqueue_task_transitions_total', { status: 'completed', task_type: 'echo' }), N, 'completes')
    assert.equal(moved('taskqueue_requests_total', { op: 'submit', outcome: 'ok' }), N + 1, 'submit requests')
    assert.equal(histogramCount(after, 'taskqueue_request_duration_seconds', { op: 'submit' }) - histogramCount(before, 'taskqueue_request_duration_seconds', { op: 'submit' }), N + 1, 'one latency sample per submit')
    assert.equal(value(after, 'taskqueue_tasks', { status: 'completed', task_type: 'echo' }), N)
    assert.equal(value(after, 'taskqueue_tasks', { status: 'queued', task_type: 'nobody-runs-this' }), 1)
    assert.ok(value(after, 'taskqueue_oldest_queued_task_age_seconds') >= 1, 'the waiting task has waited over a second')
    assert.equal(moved('taskqueue_cache_lookups_total', { result: 'hit' }), 1)
    assert.equal(moved('taskqueue_cache_lookups_total', { result: 'miss' }), 1)
    assert.equal(value(after, 'taskqueue_cache_entries'), 1)
    assert.ok(moved('taskqueue_store_commit_duration_seconds') >= N, 'store commits timed')
    assert.equal(after.families.get('taskqueue_request_duration_seconds')?.type, 'HISTOGRAM')
    assert.ok(value(after, 'taskqueue_connected_peers', { connection: 'direct' }) + value(after, 'taskqueue_connected_peers', { connection: 'relayed' }) >= 0)
    for (const name of ['taskqueue_lease_expiries_total', 'taskqueue_relay_reservations', 'taskqueue_relay_bytes_total', 'taskqueue_cache_evictions_total']) {
      assert.ok(after.families.has(name), `${name} is exported`)
    }
    // libp2p's own metrics on the same endpoint.
    assert.ok([...after.families.keys()].some((n) => n.startsWith('libp2p_')), 'libp2p metrics are exported')
    assert.ok(moved('libp2p_noise_xxhandshake_successes_total') >= N, 'every CLI call was a new Noise handshake')
  })
})

describe('/metrics: discovery attempts by mechanism and outcome', () => {
  it("counts the service's bootstrap dials, rendezvous registrations and DHT provides; a client counts its lookups", async (t) => {
    const box = sandbox()
    const relayBox = sandbox()
    t.after(() => { box.cleanup(); relayBox.cleanup() })
    // A coordination node with rendezvous and the DHT (the sandbox turns both off).
    const relay = await startDaemon('relay', ['--listen-host', '127.0.0.1', '--listen-port', '0'], { ...relayBox.env, [`${P}DHT`]: '1', [`${P}RENDEZVOUS`]: '1' })
    t.after(async () => { await relay.stop() })
    // A second bootstrap peer that is not there: its dials fail.
    const nobody = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const absent = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${nobody}`
    const svc = await startDaemon('serve', [], {
      ...box.env,
      [`${P}HTTP_PORT`]: '0',
      [`${P}DHT`]: '1',
      [`${P}RENDEZVOUS`]: '1',
      [`${P}BOOTSTRAP_PEERS`]: `${relay.multiaddr},${absent}`
    })
    t.after(async () => { await svc.stop() })
    const base = String((JSON.parse(readFileSync(box.announceFile, 'utf8')) as { http_url?: string }).http_url)
    const want: Array<[string, Record<string, string>]> = [
      ['bootstrap dial ok', { mechanism: 'bootstrap', action: 'dial', outcome: 'ok' }],
      ['bootstrap dial failed', { mechanism: 'bootstrap', action: 'dial', outcome: 'dial_failed' }],
      ['rendezvous register ok', { mechanism: 'rendezvous', action: 'register', outcome: 'ok' }],
      ['dht provide ok', { mechanism: 'dht', action: 'provide', outcome: 'ok' }]
    ]
    let last: Scrape | null = null
    let missing = want.map(([name]) => name)
    // The service does all of it in the background: scrape until it has (bounded).
    for (let i = 0; i < 60 && missing.length > 0; i++) {
      const text = await (await fetch(`${base}/metrics`)).text()
      last = { text, families: new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f])) }
      missing = want.filter(([, labels]) => value(last!, 'taskqueue_discovery_attempts_total', labels) < 1).map(([name]) => name)
      if (missing.length > 0) await new Promise((resolve) => setTimeout(resolve, 500))
    }
    assert.deepEqual(missing, [], `never counted: ${missing.join(', ')}\n${last?.text.split('\n').filter((l) => l.includes('discovery_attempts')).join('\n') ?? ''}`)
    assert.equal(last?.families.get('taskqueue_discovery_attempts_total')?.type, 'COUNTER')

    // A client (the library) counts each mechanism its chain ran: here the announce file finds the service.
    const q = new RemoteQueue({ settings: loadSettings(box.env, {}, () => {}, { role: 'client' }), env: box.env, addressBookPath: null })
    try {
      await q.status()
      const found = q.discoveryAttempts.snapshot().find((c) => c.mechanism === 'announce-file' && c.action === 'find' && c.outcome === 'ok')
      assert.equal(found?.count, 1, JSON.stringify(q.discoveryAttempts.snapshot()))
    } finally {
      await q.close()
    }
  })
})
