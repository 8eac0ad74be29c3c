/**
 * `node dist/bench/ab.js <checkout A> <checkout B>`: the submit → completed round trip
 * of two builds, interleaved in one process, so that a change of a few per cent can be
 * told from this VM's run-to-run swing (the same code has measured 0.77 and 1.5 ms p50
 * within the hour, with the transport floor moving alike). Each checkout needs `npm run
 * build` done; each side gets its own service and worker, and each side's client is
 * its own build's RemoteQueue. Bursts alternate A,B then B,A; the figures are the
 * median and mean of the burst medians, the service and worker CPU per round trip
 * (from /proc), and in how many bursts B was faster.
 *
 * AB_BURST (500) round trips per burst, AB_ROUNDS (12) bursts per side, after 1,000
 * untimed ones per side; AB_MODE `submit+wait` (default, works with any build) or
 * `submit(wait_s)` (both builds need RemoteQueue.submitAndWait). AB_ENV_A / AB_ENV_B
 * (`NAME=value,NAME=value`) add settings to one side's service and worker, so one build
 * can be compared with itself under two configurations (`TASKQUEUE_P2P_EVENTS_MAX=0`).
 * Loopback only.
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { RemoteQueue } from '../src/client/remote-queue.js'
import type { Daemon, Sandbox } from '../test/helpers/procs.js'
import { median } from './report.js'
import { cpuMs } from './proc-stats.js'
import { positive } from './env.js'
import { ROUND_TRIP_MODES, isMode, roundTrips } from './round-trip.js'

type RemoteQueueModule = typeof import('../src/client/remote-queue.js')
type ProcsModule = typeof import('../test/helpers/procs.js')


interface Side {
  label: string
  box: Sandbox
  svc: Daemon
  worker: Daemon
  rq: RemoteQueue
  p50s: number[]
  svcCpuMs: number
  workerCpuMs: number
  timed: number
}


async function load<T> (root: string, file: string): Promise<T> {
  const path = join(root, 'dist', file)
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` in ${root}`)
  return await import(pathToFileURL(path).href) as T
}

/** `NAME=value,NAME=value` from `name` (a side's extra settings). */
function sideEnv (name: string): Record<string, string> {
  const raw = process.env[name] ?? ''
  const out: Record<string, string> = {}
  for (const item of raw.split(',').filter((x) => x !== '')) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new Error(`${name} must be NAME=value[,NAME=value…], got ${raw}`)
    out[item.slice(0, eq)] = item.slice(eq + 1)
  }
  return out
}

async function start (label: string, root: string): Promise<Side> {
  const { RemoteQueue: Client } = await load<RemoteQueueModule>(root, 'src/client/remote-queue.js')
  const { sandbox, startDaemon } = await load<ProcsModule>(root, 'test/helpers/procs.js')
  const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error', ...sideEnv(`AB_ENV_${label}`) })
  const svc = await startDaemon('serve', [], box.env)
  const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--concurrency', '32', '--batch', '32', '--task-types', 'echo', '--worker-id', `ab-${label}`], box.env)
  const rq = new Client({ multiaddr: svc.multiaddr, env: box.env, addressBookPath: null })
  return { label, box, svc, worker, rq, p50s: [], svcCpuMs: 0, workerCpuMs: 0, timed: 0 }
}

async function stop (side: Side): Promise<void> {
  await side.rq.close().catch(() => {})
  await side.worker.stop()
  await side.svc.stop()
  side.box.cleanup()
}

async function main (): Promise<void> {
  const roots = process.argv.slice(2)
  if (roots.length !== 2) throw new Error('usage: node dist/bench/ab.js <checkout A> <checkout B>')
  const BURST = positive('AB_BURST', 500)
  const ROUNDS = positive('AB_ROUNDS', 12)
  const mode = process.env.AB_MODE ?? 'submit+wait'
  if (!isMode(mode)) throw new Error(`AB_MODE must be ${ROUND_TRIP_MODES.join(' or ')}, got ${mode}`)
  const sides: Side[] = []
  try {
    for (const [i, root] of roots.entries()) sides.push(await start(i === 0 ? 'A' : 'B', resolve(root)))
    for (const side of sides) {
      if (typeof side.rq.submitAndWait !== 'function' && mode !== 'submit+wait') throw new Error(`${roots[sides.indexOf(side)]} has no submitAndWait: use AB_MODE=submit+wait`)
      await roundTrips(side.rq, 1000, mode)
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
        const svc0 = cpuMs(side.svc.proc.pid!)
        const worker0 = cpuMs(side.worker.proc.pid!)
        side.p50s.push(median(await roundTrips(side.rq, BURST, mode)))
        side.svcCpuMs += cpuMs(side.svc.proc.pid!) - svc0
        side.workerCpuMs += cpuMs(side.worker.proc.pid!) - worker0
        side.timed += BURST
      }
    }
  } finally {
    for (const side of sides) await stop(side)
  }
  for (const [i, s] of sides.entries()) {
    const mean = s.p50s.reduce((a, b) => a + b, 0) / s.p50s.length
    const perRt = (ms: number): string => `${(ms * 1000 / s.timed).toFixed(0)} µs`
    process.stdout.write(`${s.label} ${roots[i]}: burst p50 median ${median(s.p50s).toFixed(3)} ms, mean ${mean.toFixed(3)} ms; CPU per round trip: service ${perRt(s.svcCpuMs)}, worker ${perRt(s.workerCpuMs)}\n`)
  }
  const [a, b] = sides
  const faster = b.p50s.filter((v, i) => v < a.p50s[i]).length
  process.stdout.write(`B faster in ${faster}/${ROUNDS} bursts (${mode})\n`)
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`ab failed: ${(err as Error).message}\n`)
  process.exit(1)
})
