/**
 * `npm run bench -- --only bullmq` (issue 17): BullMQ on Redis (AOF, appendfsync
 * everysec) and this project side by side, on the same shapes and the same process
 * layout — a producer process, a worker process, and the server (redis-server / our
 * `serve`) — in alternating rounds B, O, B, O, … Every round starts from a fresh,
 * empty server. Per figure it prints each side's value per round, the per-round ratio
 * ours/BullMQ and the median ratio, with its target.
 *
 * Shapes (sizes from the environment, so a quick run is possible):
 * - one-by-one: BENCH_CMP_SUBMITTERS (16) concurrent awaited submitters, BENCH_CMP_TASKS
 *   (20,000) no-op tasks, one worker process of concurrency BENCH_CMP_CONCURRENCY (32);
 * - bulk: the same tasks added in batches of BENCH_CMP_BATCH (1,000): addBulk / submit_many;
 * - round-trip: BENCH_CMP_RTT (1,000) sequential submit -> completed with an idle
 *   worker, after BENCH_CMP_RTT_WARMUP (200): BullMQ's add + QueueEvents
 *   waitUntilFinished against ours as two requests (the original protocol's form) and
 *   as one (submitAndWait);
 * - deep: submit and claim latency (BENCH_CMP_DEEP_SAMPLES, 500, of each) with
 *   BENCH_CMP_SHALLOW (1,000) and BENCH_CMP_DEEP (1,000,000) tasks waiting.
 * BENCH_CMP_ROUNDS (3) rounds per side; BENCH_CMP_SHAPES picks shapes (comma list);
 * BENCH_CMP_SIDES=ours runs our side alone (no Redis needed: the smoke test).
 * Server and worker CPU per task come from /proc (utime + stime) over the timed phase,
 * the producer's from its own process.cpuUsage.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { sandbox, startDaemon } from '../../test/helpers/procs.js'
import { positive } from '../env.js'
import { cpuMs, writeSyscalls } from '../proc-stats.js'
import { median, pct } from '../report.js'
import { benchTransportFloor } from '../floor.js'
import { ensureRedisServer, loudly, startRedis } from './redis.js'
import type { ProducerReply, ProducerRequest } from './protocol.js'

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url))
const SHAPES = ['one-by-one', 'bulk', 'round-trip', 'deep'] as const
type Shape = typeof SHAPES[number]
type SideName = 'bullmq' | 'ours'

interface Config {
  tasks: number
  submitters: number
  concurrency: number
  batch: number
  rtt: number
  rttWarmup: number
  shallow: number
  deep: number
  deepSamples: number
  rounds: number
  shapes: Shape[]
  sides: SideName[]
}

function listEnv<T extends string> (name: string, known: readonly T[]): T[] {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return [...known]
  const wanted = raw.split(',').map((s) => s.trim())
  const bad = wanted.filter((w) => !(known as readonly string[]).includes(w))
  if (bad.length > 0) throw new Error(`${name}: unknown ${bad.join(', ')}; known: ${known.join(', ')}`)
  return known.filter((k) => wanted.includes(k))
}

function config (): Config {
  return {
    tasks: positive('BENCH_CMP_TASKS', 20_000),
    submitters: positive('BENCH_CMP_SUBMITTERS', 16),
    concurrency: positive('BENCH_CMP_CONCURRENCY', 32),
    batch: positive('BENCH_CMP_BATCH', 1000),
    rtt: positive('BENCH_CMP_RTT', 1000),
    rttWarmup: positive('BENCH_CMP_RTT_WARMUP', 200),
    shallow: positive('BENCH_CMP_SHALLOW', 1000),
    deep: positive('BENCH_CMP_DEEP', 1_000_000),
    deepSamples: positive('BENCH_CMP_DEEP_SAMPLES', 500),
    rounds: positive('BENCH_CMP_ROUNDS', 3),
    shapes: listEnv('BENCH_CMP_SHAPES', SHAPES),
    sides: listEnv('BENCH_CMP_SIDES', ['bullmq', 'ours'] as const)
  }
}

// ---- processes ---------------------------------------------------------------------------

interface Child { proc: ChildProcess, request: (msg: ProducerRequest) => Promise<ProducerReply>, stop: () => Promise<void> }

async function forkChild (args: string[], env: NodeJS.ProcessEnv): Promise<Child> {
  const proc = fork(CHILD, args, { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const next = async <T>(): Promise<T> => await new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null): void => { reject(new Error(`bench child ${args[0]} exited with ${String(code)}`)) }
    proc.once('exit', onExit)
    proc.once('message', (m) => {
      proc.off('exit', onExit)
      const msg = m as { error?: string }
      if (typeof msg.error === 'string') reject(new Error(msg.error))
      else resolve(m as T)
    })
  })
  await next<{ ready: true }>()
  return {
    proc,
    request: async (msg) => {
      const reply = next<ProducerReply>()
      proc.send(msg)
      return await reply
    },
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        if (proc.connected) proc.send({ close: true })
        else proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
    }
  }
}

/** One side's server, worker and producer, fresh for one round. */
interface Setup { serverPid: number, workerPid: number | null, producer: Child, stop: () => Promise<void> }

