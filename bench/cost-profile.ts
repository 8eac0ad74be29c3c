/**
 * `--only profile`: where a round trip's (or a one-by-one task's) CPU goes, per process
 * and per component.
 *
 * A service and a worker run with `--cpu-prof`; this process submits BENCH_PROFILE_RT
 * (2,000) round trips with `submitAndWait` after 500 untimed ones, or, with
 * BENCH_PROFILE_SHAPE=one-by-one, BENCH_PROFILE_TASKS (20,000) tasks from 16 concurrent
 * awaited submitters (the BullMQ comparison's one-by-one shape) until all completed.
 * For the service and the worker it prints CPU per round trip (or task) from /proc
 * (user and system time of all threads), the service's requests and write
 * transactions per round trip (or task) from its /metrics, then splits the main
 * thread's busy profile samples inside the timed window by the component the sampled
 * function belongs to (the leaf frame: a native call such as an SQLite step is charged
 * to the JS function that made it). BENCH_PROFILE_BACKEND=postgres runs the service on a
 * throwaway PostgreSQL cluster (durable). BENCH_PROFILE_TOP=n also lists the n functions
 * (name, file and line) with the most self time in each process.
 *
 * Read the split as shares of the main thread's busy time, not as µs: the profiler
 * charges a sample to whatever ran when the timer fired, and a socket write that wakes
 * the receiving process on loopback is often preempted by it, so `socket writes` also
 * holds time spent runnable but not running (system time from /proc is the CPU truth).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RemoteQueue } from '../src/client/remote-queue.js'
import { sandbox, startDaemon } from '../test/helpers/procs.js'
import { startPostgres, type PgCluster } from '../test/helpers/postgres.js'
import { positive } from './env.js'
import { report } from './report.js'
import { roundTrips } from './round-trip.js'

interface CallFrame { functionName: string, url: string, lineNumber?: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, samples: number[], timeDeltas: number[] }

/** Components in the order they are tried against a sample's leaf frame; the first match wins. */
const COMPONENTS: Array<[string, (f: CallFrame) => boolean]> = [
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['socket writes (see above)', (f) => f.functionName === 'writev' || f.functionName === 'writeBuffer' || f.functionName === 'writeUtf8String'],
  ['SQLite statements + commits (store/)', (f) => f.url.includes('/dist/src/store/')],
  ['Noise encryption', (f) => /libp2p-noise|chacha20poly1305|@noble\/|wasm:\/\//.test(f.url)],
  ['Yamux + libp2p streams', (f) => /libp2p-yamux|@libp2p\/|\/libp2p\/|it-|uint8arraylist/.test(f.url)],
  ['framing + JSON (protocol/)', (f) => f.url.includes('/dist/src/protocol/')],
  ['MCP server, dispatch, ops (service/)', (f) => f.url.includes('/dist/src/service/')],
  ['worker (worker/)', (f) => f.url.includes('/dist/src/worker/')],
  ['client code (client/)', (f) => f.url.includes('/dist/src/client/')],
  ['Node streams, events, timers', (f) => f.url.startsWith('node:')],
  ['other', () => true]
]

/** Busy time of the samples between `fromUs` and `toUs` (the profile's clock), summed by `keyOf` their leaf frame. */
function busyTimeBy (profile: CpuProfile, fromUs: number, toUs: number, keyOf: (f: CallFrame) => string): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const out = new Map<string, number>()
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    const dt = profile.timeDeltas[i + 1] ?? 0
    if (at < fromUs || at > toUs) continue
    const frame = byId.get(profile.samples[i])?.callFrame
    if (frame === undefined || frame.functionName === '(idle)' || frame.functionName === '(program)') continue
    const key = keyOf(frame)
    out.set(key, (out.get(key) ?? 0) + dt)
  }
  return out
}

const componentOf = (f: CallFrame): string => COMPONENTS.find(([, match]) => match(f))![0]

