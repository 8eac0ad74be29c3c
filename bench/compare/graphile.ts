/**
 * `npm run bench -- --only graphile` (issue 20): graphile-worker (devDependency, pinned
 * exactly) and this project, both on PostgreSQL, side by side on the shapes of the BullMQ
 * comparison (one-by-one, bulk, round trip; compare/shapes.ts, the same BENCH_CMP_*
 * sizes). Each round starts a fresh PostgreSQL cluster (Debian's binaries, found under
 * /usr/lib/postgresql/<v>/bin, installed with apt-get when missing; a loud banner and a
 * failure when neither works) on a loopback port, durable as an operator runs it
 * (fsync and synchronous_commit on), in a directory removed afterwards. Sides, in
 * alternating rounds G, O1, O2, G, …:
 *
 * - graphile: graphile-worker's worker process (`run`, concurrency BENCH_CMP_CONCURRENCY)
 *   and a producer using its WorkerUtils (`addJob`, `addJobs`); the round trip is
 *   `addJob` until the job's completion is notified (compare/graphile-side.ts);
 * - ours-1: one `taskqueue-p2p serve --queue-url` on the cluster, our worker and producer
 *   connected to it;
 * - ours-2: two coordinators on the same database; the producer talks to the first, the
 *   worker to the second, so every hand-off between them crosses the database (a submit
 *   on one wakes a claim parked on the other through LISTEN/NOTIFY, a complete on the
 *   other wakes the wait).
 *
 * BENCH_CMP_PG_SIDES picks sides (graphile, ours-1, ours-2). CPU per task is reported
 * for the database (the postmaster and every backend), our coordinators, the worker
 * process and the producer: their sum is what N machines would have to share.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sandbox, startDaemon } from '../../test/helpers/procs.js'
import type { Daemon } from '../../test/helpers/procs.js'
import { postgresBinDir, startPostgres } from '../../test/helpers/postgres.js'
import type { PgCluster } from '../../test/helpers/postgres.js'
import { cpuMs, treeCpuMs } from '../proc-stats.js'
import { ensureDebianPackage, loudly } from './redis.js'
import { Figures } from './figures.js'
import { forkChild, settle, stopAll, stopWorkerChild } from './processes.js'
import { config, listEnv, runShape, shapeTitle } from './shapes.js'
import type { Config, CpuSource, Setup } from './shapes.js'

const PG_SIDES = ['graphile', 'ours-1', 'ours-2'] as const
type PgSide = typeof PG_SIDES[number]

/** The cluster's postmaster: the first line of its postmaster.pid. */
function postmasterPid (cluster: PgCluster): number {
  return Number(readFileSync(join(cluster.dataDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
}

function databaseCpu (cluster: PgCluster): CpuSource {
  const pid = postmasterPid(cluster)
  return { name: 'database (all PostgreSQL processes)', cpuMs: () => treeCpuMs(pid) }
}

async function setUpGraphile (cluster: PgCluster, url: string, cfg: Config): Promise<Setup> {
  const stops: Array<() => Promise<void>> = []
  try {
    // The worker process migrates the schema first; the producer then finds it in place.
    const worker = await forkChild(['graphile-worker', url, String(cfg.concurrency)], process.env)
    stops.unshift(async () => { await stopWorkerChild(worker) })
    const producer = await forkChild(['producer', 'graphile', url], process.env)
    stops.unshift(producer.stop)
    const cpu = [databaseCpu(cluster), { name: 'worker process', cpuMs: () => cpuMs(worker.proc.pid!) }]
    return { cpu, producer, stop: async () => { await stopAll(stops) } }
  } catch (err) {
    await stopAll(stops)
    throw err
  }
}

async function setUpOurs (cluster: PgCluster, url: string, cfg: Config, coordinators: number): Promise<Setup> {
  const childOptions = process.env.BENCH_CHILD_NODE_OPTIONS
  const stops: Array<() => Promise<void>> = []
  try {
    const services: Daemon[] = []
    for (let i = 0; i < coordinators; i++) {
      // Each coordinator has its own state directory (identity, announce file, lock).
      const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error', ...(childOptions !== undefined ? { NODE_OPTIONS: childOptions } : {}) })
      stops.unshift(async () => { box.cleanup() })
      const svc = await startDaemon('serve', ['--queue-url', url], box.env)
      stops.unshift(async () => { await svc.stop() })
      services.push(svc)
    }
    const box = sandbox({ TASKQUEUE_P2P_LOG_LEVEL: 'error', ...(childOptions !== undefined ? { NODE_OPTIONS: childOptions } : {}) })
    stops.unshift(async () => { box.cleanup() })
    const workerAt = services[services.length - 1]
    const worker = await startDaemon('worker', ['--multiaddr', workerAt.multiaddr, '--concurrency', String(cfg.concurrency), '--batch', String(cfg.concurrency), '--task-types', 'echo', '--worker-id', 'bench-worker'], box.env)
    stops.unshift(async () => { await worker.stop() })
    const producer = await forkChild(['producer', 'ours', services[0].multiaddr], { ...process.env, ...box.env })
    stops.unshift(producer.stop)
    const cpu: CpuSource[] = [
      databaseCpu(cluster),
      { name: 'coordinators', cpuMs: () => services.reduce((sum, s) => sum + cpuMs(s.proc.pid!), 0) },
      { name: 'worker process', cpuMs: () => cpuMs(worker.proc.pid!) }
    ]
    return { cpu, producer, stop: async () => { await stopAll(stops) } }
  } catch (err) {
    await stopAll(stops)
    throw err
  }
}

/** PostgreSQL's server binaries, installing Debian's `postgresql` when they are missing. */
function ensurePostgres (): void {
  if (postgresBinDir() !== null) return
  ensureDebianPackage('postgresql', () => postgresBinDir(), 'GRAPHILE-WORKER COMPARISON CANNOT RUN')
}

export async function benchGraphile (): Promise<void> {
  const cfg = config(['one-by-one', 'bulk', 'round-trip'])
  const sides = listEnv('BENCH_CMP_PG_SIDES', PG_SIDES)
  ensurePostgres()
  if (!sides.includes('graphile')) loudly('GRAPHILE-WORKER SIDE NOT RUN (BENCH_CMP_PG_SIDES without graphile): these are our figures alone, no comparison')
  process.stdout.write(`[graphile] alternating rounds ${sides.join(', ')}, … × ${cfg.rounds}; PostgreSQL at ${postgresBinDir() ?? '?'} (fsync and synchronous_commit on), fresh cluster each round; ` +
    'ours-1 = one coordinator, ours-2 = two (producer on the first, worker on the second)\n')
  // A build whose serve cannot run on PostgreSQL loses our sides, loudly, not the whole bench.
  const dropped = new Set<PgSide>()
  for (const shape of cfg.shapes) {
    const figs = new Figures([{ key: 'graphile', label: 'graphile' }, { key: 'ours-1', label: 'ours-1' }, { key: 'ours-2', label: 'ours-2' }])
    for (let round = 0; round < cfg.rounds; round++) {
      for (const side of sides as PgSide[]) {
        if (dropped.has(side)) continue
        const cluster = await startPostgres({ durable: true })
        try {
          const url = cluster.createDatabase('bench')
          let setup: Setup
          try {
            setup = side === 'graphile' ? await setUpGraphile(cluster, url, cfg) : await setUpOurs(cluster, url, cfg, side === 'ours-1' ? 1 : 2)
          } catch (err) {
            if (side === 'graphile') throw err
            loudly(`OUR SIDES NOT RUN: ${side} did not start on PostgreSQL (${String((err as Error).message).split('\n').slice(0, 3).join(' ')})`)
            for (const ours of ['ours-1', 'ours-2'] as const) dropped.add(ours)
            continue
          }
          try {
            await settle(() => setup.cpu.reduce((sum, c) => sum + c.cpuMs(), 0))
            // Issue 20's targets: one-by-one at least graphile-worker's, round trip p50 below its add → completed.
            await runShape(shape, side, side === 'graphile', setup, cfg, figs, { oneByOne: '≥ 1×', bulk: 'reported', roundTrip: '< 1×' })
          } finally {
            await setup.stop()
          }
        } finally {
          cluster.stop()
        }
      }
    }
    figs.print(shapeTitle('graphile', shape, cfg))
  }
}