async function setUpBullmq (redisBinary: string, cfg: Config, withWorker: boolean): Promise<Setup> {
  const redis = await startRedis(redisBinary)
  const stops: Array<() => Promise<void>> = [redis.stop]
  try {
    const worker = withWorker ? await forkChild(['bullmq-worker', String(redis.port), String(cfg.concurrency)], process.env) : null
    if (worker !== null) stops.unshift(async () => { worker.proc.kill('SIGTERM'); await new Promise((resolve) => worker.proc.once('exit', resolve)) })
    const producer = await forkChild(['producer', 'bullmq', String(redis.port)], process.env)
    stops.unshift(producer.stop)
    return { serverPid: redis.proc.pid!, workerPid: worker?.proc.pid ?? null, producer, stop: async () => { for (const s of stops) await s() } }
  } catch (err) {
    for (const s of stops) await s()
    throw err
  }
}

async function setUpOurs (cfg: Config, withWorker: boolean): Promise<Setup> {
  // BENCH_CHILD_NODE_OPTIONS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) reaches our
  // service and worker, as in the other sections, to profile them under this load.
  const childOptions = process.env.BENCH_CHILD_NODE_OPTIONS
  const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error', ...(childOptions !== undefined ? { NODE_OPTIONS: childOptions } : {}) })
  const stops: Array<() => Promise<void>> = [async () => { box.cleanup() }]
  try {
    const svc = await startDaemon('serve', [], box.env)
    stops.unshift(async () => { await svc.stop() })
    const worker = withWorker
      ? await startDaemon('worker', ['--multiaddr', svc.multiaddr, '--concurrency', String(cfg.concurrency), '--batch', String(cfg.concurrency), '--task-types', 'echo', '--worker-id', 'bench-worker'], box.env)
      : null
    if (worker !== null) stops.unshift(async () => { await worker.stop() })
    const producer = await forkChild(['producer', 'ours', svc.multiaddr], { ...process.env, ...box.env })
    stops.unshift(producer.stop)
    return { serverPid: svc.proc.pid!, workerPid: worker?.proc.pid ?? null, producer, stop: async () => { for (const s of stops) await s() } }
  } catch (err) {
    for (const s of stops) await s()
    throw err
  }
}

// ---- figures -----------------------------------------------------------------------------

/** One printed figure: its value per round on each side; the ratio is ours / BullMQ. */
interface Figure { name: string, unit: string, digits: number, target: string, values: Record<SideName, number[]> }

class Figures {
  private readonly list: Figure[] = []
  add (name: string, side: SideName, value: number, unit: string, digits: number, target = 'reported'): void {
    let f = this.list.find((x) => x.name === name)
    if (f === undefined) {
      f = { name, unit, digits, target, values: { bullmq: [], ours: [] } }
      this.list.push(f)
    }
    f.values[side].push(value)
  }

