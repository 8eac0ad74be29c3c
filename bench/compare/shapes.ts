/**
 * The shapes every side-by-side section runs (`--only bullmq`, `--only graphile`), their
 * sizes from the environment, and how one round of a shape turns into figures. The
 * section decides which processes a side runs (its `Setup`); the shapes only drive its
 * producer and read the CPU of its processes.
 */
import { positive } from '../env.js'
import { pct } from '../report.js'
import type { Child } from './processes.js'
import type { Figures } from './figures.js'
import type { ProducerRequest } from './protocol.js'

export const SHAPES = ['one-by-one', 'bulk', 'round-trip', 'deep'] as const
export type Shape = typeof SHAPES[number]

export interface Config {
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
}

/** A comma list from `name` (unset = all of `known`); an unknown entry stops the bench naming it. */
export function listEnv<T extends string> (name: string, known: readonly T[]): T[] {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return [...known]
  const wanted = raw.split(',').map((s) => s.trim())
  const bad = wanted.filter((w) => !(known as readonly string[]).includes(w))
  if (bad.length > 0) throw new Error(`${name}: unknown ${bad.join(', ')}; known: ${known.join(', ')}`)
  return known.filter((k) => wanted.includes(k))
}

/** BENCH_CMP_* sizes; `shapes` are the section's default when BENCH_CMP_SHAPES is unset. */
export function config (shapes: readonly Shape[] = SHAPES): Config {
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
    shapes: listEnv('BENCH_CMP_SHAPES', shapes)
  }
}

/** Where a side's CPU is measured: `name` prints as `<name> CPU per task`. */
export interface CpuSource {
  name: string
  /** utime + stime so far, ms. */
  cpuMs: () => number
  /** Write-type system calls so far (only for the server of the BullMQ section). */
  writes?: () => number
}

/** One side's processes, fresh for one round. */
export interface Setup {
  cpu: CpuSource[]
  producer: Child
  stop: () => Promise<void>
}

const perTaskUs = (ms: number, tasks: number): number => ms * 1000 / tasks

/** A section's targets for ours against the other system (ratio ours / theirs). */
export interface Targets { oneByOne: string, bulk: string, roundTrip: string }

/**
 * Runs one shape once on a side and adds its figures. `reference`: the other system,
 * whose one round-trip form is the yardstick for both of ours.
 */
export async function runShape (shape: Shape, side: string, reference: boolean, setup: Setup, cfg: Config, figs: Figures, targets: Targets): Promise<void> {
  const cpu0 = setup.cpu.map((c) => ({ ms: c.cpuMs(), writes: c.writes?.() ?? 0 }))
  const cpuFigures = (tasks: number, producerUs: number): void => {
    setup.cpu.forEach((c, i) => {
      figs.add(`${c.name} CPU per task`, side, perTaskUs(c.cpuMs() - cpu0[i].ms, tasks), 'µs', 0, 'reported')
      // Socket writes wake another process; with the store's own writes (WAL / AOF) included.
      if (c.writes !== undefined) figs.add(`${c.name} write system calls per task`, side, (c.writes() - cpu0[i].writes) / tasks, '', 2, 'reported')
    })
    figs.add('producer process CPU per task', side, producerUs / tasks, 'µs', 0, 'reported')
  }
  if (shape === 'one-by-one' || shape === 'bulk') {
    const req: ProducerRequest = shape === 'one-by-one'
      ? { shape, tasks: cfg.tasks, submitters: cfg.submitters }
      : { shape, tasks: cfg.tasks, batch: cfg.batch }
    const r = await setup.producer.request(req)
    if (r.shape !== shape) throw new Error(`unexpected reply ${r.shape}`)
    figs.add('end to end', side, cfg.tasks / (r.totalMs / 1000), 'tasks/s', 0, shape === 'bulk' ? targets.bulk : targets.oneByOne)
    figs.add('submit phase alone', side, cfg.tasks / (r.submitMs / 1000), 'tasks/s', 0)
    cpuFigures(cfg.tasks, r.cpuUs)
  } else if (shape === 'round-trip') {
    const r = await setup.producer.request({ shape, samples: cfg.rtt, warmup: cfg.rttWarmup })
    if (r.shape !== shape) throw new Error(`unexpected reply ${r.shape}`)
    const names = Object.keys(r.forms)
    // The other system has one form; it is the yardstick for both of ours.
    const forms: Array<[string, number[] | undefined]> = reference
      ? [['two requests (ours: submit, then wait)', r.forms[names[0]]], ['one request (ours: submitAndWait)', r.forms[names[0]]]]
      : [['two requests (ours: submit, then wait)', r.forms['submit, then wait']], ['one request (ours: submitAndWait)', r.forms.submitAndWait]]
    for (const [name, lat] of forms) {
      if (lat === undefined) throw new Error(`round-trip form missing: ${name}`)
      figs.add(`${name}, p50`, side, pct(lat, 0.5), 'ms', 3, targets.roundTrip)
      figs.add(`${name}, p99`, side, pct(lat, 0.99), 'ms', 3)
    }
    cpuFigures((cfg.rtt + cfg.rttWarmup) * names.length, r.cpuUs)
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

export function shapeTitle (section: string, shape: Shape, cfg: Config): string {
  const n = (v: number): string => v.toLocaleString('en-US')
  switch (shape) {
    case 'one-by-one': return `[${section}] one-by-one: ${n(cfg.tasks)} no-op tasks, ${cfg.submitters} concurrent awaited submitters, one worker process of concurrency ${cfg.concurrency}`
    case 'bulk': return `[${section}] bulk: ${n(cfg.tasks)} no-op tasks added in batches of ${n(cfg.batch)} (addBulk / addJobs / submit_many), then processed`
    case 'round-trip': return `[${section}] round trip: ${n(cfg.rtt)} sequential submit -> completed, idle worker (after ${n(cfg.rttWarmup)} untimed)`
    case 'deep': return `[${section}] deep queue: ${n(cfg.deepSamples)} claims and submits with ${n(cfg.shallow)} vs ${n(cfg.deep)} tasks waiting (no worker)`
  }
}
