/**
 * `--only profile`: where a round trip's CPU goes, per process and per component.
 *
 * A service and a worker run with `--cpu-prof`; this process submits BENCH_PROFILE_RT
 * (2,000) round trips with `submitAndWait` after 500 untimed ones. For the service and
 * the worker it prints CPU per round trip from /proc (user and system time of all
 * threads), then splits the main thread's busy profile samples inside the timed
 * window by the component the sampled function belongs to (the leaf frame: a native
 * call such as an SQLite step is charged to the JS function that made it).
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
import { positive } from './env.js'
import { report } from './report.js'
import { roundTrips } from './round-trip.js'

interface CallFrame { functionName: string, url: string }
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

/** Busy time of the samples between `fromUs` and `toUs` (the profile's clock), by component. */
function splitByComponent (profile: CpuProfile, fromUs: number, toUs: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const out = new Map<string, number>()
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    const dt = profile.timeDeltas[i + 1] ?? 0
    if (at < fromUs || at > toUs) continue
    const frame = byId.get(profile.samples[i])?.callFrame
    if (frame === undefined || frame.functionName === '(idle)' || frame.functionName === '(program)') continue
    const name = COMPONENTS.find(([, match]) => match(frame))![0]
    out.set(name, (out.get(name) ?? 0) + dt)
  }
  return out
}

/** Every thread's user and system CPU of `pid`, in ms. */
function cpuSplitMs (pid: number): { user: number, system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 }
}

/** The monotonic clock the V8 profiler stamps its samples with, in µs. */
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n)

export async function benchCostProfile (): Promise<void> {
  const n = positive('BENCH_PROFILE_RT', 2000)
  const dir = mkdtempSync(join(tmpdir(), 'tq-profile-'))
  const dirs = { serve: join(dir, 'serve'), worker: join(dir, 'worker') }
  const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error' })
  try {
    const svc = await startDaemon('serve', [], { ...box.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dirs.serve}` })
    const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--concurrency', '32', '--batch', '32', '--task-types', 'echo', '--worker-id', 'profile'],
      { ...box.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dirs.worker}` })
    const rq = new RemoteQueue({ multiaddr: svc.multiaddr, env: box.env, addressBookPath: null })
    let window: [number, number]
    const cpu: Record<'serve' | 'worker', { user: number, system: number }> = { serve: { user: 0, system: 0 }, worker: { user: 0, system: 0 } }
    let clientUs = 0
    try {
      await roundTrips(rq, 500, 'submit(wait_s)')
      const pids = { serve: svc.proc.pid!, worker: worker.proc.pid! }
      const before = { serve: cpuSplitMs(pids.serve), worker: cpuSplitMs(pids.worker) }
      const self0 = process.cpuUsage()
      const from = nowUs()
      await roundTrips(rq, n, 'submit(wait_s)')
      window = [from, nowUs()]
      const self = process.cpuUsage(self0)
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
    process.stdout.write(`\n[profile] ${n} round trips (submitAndWait, idle worker): CPU per round trip and where the main thread's busy time goes\n`)
    report('profile: client (this process) CPU per round trip', `${clientUs.toFixed(0)} µs`, 'reported')
    for (const k of ['serve', 'worker'] as const) {
      report(`profile: ${k} CPU per round trip, user / system`, `${cpu[k].user.toFixed(0)} / ${cpu[k].system.toFixed(0)} µs`, 'reported')
      const file = readdirSync(dirs[k]).find((f) => f.endsWith('.cpuprofile'))
      if (file === undefined) throw new Error(`the ${k} process wrote no CPU profile to ${dirs[k]}`)
      const split = splitByComponent(JSON.parse(readFileSync(join(dirs[k], file), 'utf8')) as CpuProfile, window[0], window[1])
      const busy = [...split.values()].reduce((a, b) => a + b, 0)
      for (const [name, us] of [...split].sort((a, b) => b[1] - a[1])) {
        report(`profile: ${k} main thread, ${name}`, `${(100 * us / busy).toFixed(1)} %`, 'reported')
      }
    }
  } finally {
    box.cleanup()
    rmSync(dir, { recursive: true, force: true })
  }
}