  print (title: string): void {
    process.stdout.write(`\n${title}\n`)
    for (const f of this.list) {
      const fmt = (v: number): string => v.toLocaleString('en-US', { minimumFractionDigits: f.digits, maximumFractionDigits: f.digits })
      const b = f.values.bullmq
      const o = f.values.ours
      const ratios = o.map((v, i) => b[i] === undefined || b[i] === 0 ? NaN : v / b[i]).filter((r) => Number.isFinite(r))
      // A growth factor is each side's own; dividing one by the other means nothing.
      const both = ratios.length > 0 && f.unit !== '×'
      process.stdout.write(`  ${f.name}${f.unit === '' ? '' : ` (${f.unit})`}\n`)
      if (b.length > 0) process.stdout.write(`    BullMQ  ${b.map(fmt).join(' | ')}   median ${fmt(median(b))}\n`)
      if (o.length > 0) process.stdout.write(`    ours    ${o.map(fmt).join(' | ')}   median ${fmt(median(o))}\n`)
      if (both) process.stdout.write(`    ratio ours/BullMQ per round ${ratios.map((r) => r.toFixed(2)).join(' | ')}   median ${median(ratios).toFixed(2)}×   (target ${f.target})\n`)
      else if (f.target !== 'reported') process.stdout.write(`    (target ${f.target})\n`)
    }
  }
}

const perTaskUs = (ms: number, tasks: number): number => ms * 1000 / tasks

/**
 * Waits (at most 5 s) until the server has been quiet for 200 ms: our service finishes
 * loading parts of libp2p after its ready line, and a round must not time that.
 */
async function settle (pid: number): Promise<void> {
  const end = Date.now() + 5000
  let before = cpuMs(pid)
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    const now = cpuMs(pid)
    if (now - before <= 20) return
    before = now
  }
}

async function runShape (shape: Shape, side: SideName, setup: Setup, cfg: Config, figs: Figures): Promise<void> {
  const cpu0 = { server: cpuMs(setup.serverPid), worker: setup.workerPid === null ? 0 : cpuMs(setup.workerPid), serverWrites: writeSyscalls(setup.serverPid) }
  const cpuFigures = (tasks: number, producerUs: number): void => {
    figs.add('server CPU per task', side, perTaskUs(cpuMs(setup.serverPid) - cpu0.server, tasks), 'µs', 0, 'reported')
    // Socket writes wake another process; with the store's own writes (WAL / AOF) included.
    figs.add('server write system calls per task', side, (writeSyscalls(setup.serverPid) - cpu0.serverWrites) / tasks, '', 2, 'reported')
    if (setup.workerPid !== null) figs.add('worker process CPU per task', side, perTaskUs(cpuMs(setup.workerPid) - cpu0.worker, tasks), 'µs', 0, 'reported')
    figs.add('producer process CPU per task', side, producerUs / tasks, 'µs', 0, 'reported')
  }
  if (shape === 'one-by-one' || shape === 'bulk') {
    const req: ProducerRequest = shape === 'one-by-one'
      ? { shape, tasks: cfg.tasks, submitters: cfg.submitters }
      : { shape, tasks: cfg.tasks, batch: cfg.batch }
    const r = await setup.producer.request(req)
    if (r.shape !== shape) throw new Error(`unexpected reply ${r.shape}`)
    figs.add('end to end', side, cfg.tasks / (r.totalMs / 1000), 'tasks/s', 0, '≥ 1.5×')
    figs.add('submit phase alone', side, cfg.tasks / (r.submitMs / 1000), 'tasks/s', 0)
    cpuFigures(cfg.tasks, r.cpuUs)
  } else if (shape === 'round-trip') {
    const r = await setup.producer.request({ shape, samples: cfg.rtt, warmup: cfg.rttWarmup })
    if (r.shape !== shape) throw new Error(`unexpected reply ${r.shape}`)
    // BullMQ has one form; it is the yardstick for both of ours.
    const bull = r.forms['add + waitUntilFinished']
    const forms: Array<[string, number[] | undefined]> = side === 'bullmq'
      ? [['two requests (ours: submit, then wait)', bull], ['one request (ours: submitAndWait)', bull]]
      : [['two requests (ours: submit, then wait)', r.forms['submit, then wait']], ['one request (ours: submitAndWait)', r.forms.submitAndWait]]
    for (const [name, lat] of forms) {
      if (lat === undefined) throw new Error(`round-trip form missing: ${name}`)
      figs.add(`${name}, p50`, side, pct(lat, 0.5), 'ms', 3, '≤ 0.8×')
      figs.add(`${name}, p99`, side, pct(lat, 0.99), 'ms', 3)
    }
    cpuFigures(cfg.rtt * (side === 'ours' ? 2 : 1) + cfg.rttWarmup * (side === 'ours' ? 2 : 1), r.cpuUs)
  } else {
    const depths = [cfg.shallow, cfg.deep]
    const r = await setup.producer.request({ shape, depths, samples: cfg.deepSamples })
    if (r.shape !== shape) throw new Error(`unexpected reply ${r.shape}`)
    const [lo, hi] = depths.map((d) => r.depths[String(d)])
    const n = (d: number): string => d.toLocaleString('en-US')
    for (const [depth, at] of [[cfg.shallow, lo], [cfg.deep, hi]] as const) {
      figs.add(`claim p50, ${n(depth)} waiting`, side, pct(at.claim, 0.5), 'ms', 3)
      figs.add(`submit p50, ${n(depth)} waiting`, side, pct(at.submit, 0.5), 'ms', 3)
      figs.add(`claim p99, ${n(depth)} waiting`, side, pct(at.claim, 0.99), 'ms', 3)
    }
    figs.add(`claim p50 growth, ${n(cfg.deep)} vs ${n(cfg.shallow)} waiting`, side, pct(hi.claim, 0.5) / pct(lo.claim, 0.5), '×', 2, 'ours ≤ 2× (its own growth, not the ratio)')
    figs.add(`submit p50 growth, ${n(cfg.deep)} vs ${n(cfg.shallow)} waiting`, side, pct(hi.submit, 0.5) / pct(lo.submit, 0.5), '×', 2)
    figs.add(`filling the backlog to ${n(cfg.deep)} (batches of 1,000)`, side, (cfg.deep - cfg.shallow) / (hi.fillMs / 1000), 'tasks/s', 0)
  }
}