/** A function as `name file:line`, the file relative to dist/ or node_modules/. */
function functionOf (f: CallFrame): string {
  const file = f.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '')
  const line = f.lineNumber !== undefined && f.lineNumber >= 0 ? `:${f.lineNumber + 1}` : ''
  return `${f.functionName === '' ? '(anonymous)' : f.functionName} ${file}${line}`
}

/** Every thread's user and system CPU of `pid`, in ms. */
function cpuSplitMs (pid: number): { user: number, system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 }
}

/** `n` tasks from `submitters` concurrent awaited submitters, then waits until each has completed. */
async function oneByOne (rq: RemoteQueue, n: number, submitters: number): Promise<void> {
  let next = 0
  const last: string[] = []
  await Promise.all(Array.from({ length: submitters }, async () => {
    let id = ''
    while (next < n) {
      next++
      id = (await rq.submit({ task_type: 'echo', payload: { i: next } })).task_id
    }
    if (id !== '') last.push(id)
  }))
  for (const id of last) {
    const { task } = await rq.wait(id, 60)
    if (task?.status !== 'completed') throw new Error(`task ${id} ended ${String(task?.status)}`)
  }
}

/** The service's commit count and answered requests by op, from its /metrics. */
async function storeCounts (url: string): Promise<{ commits: number, requests: Map<string, number> }> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text()
  const commits = Number(/^taskqueue_store_commit_duration_seconds_count(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
  const requests = new Map<string, number>()
  for (const m of text.matchAll(/^taskqueue_requests_total\{([^}]*)\} (\S+)$/gm)) {
    const op = /op="([^"]*)"/.exec(m[1])?.[1] ?? '?'
    requests.set(op, (requests.get(op) ?? 0) + Number(m[2]))
  }
  return { commits, requests }
}

/** The monotonic clock the V8 profiler stamps its samples with, in µs. */
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n)

