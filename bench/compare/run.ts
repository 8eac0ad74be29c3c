/**
 * `npm run bench -- --only bullmq` (issue 17): BullMQ on Redis (AOF, appendfsync
 * everysec) and this project side by side, on the same shapes and the same process
 * layout — a producer process, a worker process, and the server (redis-server / our
 * `serve`) — in alternating rounds B, O, B, O, … Every round starts from a fresh,
 * empty server. Per figure it prints each side's value per round, the per-round ratio
 * ours/BullMQ and the median ratio, with its target.
 *
 * Shapes (sizes from the environment, so a quick run is possible; compare/shapes.ts):
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
import { sandbox, startDaemon } from '../../test/helpers/procs.js'
import { cpuMs, writeSyscalls } from '../proc-stats.js'
import { benchTransportFloor } from '../floor.js'
import { ensureRedisServer, loudly, startRedis } from './redis.js'
import { Figures } from './figures.js'
import { forkChild, settlePid, stopAll, stopWorkerChild } from './processes.js'
import { config, listEnv, runShape, shapeTitle } from './shapes.js'
import type { Config, Setup } from './shapes.js'

type SideName = 'bullmq' | 'ours'

const serverCpu = (pid: number): Setup['cpu'][number] => ({ name: 'server', cpuMs: () => cpuMs(pid), writes: () => writeSyscalls(pid) })
const workerCpu = (pid: number | undefined): Setup['cpu'] => pid === undefined ? [] : [{ name: 'worker process', cpuMs: () => cpuMs(pid) }]

async function setUpBullmq (redisBinary: string, cfg: Config, withWorker: boolean): Promise<Setup & { serverPid: number }> {
  const redis = await startRedis(redisBinary)
  const stops: Array<() => Promise<void>> = [redis.stop]
  try {
    const worker = withWorker ? await forkChild(['bullmq-worker', String(redis.port), String(cfg.concurrency)], process.env) : null
    if (worker !== null) stops.unshift(async () => { await stopWorkerChild(worker) })
    const producer = await forkChild(['producer', 'bullmq', String(redis.port)], process.env)
    stops.unshift(producer.stop)
    return { serverPid: redis.proc.pid!, cpu: [serverCpu(redis.proc.pid!), ...workerCpu(worker?.proc.pid)], producer, stop: async () => { await stopAll(stops) } }
  } catch (err) {
    await stopAll(stops)
    throw err
  }
}

async function setUpOurs (cfg: Config, withWorker: boolean): Promise<Setup & { serverPid: number }> {
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
    return { serverPid: svc.proc.pid!, cpu: [serverCpu(svc.proc.pid!), ...workerCpu(worker?.proc.pid)], producer, stop: async () => { await stopAll(stops) } }
  } catch (err) {
    await stopAll(stops)
    throw err
  }
}

export async function benchBullmq (): Promise<void> {
  const cfg = config()
  const sides = listEnv('BENCH_CMP_SIDES', ['bullmq', 'ours'] as const)
  let redisBinary = ''
  if (sides.includes('bullmq')) {
    redisBinary = ensureRedisServer()
  } else {
    loudly('BULLMQ SIDE NOT RUN (BENCH_CMP_SIDES=ours): these are our figures alone, no comparison')
  }
  process.stdout.write(`[bullmq] alternating rounds ${sides.map((s) => s === 'bullmq' ? 'B' : 'O').join(', ')}, … × ${cfg.rounds}; BullMQ on redis-server (AOF, appendfsync everysec), fresh server each round\n`)
  for (const shape of cfg.shapes) {
    const figs = new Figures([{ key: 'bullmq', label: 'BullMQ' }, { key: 'ours', label: 'ours' }])
    const withWorker = shape !== 'deep'
    for (let round = 0; round < cfg.rounds; round++) {
      for (const side of sides as SideName[]) {
        const setup = side === 'bullmq' ? await setUpBullmq(redisBinary, cfg, withWorker) : await setUpOurs(cfg, withWorker)
        try {
          await settlePid(setup.serverPid)
          await runShape(shape, side, side === 'bullmq', setup, cfg, figs, { oneByOne: '≥ 1.5×', bulk: '≥ 1.5×', roundTrip: '≤ 0.8×' })
        } finally {
          await setup.stop()
        }
      }
    }
    figs.print(shapeTitle('bullmq', shape, cfg))
  }
  // What one request/reply costs below either system on this machine, beside the CPU figures.
  process.stdout.write('\n[bullmq] transport floor on this machine (as `--only floor`)\n')
  await benchTransportFloor()
}
