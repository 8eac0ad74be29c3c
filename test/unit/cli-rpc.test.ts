import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../../src/cli/p2p-rpc.js'
import type { Doc, QueueClient, RunResult } from '../../src/cli/p2p-rpc.js'
import type { RemoteQueueOptions, RequestOptions } from '../../src/client/remote-queue.js'
import { DeadlineError, DialError, DiscoveryError, ProtocolError, ProtocolNotSupportedError, RemoteError } from '../../src/client/errors.js'
import { ConfigError } from '../../src/config/index.js'
import { UsageError } from '../../src/cli/args.js'
import { classifyError } from '../../src/cli/exit-codes.js'
import type { DiscoveryTrace } from '../../src/discovery/types.js'
import { silentLogger } from '../../src/logger.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const ENTRY = join(ROOT, 'dist', 'src', 'cli', 'p2p-rpc.js')
const NODE = existsSync(join(ROOT, 'node_modules', '.bin', 'node')) ? join(ROOT, 'node_modules', '.bin', 'node') : process.execPath
const PEER = '12D3KooWGX8QRSDC97ns4pH7ZgKZb9JBBFoxTFr8pMgV9SUQ7NBd'
const MA = `/ip4/127.0.0.1/tcp/1/p2p/${PEER}`
const TASK = { task_id: 'a'.repeat(32), status: 'queued', task_type: 't' }

interface Call { op: string, fields: Record<string, unknown>, options?: RequestOptions }
type Handler = (fields: Record<string, unknown>, n: number) => Doc | Error

class FakeQueue implements QueueClient {
  calls: Call[] = []
  closed = 0
  opts: RemoteQueueOptions | null = null
  constructor (private readonly handlers: Record<string, Handler>, private readonly trace?: DiscoveryTrace) {}
  async request (op: string, fields: Record<string, unknown>, options?: RequestOptions): Promise<Doc> {
    this.calls.push({ op, fields, options })
    const h = this.handlers[op]
    if (h === undefined) throw new Error(`unexpected op ${op}`)
    const r = h(fields, this.calls.filter((c) => c.op === op).length)
    if (r instanceof Error) throw r
    return r
  }

  async discover (): Promise<DiscoveryTrace> {
    if (this.trace === undefined) throw new Error('no trace')
    return this.trace
  }

  async close (): Promise<void> { this.closed++ }
}

async function runWith (argv: string[], handlers: Record<string, Handler> = {}, env: Record<string, string> = {}, trace?: DiscoveryTrace): Promise<{ r: Extract<RunResult, { kind: 'document' }>, q: FakeQueue, stderr: string[] }> {
  const q = new FakeQueue(handlers, trace)
  const stderr: string[] = []
  const r = await run(argv, {
    env: { HOME: '/nonexistent-home', ...env },
    createQueue: (o) => { q.opts = o; return q },
    stderr: (l) => stderr.push(l),
    logger: silentLogger()
  })
  assert.equal(r.kind, 'document')
  if (r.kind !== 'document') throw new Error('unreachable')
  // The invariant of cli.md §1.3.
  assert.equal(r.doc.ok === true, r.code === 0, `ok/exit mismatch: ${JSON.stringify(r)}`)
  return { r, q, stderr }
}

const reply = (extra: Doc = {}): Handler => () => ({ ok: true, peer_id: PEER, ...extra })
const refuse = (error: string): Handler => () => ({ ok: false, error, peer_id: PEER })