export async function benchCostProfile (): Promise<void> {
  const shape = process.env.BENCH_PROFILE_SHAPE ?? 'round-trip'
  if (shape !== 'round-trip' && shape !== 'one-by-one') throw new Error(`BENCH_PROFILE_SHAPE: unknown ${shape}; known: round-trip, one-by-one`)
  const n = shape === 'round-trip' ? positive('BENCH_PROFILE_RT', 2000) : positive('BENCH_PROFILE_TASKS', 20_000)
  const unit = shape === 'round-trip' ? 'round trip' : 'task'
  const load = async (rq: RemoteQueue, count: number): Promise<void> => {
    if (shape === 'round-trip') await roundTrips(rq, count, 'submit(wait_s)')
    else await oneByOne(rq, count, 16)
  }
  const dir = mkdtempSync(join(tmpdir(), 'tq-profile-'))
  const dirs = { serve: join(dir, 'serve'), worker: join(dir, 'worker') }
  const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error', IPFS_ACCELERATE_PY_TASK_P2P_HTTP_PORT: '0' })
  let cluster: PgCluster | null = null
  const serveArgs: string[] = []
  try {
    // BENCH_PROFILE_BACKEND=postgres: the service on a throwaway PostgreSQL cluster (durable).
    if (process.env.BENCH_PROFILE_BACKEND === 'postgres') {
      cluster = await startPostgres({ durable: true })
      serveArgs.push('--queue-url', cluster.createDatabase('profile'))
    } else if (process.env.BENCH_PROFILE_BACKEND !== undefined && process.env.BENCH_PROFILE_BACKEND !== 'sqlite') {
      throw new Error(`BENCH_PROFILE_BACKEND: unknown ${process.env.BENCH_PROFILE_BACKEND}; known: sqlite, postgres`)
    }
    const svc = await startDaemon('serve', serveArgs, { ...box.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dirs.serve}` })
    const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--concurrency', '32', '--batch', '32', '--task-types', 'echo', '--worker-id', 'profile'],
      { ...box.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dirs.worker}` })
    const rq = new RemoteQueue({ multiaddr: svc.multiaddr, env: box.env, addressBookPath: null })
    let window: [number, number]
    const cpu: Record<'serve' | 'worker', { user: number, system: number }> = { serve: { user: 0, system: 0 }, worker: { user: 0, system: 0 } }
    let clientUs = 0
    let counts: { commits: number, requests: Map<string, number> } = { commits: 0, requests: new Map() }
    const metricsUrl = `${String((JSON.parse(readFileSync(box.announceFile, 'utf8')) as { http_url?: string }).http_url)}/metrics`
    try {
      await load(rq, shape === 'round-trip' ? 500 : 2000)
      const pids = { serve: svc.proc.pid!, worker: worker.proc.pid! }
      const before = { serve: cpuSplitMs(pids.serve), worker: cpuSplitMs(pids.worker) }
      const counts0 = await storeCounts(metricsUrl)
      const self0 = process.cpuUsage()
      const from = nowUs()
      await load(rq, n)
      window = [from, nowUs()]
      const self = process.cpuUsage(self0)
      const counts1 = await storeCounts(metricsUrl)
      counts = { commits: counts1.commits - counts0.commits, requests: new Map([...counts1.requests].map(([op, c]) => [op, c - (counts0.requests.get(op) ?? 0)])) }
      clientUs = (self.user + self.system) / n
      for (const k of ['serve', 'worker'] as const) {
        const after = cpuSplitMs(pids[k])
        cpu[k] = { user: (after.user - before[k].user) * 1000 / n, system: (after.system - before[k].system) * 1000 / n }
      }
    } finally {
      await rq.close()
      await worker.stop()
      await svc.stop()
    }
    const what = shape === 'round-trip' ? `${n} round trips (submitAndWait, idle worker)` : `${n} tasks from 16 concurrent awaited submitters`
    process.stdout.write(`\n[profile] ${what}: CPU per ${unit} and where the main thread's busy time goes\n`)
    report(`profile: client (this process) CPU per ${unit}`, `${clientUs.toFixed(0)} µs`, 'reported')
    const requests = [...counts.requests].filter(([, c]) => c > 0).sort((a, b) => b[1] - a[1])
    const requestTotal = requests.reduce((a, [, c]) => a + c, 0)
    report(`profile: service requests per ${unit}`, `${(requestTotal / n).toFixed(2)} (${requests.map(([op, c]) => `${op} ${(c / n).toFixed(2)}`).join(', ')})`, 'reported')
    report(`profile: service write transactions (commits) per ${unit}`, (counts.commits / n).toFixed(2), 'reported')
    for (const k of ['serve', 'worker'] as const) {
      report(`profile: ${k} CPU per ${unit}, user / system`, `${cpu[k].user.toFixed(0)} / ${cpu[k].system.toFixed(0)} µs`, 'reported')
      const file = readdirSync(dirs[k]).find((f) => f.endsWith('.cpuprofile'))
      if (file === undefined) throw new Error(`the ${k} process wrote no CPU profile to ${dirs[k]}`)
      const profile = JSON.parse(readFileSync(join(dirs[k], file), 'utf8')) as CpuProfile
      const split = busyTimeBy(profile, window[0], window[1], componentOf)
      const busy = [...split.values()].reduce((a, b) => a + b, 0)
      for (const [name, us] of [...split].sort((a, b) => b[1] - a[1])) {
        report(`profile: ${k} main thread, ${name}`, `${(100 * us / busy).toFixed(1)} %`, 'reported')
      }
      const top = positive('BENCH_PROFILE_TOP', 0)
      for (const [name, us] of [...busyTimeBy(profile, window[0], window[1], functionOf)].sort((a, b) => b[1] - a[1]).slice(0, top)) {
        process.stdout.write(`  ${k} ${(100 * us / busy).toFixed(1).padStart(5)} %  ${name}\n`)
      }
    }
  } finally {
    cluster?.stop()
    box.cleanup()
    rmSync(dir, { recursive: true, force: true })
  }
}
