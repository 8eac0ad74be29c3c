/**
 * What the producer process of `--only bullmq` does on each side, behind one interface:
 * BullMQ (Queue, QueueEvents, a manual Worker for claims) or this project (RemoteQueue).
 * Loaded in the producer process only (compare/child.ts).
 */
import type { RemoteQueue } from '../../src/client/remote-queue.js'
import { roundTrips } from '../round-trip.js'

/** Task type / BullMQ queue the worker process serves. */
export const WORK = 'echo'
/** Task type / BullMQ queue nobody serves: the deep-queue shape's backlog. */
export const BACKLOG = 'deep'

export interface ProducerSide {
  /** One awaited submit of a no-op task for the worker. */
  submit: (n: number) => Promise<void>
  /** `count` no-op tasks for the worker in one batch request (addBulk / submit_many). */
  submitBatch: (first: number, count: number) => Promise<void>
  /** Resolves once nothing of the worker's type is waiting or running. */
  drained: () => Promise<void>
  /** Round-trip forms, each: `n` sequential submit -> completed, sorted ms. */
  roundTripForms: Record<string, (n: number) => Promise<number[]>>
  /** Backlog operations of the deep-queue shape (nobody serves BACKLOG). */
  backlogFill: (count: number) => Promise<void>
  backlogSubmit: () => Promise<void>
  backlogClaim: () => Promise<void>
  close: () => Promise<void>
}

const POLL_MS = 20
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const BATCH = 1000

export async function bullmqSide (port: number): Promise<ProducerSide> {
  const { Queue, QueueEvents, Worker } = await import('bullmq')
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null }
  const queue = new Queue(WORK, { connection })
  const backlog = new Queue(BACKLOG, { connection })
  let events: InstanceType<typeof QueueEvents> | null = null
  let claimer: InstanceType<typeof Worker> | null = null
  const token = 'bench-claimer'
  await queue.waitUntilReady()
  await backlog.waitUntilReady()
  return {
    submit: async (n) => { await queue.add(WORK, { n }) },
    submitBatch: async (first, count) => {
      await queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: WORK, data: { n: first + i } })))
    },
    drained: async () => {
      for (;;) {
        const c = await queue.getJobCounts('waiting', 'active', 'prioritized', 'delayed')
        if (Object.values(c).every((v) => v === 0)) return
        await sleep(POLL_MS)
      }
    },
    roundTripForms: {
      // BullMQ's outcome comes as an event on a subscription that is already open.
      'add + waitUntilFinished': async (n) => {
        if (events === null) {
          events = new QueueEvents(WORK, { connection })
          await events.waitUntilReady()
        }
        const ev = events
        const out: number[] = []
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const job = await queue.add(WORK, { i })
          await job.waitUntilFinished(ev, 30_000)
          out.push(performance.now() - t)
        }
        return out.sort((a, b) => a - b)
      }
    },
    backlogFill: async (count) => {
      for (let done = 0; done < count; done += BATCH) {
        await backlog.addBulk(Array.from({ length: Math.min(BATCH, count - done) }, (_, i) => ({ name: BACKLOG, data: { n: done + i } })))
      }
    },
    backlogSubmit: async () => { await backlog.add(BACKLOG, { n: -1 }) },
    backlogClaim: async () => {
      // Manual processing (BullMQ's own claim): the job moves to active under a lock.
      claimer ??= new Worker(BACKLOG, null, { connection, autorun: false })
      const job = await claimer.getNextJob(token, { block: false })
      if (job === undefined || job === null) throw new Error('BullMQ: nothing to claim from the backlog')
    },
    close: async () => {
      await claimer?.close()
      await events?.close()
      await queue.close()
      await backlog.close()
    }
  }
}

export async function oursSide (multiaddr: string, env: Record<string, string>): Promise<ProducerSide> {
  const { RemoteQueue: Client } = await import('../../src/client/remote-queue.js')
  const rq: RemoteQueue = new Client({ multiaddr, env, addressBookPath: null })
  await rq.status()
  // The task acknowledged last: drained() first waits for it (a parked `wait` costs the
  // service nothing), and only then polls the counts. Polling `status` all through the
  // drain, as BullMQ's side polls getJobCounts, would not be the same load: Redis counts
  // a list in O(1), our status detail counts the queued rows (~10–30 ms at 20,000
  // queued on this VM), so polling every 20 ms would stall the service it measures.
  let lastId: string | null = null
  return {
    submit: async (n) => { lastId = (await rq.submit({ task_type: WORK, payload: { n } })).task_id },
    submitBatch: async (first, count) => {
      const results = await rq.submitMany(Array.from({ length: count }, (_, i) => ({ task_type: WORK, payload: { n: first + i } })))
      const refused = results.find((r) => !r.ok)
      if (refused !== undefined) throw new Error(`submit_many refused an item: ${JSON.stringify(refused)}`)
      const last = results[results.length - 1]
      if (last !== undefined && 'task_id' in last && typeof last.task_id === 'string') lastId = last.task_id
    },
    drained: async () => {
      if (lastId !== null) {
        const { task } = await rq.wait(lastId, 120)
        if (task?.status !== 'completed') throw new Error(`the last task ${lastId} ended ${String(task?.status)}`)
        lastId = null
      }
      for (;;) {
        const q = (await rq.status(true)).queue as { queued_by_type: Record<string, number>, running_by_type: Record<string, number> }
        if ((q.queued_by_type[WORK] ?? 0) + (q.running_by_type[WORK] ?? 0) === 0) return
        await sleep(POLL_MS)
      }
    },
    roundTripForms: {
      // The original protocol's form: the outcome needs a second request.
      'submit, then wait': async (n) => await roundTrips(rq, n, 'submit+wait'),
      // ★ one request (submit wait_s).
      submitAndWait: async (n) => await roundTrips(rq, n, 'submit(wait_s)')
    },
    backlogFill: async (count) => {
      for (let done = 0; done < count; done += BATCH) {
        await rq.submitMany(Array.from({ length: Math.min(BATCH, count - done) }, (_, i) => ({ task_type: BACKLOG, payload: { n: done + i } })))
      }
    },
    backlogSubmit: async () => { await rq.submit({ task_type: BACKLOG, payload: { n: -1 } }) },
    backlogClaim: async () => {
      const task = await rq.claim({ worker_id: 'bench-claimer', supported_task_types: [BACKLOG] })
      if (task === null) throw new Error('ours: nothing to claim from the backlog')
    },
    close: async () => { await rq.close() }
  }
}