describe('p2p-rpc commands (fake queue)', () => {
  it('reply commands print the reply and exit 1 on ok:false', async () => {
    const ok = await runWith(['status', '--detail', '--multiaddr', MA], { status: reply({ session: '' }) })
    assert.deepEqual(ok.r.doc, { ok: true, peer_id: PEER, session: '' })
    assert.deepEqual(ok.q.calls[0].fields, { detail: true })
    assert.equal(ok.q.calls[0].options?.timeoutMs, 10000)
    assert.equal(ok.q.opts?.multiaddr, MA)
    assert.equal(ok.q.closed, 1)
    const no = await runWith(['cache-get', '--key', 'k'], { 'cache.get': refuse('cache_disabled') })
    assert.equal(no.r.code, 1)
    assert.deepEqual(no.r.doc, { ok: false, error: 'cache_disabled', peer_id: PEER })
  })

  it('call-tool sends args and the tool timeout', async () => {
    const { r, q } = await runWith(['call-tool', '--tool', 'get_server_status', '--args', '{"a":1}', '--timeout', '7'], { tool: reply({ result: 1 }) })
    assert.equal(r.code, 0)
    assert.deepEqual(q.calls[0].fields, { tool: 'get_server_status', args: { a: 1 }, timeout_s: 7 })
    assert.equal(q.calls[0].options?.timeoutMs, 7000)
    assert.equal(q.calls[0].options?.attemptTimeoutMs, 7000)
  })

  it('cache-set takes any JSON value, an empty string meaning ""', async () => {
    for (const [text, value] of [['""', ''], ['', ''], ['null', null], ['[1,{"é":2}]', [1, { é: 2 }]], ['3.5', 3.5]] as const) {
      const { r, q } = await runWith(['cache-set', '--key', 'k', '--value', text], { 'cache.set': reply({ key: 'k' }) })
      assert.equal(r.code, 0)
      assert.deepEqual(q.calls[0].fields, { key: 'k', value })
    }
    const ttl = await runWith(['cache-set', '--key', 'k', '--value', '1', '--ttl', '30'], { 'cache.set': reply() })
    assert.equal(ttl.q.calls[0].fields.ttl_s, 30)
  })

  it('task-submit generates one auto key, honours --priority and --idempotency-key', async () => {
    const { r, q } = await runWith(['task-submit', '--task-type', 't', '--model-name', 'm', '--payload', '{"x":1}', '--priority', '9'],
      { submit: reply({ task_id: 'abc', replayed: false }) })
    assert.deepEqual(r.doc, { ok: true, task_id: 'abc', replayed: false })
    const payload = q.calls[0].fields.payload as Record<string, unknown>
    assert.equal(payload.x, 1)
    assert.equal(payload.priority, 9)
    assert.match(String(payload.idempotency_key), /^auto-[0-9a-f-]{36}$/)
    const keyed = await runWith(['task-submit', '--task-type', 't', '--model-name', 'm', '--idempotency-key', 'K1'], { submit: reply({ task_id: 'abc', replayed: true }) })
    assert.equal((keyed.q.calls[0].fields.payload as Record<string, unknown>).idempotency_key, 'K1')
    assert.equal(keyed.r.doc.replayed, true)
  })

  it('task-submit-many sends the file\'s lines as submit_many requests of at most 1,024, with one key each', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'p2p-rpc-many-'))
    try {
      const file = join(dir, 'tasks.jsonl')
      const lines = Array.from({ length: 1500 }, (_, i) => JSON.stringify(i === 1 ? { task_type: 't', payload: { i }, idempotency_key: 'K1', priority: 9 } : { task_type: 't', payload: { i } }))
      writeFileSync(file, lines.join('\n') + '\n\n')
      const accept: Handler = (fields) => ({ ok: true, peer_id: PEER, results: (fields.items as Doc[]).map((_, i) => i === 5 ? { ok: false, task_id: '', error: 'invalid_params', retryable: false } : { ok: true, task_id: `id${i}`, replayed: false }) })
      const { r, q } = await runWith(['task-submit-many', '--file', file], { submit_many: accept })
      assert.deepEqual(q.calls.map((c) => (c.fields.items as Doc[]).length), [1024, 476])
      assert.equal(q.calls[0].options?.timeoutMs, 30000)
      const first = q.calls[0].fields.items as Array<{ task_type: string, payload: Doc }>
      assert.deepEqual(first[1].payload, { i: 1, idempotency_key: 'K1', priority: 9 })
      assert.match(String(first[0].payload.idempotency_key), /^auto-[0-9a-f-]{36}$/)
      assert.equal(new Set(first.map((t) => t.payload.idempotency_key)).size, 1024)
      assert.equal(r.code, 1, 'an item was refused')
      assert.equal(r.doc.error, 'items_refused')
      assert.equal(r.doc.submitted, 1498)
      assert.equal(r.doc.failed, 2)
      assert.equal((r.doc.results as Doc[]).length, 1500)

      const all = (fields: Record<string, unknown>): Doc => ({ ok: true, results: (fields.items as Doc[]).map(() => ({ ok: true, task_id: 'x', replayed: true })) })
      writeFileSync(file, '{"task_type":"t"}\n')
      const ok = await runWith(['task-submit-many', '--file', file], { submit_many: all })
      assert.deepEqual(ok.r.doc, { ok: true, submitted: 1, failed: 0, results: [{ ok: true, task_id: 'x', replayed: true }] })

      for (const [text, message] of [['{"task_type":"t"}\nnope\n', /line 2 is not JSON/], ['[1]\n', /line 1 is not a JSON object/], ['{"payload":{}}\n', /line 1 has no task_type/], ['\n', /no tasks/], ['{"task_type":"t","priority":"high"}', /priority must be an integer/]] as const) {
        writeFileSync(file, text)
        const bad = await runWith(['task-submit-many', '--file', file], { submit_many: all })
        assert.equal(bad.r.code, 2, text)
        assert.match(String(bad.r.doc.message), message)
        assert.equal(bad.q.calls.length, 0, 'nothing is sent')
      }
      const missing = await runWith(['task-submit-many', '--file', join(dir, 'missing.jsonl')], { submit_many: all })
      assert.equal(missing.r.code, 2)
      assert.match(String(missing.r.doc.message), /cannot read/)

      // A request the service refuses as a whole ends the command with what came before it.
      writeFileSync(file, lines.join('\n'))
      const whole = await runWith(['task-submit-many', '--file', file], { submit_many: (f, n) => n === 1 ? accept(f, n) : { ok: false, error: 'busy', retryable: true } })
      assert.equal(whole.r.code, 1)
      assert.equal(whole.r.doc.error, 'busy')
      assert.equal((whole.r.doc.results as Doc[]).length, 1024)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('wrapped task commands print {ok:false,error,reply} on remote failure', async () => {
    const { r } = await runWith(['task-submit', '--task-type', 't', '--model-name', 'm'], { submit: refuse('idempotency_conflict') })
    assert.equal(r.code, 1)
    assert.deepEqual(r.doc, { ok: false, error: 'idempotency_conflict', reply: { ok: false, error: 'idempotency_conflict', peer_id: PEER } })
    const c = await runWith(['task-complete', '--task-id', 'x', '--worker-id', 'w'], { complete: refuse('not_owner') })
    assert.equal(c.r.code, 1)
    assert.equal(c.r.doc.error, 'not_owner')
  })

  it('task-get: found, and unknown id', async () => {
    const found = await runWith(['task-get', '--task-id', 'x'], { get: reply({ task: TASK }) })
    assert.deepEqual(found.r.doc, { ok: true, result: TASK })
    const missing = await runWith(['task-get', '--task-id', 'x'], { get: reply({ task: null }) })
    assert.equal(missing.r.code, 1)
    assert.deepEqual(missing.r.doc, { ok: false, error: 'task_not_found', result: null })
  })

  it('task-wait: terminal, wait_timeout, deadline', async () => {
    const done = await runWith(['task-wait', '--task-id', 'x', '--timeout', '5'], { wait: reply({ task: { ...TASK, status: 'failed' }, timed_out: false }) })
    assert.equal(done.r.code, 0)
    assert.equal((done.r.doc.result as Doc).status, 'failed')
    assert.deepEqual(done.q.calls[0].fields, { task_id: 'x', timeout_s: 5 })
    // deadline = wait + DISCOVERY_TIMEOUT_S (10) + 15 s
    assert.ok(Math.abs((done.q.calls[0].options?.timeoutMs ?? 0) - 30000) < 200)
    const late = await runWith(['task-wait', '--task-id', 'x', '--timeout', '1'], { wait: reply({ task: TASK, timed_out: true }) })
    assert.equal(late.r.code, 5)
    assert.deepEqual(late.r.doc, { ok: false, error: 'wait_timeout', result: TASK })
  })

  it('task-wait waits again when the service capped the wait', async () => {
    const { r, q } = await runWith(['task-wait', '--task-id', 'x', '--timeout', '3'], {
      wait: (_f, n) => n === 1 ? { ok: true, task: TASK, timed_out: true } : { ok: true, task: { ...TASK, status: 'completed' }, timed_out: false }
    })
    assert.equal(r.code, 0)
    assert.equal(q.calls.length, 2)
  })

  it('task-claim prints the task or null; passes the starred flags', async () => {
    const { r, q } = await runWith(['task-claim', '--worker-id', 'w', '--supported-task-types', 'a, b', '--session', 's', '--lease-s', '60'], { claim: reply({ task: TASK }) })
    assert.deepEqual(r.doc, { ok: true, result: TASK })
    assert.deepEqual(q.calls[0].fields, { worker_id: 'w', supported_task_types: ['a', 'b'], session: 's', lease_s: 60 })
    const none = await runWith(['task-claim', '--worker-id', 'w'], { claim: reply({ task: null }) })
    assert.deepEqual(none.r.doc, { ok: true, result: null })
  })

  it('task-complete wraps the reply; release, heartbeat, cancel, list print it', async () => {
    const c = await runWith(['task-complete', '--task-id', 'x', '--status', 'failed', '--error', 'boom', '--worker-id', 'w'], { complete: reply({ task_id: 'x' }) })
    assert.deepEqual(c.r.doc, { ok: true, result: { ok: true, peer_id: PEER, task_id: 'x' } })
    assert.deepEqual(c.q.calls[0].fields, { task_id: 'x', status: 'failed', result: {}, error: 'boom', worker_id: 'w' })
    const rel = await runWith(['task-release', '--task-id', 'x', '--worker-id', 'w', '--delay-s', '2.5'], { release: reply() })
    assert.deepEqual(rel.q.calls[0].fields, { task_id: 'x', worker_id: 'w', delay_s: 2.5 })
    const hb = await runWith(['task-heartbeat', '--task-id', 'x', '--worker-id', 'w', '--progress', '{"p":1}'], { 'task.heartbeat': refuse('task_not_running') })
    assert.equal(hb.r.code, 1)
    assert.deepEqual(hb.q.calls[0].fields, { task_id: 'x', worker_id: 'w', progress: { p: 1 } })
    const cancel = await runWith(['task-cancel', '--task-id', 'x', '--reason', 'r'], { cancel: reply({ cancelled: true }) })
    assert.equal(cancel.r.doc.cancelled, true)
    const list = await runWith(['task-list', '--task-types', 'a,b', '--cursor', 'C'], { list: reply({ tasks: [] }) })
    assert.deepEqual(list.q.calls[0].fields, { limit: 50, task_types: ['a', 'b'], cursor: 'C' })
  })

  it('discover prints the trace; exit 0 if ok else 3', async () => {
    const trace: DiscoveryTrace = { ok: false, result: null, nat: null, method: '', elapsed_ms: 3, attempts: [] }
    const bad = await runWith(['discover'], {}, {}, trace)
    assert.equal(bad.r.code, 3)
    const { error, message, hint, ...rest } = bad.r.doc as Record<string, unknown>
    assert.deepEqual(rest, { ...trace }, 'the trace, plus why')
    assert.equal(error, 'no_peer_found')
    assert.equal(typeof message, 'string')
    assert.equal(typeof hint, 'string')
    const refused = await runWith(['discover'], {}, {}, { ...trace, attempts: [{ method: 'announce-file', ok: false, peer_id: 'P', multiaddr: '/ip4/127.0.0.1/tcp/1/p2p/P', error: 'unauthorized', response: null, elapsed_ms: 1 }] })
    assert.equal(refused.r.code, 1, 'a service that refused our token: unauthorized, exit 1')
    assert.equal((refused.r.doc as Record<string, unknown>).error, 'unauthorized')
    const good = await runWith(['discover', '--detail'], {}, {}, { ...trace, ok: true, method: 'explicit' })
    assert.equal(good.r.code, 0)
  })

  it('maps transport failures to exit codes 3, 4 and 6', async () => {
    const cases: Array<[Error, number, string]> = [
      [new DiscoveryError('none'), 3, 'no_peer_found'],
      [new DialError('refused'), 3, 'dial_failed'],
      [new DeadlineError('late'), 3, 'deadline_exceeded'],
      [new ProtocolError('bad frame'), 4, 'protocol_error'],
      [new ProtocolNotSupportedError('no'), 4, 'protocol_not_supported'],
      [new TypeError('oops'), 6, 'internal_error']
    ]
    for (const [err, code, error] of cases) {
      const { r, q } = await runWith(['status'], { status: () => err })
      assert.equal(r.code, code, error)
      assert.deepEqual(r.doc, { ok: false, error, message: r.doc.message })
      assert.equal(typeof r.doc.message, 'string')
      assert.equal(q.closed, 1, 'closed after a failure too')
    }
    const noOk = await runWith(['status'], { status: () => ({ peer_id: PEER }) })
    assert.equal(noOk.r.code, 4)
  })

  it('usage and config errors exit 2 before any queue is created', async () => {
    for (const argv of [
      ['status', '--bogus'], ['call-tool', '--tool', 't', '--args', '[]'], ['cache-set', '--key', 'k', '--value', '{x'],
      ['task-get'], ['status', '--timeout', 'soon'], ['status', '--multiaddr', 'nope'], ['status', '--peer-id', 'nope'],
      ['status', '--announce-file', '/nonexistent/announce.json'], ['task-complete', '--task-id', 'x', '--status', 'done']
    ]) {
      const { r, q } = await runWith(argv)
      assert.equal(r.code, 2, argv.join(' '))
      assert.equal(r.doc.error, 'usage')
      assert.equal(q.opts, null)
    }
    const { r, stderr } = await runWith(['status'], {}, { IPFS_ACCELERATE_PY_TASK_P2P_MDNS: 'maybe' })
    assert.equal(r.code, 2)
    assert.equal(r.doc.error, 'invalid_config')
    assert.match(String(r.doc.message), /^config error: IPFS_ACCELERATE_PY_TASK_P2P_MDNS="maybe"/)
    assert.ok(stderr.some((l) => l.startsWith('config error:')))
  })

  it('--announce-file: false words mean not given; a valid file is passed on', async () => {
    const off = await runWith(['status', '--announce-file', 'off'], { status: reply() })
    assert.equal(off.q.opts?.announceFile, null)
    const dir = mkdtempSync(join(tmpdir(), 'cli-rpc-'))
    try {
      const path = join(dir, 'a.json')
      writeFileSync(path, JSON.stringify({ peer_id: PEER, multiaddr: MA }))
      const on = await runWith(['status', '--announce-file', path], { status: reply() })
      assert.equal(on.q.opts?.announceFile, path)
      writeFileSync(path, JSON.stringify({ peer_id: PEER, multiaddr: '/ip4/127.0.0.1/tcp/1' }))
      const bad = await runWith(['status', '--announce-file', path])
      assert.equal(bad.r.code, 2)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('help and version are text', async () => {
    const h = await run(['task-wait', '--help'])
    assert.equal(h.kind, 'text')
    assert.equal(h.code, 0)
    const v = await run(['--version'])
    assert.ok(v.kind === 'text' && /^p2p-rpc \d+\.\d+\.\d+/.test(v.text))
  })

  it('classifyError covers every class', () => {
    assert.equal(classifyError(new UsageError('x')).exitCode, 2)
    assert.deepEqual(classifyError(new ConfigError('V', 'v', 'is bad')), { exitCode: 2, error: 'invalid_config', message: 'config error: V="v" is bad' })
    assert.deepEqual(classifyError(new RemoteError({ ok: false, error: 'unauthorized' })).exitCode, 1)
    assert.equal(classifyError('string').exitCode, 6)
  })
})

// ---- the built program ------------------------------------------------------------------

async function spawnCli (args: string[], stdin?: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const home = mkdtempSync(join(tmpdir(), 'cli-rpc-home-'))
  try {
    const child = spawn(NODE, [ENTRY, ...args], {
      cwd: home,
      env: { PATH: process.env.PATH ?? '', HOME: home, XDG_CACHE_HOME: home },
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] as ['pipe', 'pipe', 'pipe']
    })
    if (stdin !== undefined) child.stdin?.end(stdin)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
    return { code, stdout, stderr }
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
}

function oneJsonLine (stdout: string): Doc {
  assert.ok(stdout.endsWith('\n'), JSON.stringify(stdout))
  const lines = stdout.slice(0, -1).split('\n')
  assert.equal(lines.length, 1, JSON.stringify(stdout))
  return JSON.parse(lines[0]) as Doc
}

describe('p2p-rpc process', () => {
  it('task-submit-many --file - reads standard input (a bad line: exit 2 before dialling)', async () => {
    const r = await spawnCli(['task-submit-many', '--file', '-', '--multiaddr', MA, '--timeout', '2'], '{"task_type":"t"}\n{"task_type":\n')
    const doc = oneJsonLine(r.stdout)
    assert.equal(r.code, 2, r.stderr)
    assert.equal(doc.error, 'usage')
    assert.match(String(doc.message), /line 2 is not JSON/)
  })

  it('unreachable explicit peer: one JSON line, ok:false, exit 3, prompt exit', async () => {
    const started = Date.now()
    const r = await spawnCli(['status', '--multiaddr', MA, '--timeout', '2'])
    const doc = oneJsonLine(r.stdout)
    assert.equal(doc.ok, false, r.stderr)
    assert.equal(doc.error, 'dial_failed')
    assert.equal(r.code, 3)
    assert.ok(Date.now() - started < 10000, 'the libp2p node must not keep the process alive')
  })

  it('unknown flag: one JSON line, ok:false, exit 2', async () => {
    const r = await spawnCli(['status', '--bogus'])
    const doc = oneJsonLine(r.stdout)
    assert.equal(doc.ok, false)
    assert.equal(doc.error, 'usage')
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--bogus/)
  })

  it('--help: text, exit 0', async () => {
    const r = await spawnCli(['--help'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /^Usage: p2p-rpc/)
    for (const c of ['status', 'discover', 'task-heartbeat']) assert.ok(r.stdout.includes(c))
  })
})