function shapeTitle (shape: Shape, cfg: Config): string {
  const n = (v: number): string => v.toLocaleString('en-US')
  switch (shape) {
    case 'one-by-one': return `[bullmq] one-by-one: ${n(cfg.tasks)} no-op tasks, ${cfg.submitters} concurrent awaited submitters, one worker process of concurrency ${cfg.concurrency}`
    case 'bulk': return `[bullmq] bulk: ${n(cfg.tasks)} no-op tasks added in batches of ${n(cfg.batch)} (addBulk / submit_many), then processed`
    case 'round-trip': return `[bullmq] round trip: ${n(cfg.rtt)} sequential submit -> completed, idle worker (after ${n(cfg.rttWarmup)} untimed)`
    case 'deep': return `[bullmq] deep queue: ${n(cfg.deepSamples)} claims and submits with ${n(cfg.shallow)} vs ${n(cfg.deep)} tasks waiting (no worker)`
  }
}

export async function benchBullmq (): Promise<void> {
  const cfg = config()
  let redisBinary = ''
  if (cfg.sides.includes('bullmq')) {
    redisBinary = ensureRedisServer()
  } else {
    loudly('BULLMQ SIDE NOT RUN (BENCH_CMP_SIDES=ours): these are our figures alone, no comparison')
  }
  process.stdout.write(`[bullmq] alternating rounds ${cfg.sides.map((s) => s === 'bullmq' ? 'B' : 'O').join(', ')}, … × ${cfg.rounds}; BullMQ on redis-server (AOF, appendfsync everysec), fresh server each round\n`)
  for (const shape of cfg.shapes) {
    const figs = new Figures()
    const withWorker = shape !== 'deep'
    for (let round = 0; round < cfg.rounds; round++) {
      for (const side of cfg.sides) {
        const setup = side === 'bullmq' ? await setUpBullmq(redisBinary, cfg, withWorker) : await setUpOurs(cfg, withWorker)
        try {
          await settle(setup.serverPid)
          await runShape(shape, side, setup, cfg, figs)
        } finally {
          await setup.stop()
        }
      }
    }
    figs.print(shapeTitle(shape, cfg))
  }
  // What one request/reply costs below either system on this machine, beside the CPU figures.
  process.stdout.write('\n[bullmq] transport floor on this machine (as `--only floor`)\n')
  await benchTransportFloor()
}
