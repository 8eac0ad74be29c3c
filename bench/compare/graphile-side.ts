/**
 * graphile-worker's side of `--only graphile` (compare/graphile.ts): its worker process
 * and its producer, behind the same `ProducerSide` as BullMQ's and ours. Loaded only in
 * the bench's child processes (compare/child.ts).
 *
 * graphile-worker has no "job finished" notification for a client: a job is done when
 * its row is deleted from `graphile_worker._private_jobs` (its `complete_jobs`). For the
 * round trip, the producer installs a trigger that sends `pg_notify` from that delete,
 * in the completing transaction — the counterpart of BullMQ's `completed` event, which
 * the script that completes the job publishes — and LISTENs for it on a connection of
 * its own, opened before the first add.
 */
import { Logger, makeWorkerUtils, run } from 'graphile-worker'
import type { LogLevel } from '@graphile/logger'
import type { ProducerSide } from './sides.js'
import { WORK } from './sides.js'

const DONE_CHANNEL = 'bench_job_done'
const POLL_MS = 20
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** graphile-worker logs every completed job at `info`; the bench keeps warnings and errors. */
export const quietLogger = new Logger(() => (level: LogLevel, message: string) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level}: ${message}\n`)
})

/** The worker process: `run` with a no-op `echo` task. */
export async function runGraphileWorker (connectionString: string, concurrency: number): Promise<() => Promise<void>> {
  const runner = await run({
    connectionString,
    concurrency,
    // graphile-worker's advice: the larger of 10 and concurrency + 2.
    maxPoolSize: Math.max(10, concurrency + 2),
    noHandleSignals: true,
    logger: quietLogger,
    // A no-op: graphile-worker keeps no result (a completed job is deleted).
    taskList: { [WORK]: async () => {} }
  })
  return async () => { await runner.stop() }
}

export async function graphileSide (connectionString: string): Promise<ProducerSide> {
  // Sixteen awaited submitters share the pool: one connection each, as BullMQ's one ioredis connection pipelines them.
  const utils = await makeWorkerUtils({ connectionString, maxPoolSize: 20, logger: quietLogger })
  await utils.migrate()
  // The LISTEN connection is one of the pool's, held until close (no second driver).
  let listening: Promise<void> | null = null
  let unlisten = (): void => {}
  const waiting = new Map<string, () => void>()
  const early = new Set<string>()
  const listen = async (): Promise<void> => {
    if (listening !== null) return
    await utils.withPgClient(async (c) => {
      await c.query(`
        create or replace function graphile_worker.bench_job_done() returns trigger language plpgsql as $$
        begin perform pg_notify('${DONE_CHANNEL}', old.id::text); return old; end $$;
        drop trigger if exists bench_job_done on graphile_worker._private_jobs;
        create trigger bench_job_done after delete on graphile_worker._private_jobs
          for each row execute function graphile_worker.bench_job_done();`)
    })
    await new Promise<void>((resolve, reject) => {
      listening = utils.withPgClient(async (c) => {
        c.on('notification', (n) => {
          const id = n.payload ?? ''
          const wake = waiting.get(id)
          if (wake !== undefined) { waiting.delete(id); wake() } else early.add(id)
        })
        await c.query(`LISTEN ${DONE_CHANNEL}`)
        resolve()
        await new Promise<void>((resolve) => { unlisten = resolve })
        await c.query(`UNLISTEN ${DONE_CHANNEL}`)
      }).catch(reject)
    })
  }
  const finished = async (id: string): Promise<void> => {
    if (early.delete(id)) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`graphile-worker: job ${id} not finished in 30 s`)) }, 30_000)
      waiting.set(id, () => { clearTimeout(timer); resolve() })
    })
  }
  return {
    submit: async (n) => { await utils.addJob(WORK, { n }) },
    submitBatch: async (first, count) => {
      await utils.addJobs(Array.from({ length: count }, (_, i) => ({ identifier: WORK, payload: { n: first + i } })))
    },
    drained: async () => {
      for (;;) {
        const left = await utils.withPgClient(async (c) => (await c.query<{ n: string }>('select count(*) as n from graphile_worker.jobs where task_identifier = $1', [WORK])).rows[0].n)
        if (Number(left) === 0) return
        await sleep(POLL_MS)
      }
    },
    roundTripForms: {
      'addJob + completion notified': async (n) => {
        await listen()
        const out: number[] = []
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const job = await utils.addJob(WORK, { i })
          await finished(String(job.id))
          out.push(performance.now() - t)
        }
        return out.sort((a, b) => a - b)
      }
    },
    backlogFill: async () => { throw new Error('graphile: the deep-queue shape is not part of this section') },
    backlogSubmit: async () => { throw new Error('graphile: the deep-queue shape is not part of this section') },
    backlogClaim: async () => { throw new Error('graphile: the deep-queue shape is not part of this section') },
    close: async () => {
      unlisten()
      await listening
      await utils.release()
    }
  }
}
