/**
 * The processes `--only bullmq` forks (compare/run.ts drives them over IPC):
 *
 * - `bullmq-worker <port> <concurrency>`: BullMQ's Worker on the WORK queue, a no-op
 *   handler that returns its data (our worker's `echo`); our side runs `taskqueue-p2p
 *   worker` itself.
 * - `graphile-worker <connection string> <concurrency>`: graphile-worker's `run` with a
 *   no-op task of the same name (`--only graphile`).
 * - `producer bullmq <port>` / `producer graphile <connection string>` / `producer ours
 *   <multiaddr>` (sandbox env inherited): runs the shapes' client side on request and
 *   answers with its timings and its own CPU.
 */
import { bullmqSide, oursSide, WORK } from './sides.js'
import type { ProducerSide } from './sides.js'
import type { ProducerReply, ProducerRequest } from './protocol.js'

function send (msg: unknown): void {
  process.send?.(msg)
}

async function runWorker (port: number, concurrency: number): Promise<void> {
  const { Worker } = await import('bullmq')
  const worker = new Worker(WORK, async (job) => job.data, { connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null }, concurrency })
  await worker.waitUntilReady()
  process.on('SIGTERM', () => { void worker.close().finally(() => process.exit(0)) })
  send({ ready: true })
}

const sorted = (values: number[]): number[] => [...values].sort((a, b) => a - b)

async function timedEach (n: number, fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn()
    out.push(performance.now() - t)
  }
  return sorted(out)
}

async function handle (side: ProducerSide, req: ProducerRequest): Promise<ProducerReply> {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const cpuUs = (): number => { const c = process.cpuUsage(cpu0); return c.user + c.system }
  switch (req.shape) {
    case 'one-by-one': {
      let next = 0
      await Promise.all(Array.from({ length: req.submitters }, async () => {
        while (next < req.tasks) await side.submit(next++)
      }))
      const submitMs = performance.now() - t0
      await side.drained()
      return { shape: req.shape, submitMs, totalMs: performance.now() - t0, cpuUs: cpuUs() }
    }
    case 'bulk': {
      for (let first = 0; first < req.tasks; first += req.batch) await side.submitBatch(first, Math.min(req.batch, req.tasks - first))
      const submitMs = performance.now() - t0
      await side.drained()
      return { shape: req.shape, submitMs, totalMs: performance.now() - t0, cpuUs: cpuUs() }
    }
    case 'round-trip': {
      const forms: Record<string, number[]> = {}
      for (const run of Object.values(side.roundTripForms)) await run(req.warmup)
      // Alternating blocks of 100, so a drift in the machine's speed falls on every form alike.
      for (let done = 0; done < req.samples; done += 100) {
        for (const [name, run] of Object.entries(side.roundTripForms)) (forms[name] ??= []).push(...await run(Math.min(100, req.samples - done)))
      }
      for (const name of Object.keys(forms)) forms[name] = sorted(forms[name])
      return { shape: req.shape, forms, cpuUs: cpuUs() }
    }
    case 'deep': {
      const depths: Record<string, { submit: number[], claim: number[], fillMs: number }> = {}
      let waiting = 0
      for (const depth of req.depths) {
        const f0 = performance.now()
        await side.backlogFill(depth - waiting)
        waiting = depth
        const fillMs = performance.now() - f0
        // Untimed warm-up at each depth, then the timed samples; submits and claims
        // balance, so the depth stays where it is.
        for (let i = 0; i < 50; i++) { await side.backlogSubmit(); await side.backlogClaim() }
        const submit = await timedEach(req.samples, side.backlogSubmit)
        const claim = await timedEach(req.samples, side.backlogClaim)
        depths[String(depth)] = { submit, claim, fillMs }
      }
      return { shape: req.shape, depths, cpuUs: cpuUs() }
    }
  }
}

async function runProducer (system: string, target: string): Promise<void> {
  const side = await openSide(system, target)
  process.on('message', (msg: ProducerRequest | { close: true }) => {
    if ('close' in msg) {
      void side.close().finally(() => process.exit(0))
      return
    }
    handle(side, msg).then(send, (err: unknown) => send({ error: (err as Error).stack ?? String(err) }))
  })
  send({ ready: true })
}

async function runGraphile (connectionString: string, concurrency: number): Promise<void> {
  const { runGraphileWorker } = await import('./graphile-side.js')
  const stop = await runGraphileWorker(connectionString, concurrency)
  process.on('SIGTERM', () => { void stop().finally(() => process.exit(0)) })
  send({ ready: true })
}

async function openSide (system: string, target: string): Promise<ProducerSide> {
  if (system === 'bullmq') return await bullmqSide(Number(target))
  if (system === 'graphile') return await (await import('./graphile-side.js')).graphileSide(target)
  return await oursSide(target, process.env as Record<string, string>)
}

const [role, a, b] = process.argv.slice(2)
const started = role === 'bullmq-worker'
  ? runWorker(Number(a), Number(b))
  : role === 'graphile-worker' ? runGraphile(a, Number(b)) : runProducer(a, b)
started.catch((err: unknown) => {
  process.stderr.write(`bench child ${role} failed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
