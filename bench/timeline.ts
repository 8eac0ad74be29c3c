/**
 * `--only timeline`: where the submit → completed round trip spends its time. Service,
 * worker and client record the time of every TCP read and write (timeline-probe.ts);
 * each round trip is then cut at the socket events that carry it:
 *
 *   client writes submit → service reads it → service writes the claimed task to the
 *   worker → worker reads it → worker writes the complete → service reads it → service
 *   writes the outcome to the client → the client's call returns
 *
 * and the median of every step is printed. The round trip is the one-call form
 * (submit with wait_s) unless BENCH_TIMELINE_MODE=submit+wait: then the outcome is the
 * reply to a wait the client sent once the submit was answered. "hop" steps are kernel
 * and scheduler time between two processes (plus Noise/Yamux on both ends); the others
 * are one process's own work, up to the syscall that sends its answer.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RemoteQueue } from '../src/client/remote-queue.js'
import { sandbox, startDaemon } from '../test/helpers/procs.js'
import { READ, WRITE, installProbe, nowUs, probeEvents, resetProbe, uninstallProbe } from './timeline-probe.js'
import type { SocketEvent } from './timeline-probe.js'
import { median, report } from './report.js'
import { ROUND_TRIP_MODES, isMode, roundTrips } from './round-trip.js'
import type { RoundTripMode } from './round-trip.js'

const WARMUP = Number(process.env.BENCH_RTT_WARMUP ?? 1000) + 300
const ROUNDS = Number(process.env.BENCH_TIMELINE_ROUNDS ?? 500)
const MODE = process.env.BENCH_TIMELINE_MODE ?? 'submit(wait_s)'

const STEPS = [
  'client: submit call -> write',
  'hop: client -> service',
  'service: read submit -> write claimed task to worker',
  'hop: service -> worker',
  'worker: read task -> write complete',
  'hop: worker -> service',
  'service: read complete -> write outcome to the client',
  'hop + client: outcome written -> the call returns'
] as const

interface Lines { client: SocketEvent[], service: SocketEvent[], worker: SocketEvent[] }

/** First event at or after `t` that matches, or null. */
function firstAfter (events: SocketEvent[], t: number, match: (e: SocketEvent) => boolean): number | null {
  for (const e of events) if (e[0] >= t && match(e)) return e[0]
  return null
}

/** Last event at or before `t` that matches, or null. */
function lastBefore (events: SocketEvent[], t: number, match: (e: SocketEvent) => boolean): number | null {
  let found: number | null = null
  for (const e of events) {
    if (e[0] > t) break
    if (match(e)) found = e[0]
  }
  return found
}

/**
 * The step durations (µs) of one round trip [t0, t2], or null when its events do not
 * line up. The worker's first write after the submit arrived is its complete (its next
 * long-poll claim follows the complete); the task it completes is the last thing it
 * read before; the service wrote that to it last before.
 */
export function cutRoundTrip (lines: Lines, clientPort: number, t0: number, t2: number): number[] | null {
  // Port 0: a pipe (child stdio), not a connection.
  const fromClient = (e: SocketEvent): boolean => e[3] === clientPort
  const fromWorker = (e: SocketEvent): boolean => e[3] !== clientPort && e[3] !== 0
  const a = firstAfter(lines.client, t0, (e) => e[1] === WRITE && e[3] !== 0)
  if (a === null) return null
  const b = firstAfter(lines.service, a, (e) => e[1] === READ && fromClient(e))
  if (b === null) return null
  const e = firstAfter(lines.worker, b, (x) => x[1] === WRITE && x[3] !== 0)
  if (e === null) return null
  const d = lastBefore(lines.worker, e, (x) => x[1] === READ && x[3] !== 0)
  if (d === null) return null
  const c = lastBefore(lines.service, d, (x) => x[1] === WRITE && fromWorker(x))
  const f = firstAfter(lines.service, e, (x) => x[1] === READ && fromWorker(x))
  const g = lastBefore(lines.service, t2, (x) => x[1] === WRITE && fromClient(x))
  if (c === null || f === null || g === null) return null
  const points = [t0, a, b, c, d, e, f, g, t2]
  for (let i = 1; i < points.length; i++) if (points[i] < points[i - 1]) return null
  return points.slice(1).map((p, i) => p - points[i])
}

export async function benchRoundTripTimeline (): Promise<void> {
  if (!(ROUNDS > 0)) throw new Error('BENCH_TIMELINE_ROUNDS must be a positive number')
  if (!isMode(MODE)) throw new Error(`BENCH_TIMELINE_MODE must be ${ROUND_TRIP_MODES.join(' or ')}, got ${MODE}`)
  const dir = mkdtempSync(join(tmpdir(), 'tq-timeline-'))
  const probe = fileURLToPath(new URL('./timeline-probe.js', import.meta.url))
  const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error', NODE_OPTIONS: `--import ${probe}`, TASKQUEUE_BENCH_TIMELINE_DIR: dir })
  const marks: Array<[number, number]> = []
  let lines: Lines
  try {
    await recordRoundTrips(box.env, MODE, marks)
    const load = (role: string): SocketEvent[] => (JSON.parse(readFileSync(join(dir, `${role}.json`), 'utf8')) as SocketEvent[]).filter((e) => e[0] >= marks[0][0])
    lines = { client: probeEvents(), service: load('service'), worker: load('worker') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    box.cleanup()
  }
  const clientPort = lines.client.find((e) => e[1] === WRITE && e[3] !== 0)?.[2] ?? 0
  const cut = marks.map(([t0, t2]) => cutRoundTrip(lines, clientPort, t0, t2)).filter((s): s is number[] => s !== null)
  if (cut.length < ROUNDS / 2) throw new Error(`only ${cut.length} of ${ROUNDS} round trips could be cut into steps`)
  report(`round trip in steps, ${MODE} (${cut.length}/${ROUNDS} cut), p50`, `${(median(marks.map(([a, b]) => b - a)) / 1000).toFixed(3)} ms`, 'reported')
  STEPS.forEach((name, i) => { report(`  ${name}`, `${(median(cut.map((s) => s[i])) / 1000).toFixed(3)} ms`, 'reported') })
}

/** Runs the round trips against a probed service and worker; the daemons write their events when they exit. */
async function recordRoundTrips (env: Record<string, string>, mode: RoundTripMode, marks: Array<[number, number]>): Promise<void> {
  const svc = await startDaemon('serve', [], { ...env, TASKQUEUE_BENCH_TIMELINE_ROLE: 'service' })
  try {
    const worker = await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--concurrency', '32', '--batch', '32', '--task-types', 'echo', '--worker-id', 'bench-worker'], { ...env, TASKQUEUE_BENCH_TIMELINE_ROLE: 'worker' })
    installProbe()
    const rq = new RemoteQueue({ multiaddr: svc.multiaddr, env, addressBookPath: null })
    try {
      const roundTrip = async (): Promise<[number, number]> => {
        const t0 = nowUs()
        await roundTrips(rq, 1, mode)
        return [t0, nowUs()]
      }
      for (let i = 0; i < WARMUP; i++) await roundTrip()
      resetProbe()
      for (let i = 0; i < ROUNDS; i++) marks.push(await roundTrip())
    } finally {
      uninstallProbe()
      await rq.close()
      await worker.stop()
    }
  } finally {
    await svc.stop()
  }
}
