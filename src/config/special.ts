/**
 * Value formats specific to one variable: PROTOCOL, DISCOVERY_STEP_TIMEOUTS, and the
 * planned/refused variables of config.md §4.
 */
import { ACCELERATE_PREFIX, DATASETS_PREFIX, parseNumber } from './env.js'
import type { Env, WarnSink } from './env.js'

export type Protocol = 'mcp' | 'legacy'

/** Mechanism names of discovery.md §1, as they appear in the trace's `method`. */
export const DISCOVERY_STEPS = ['announce-file', 'bootstrap', 'rendezvous', 'dht', 'mdns'] as const
export type DiscoveryStep = (typeof DISCOVERY_STEPS)[number]
export type StepTimeouts = Readonly<Record<DiscoveryStep, number>>

/** discovery.md §8 per-mechanism timeouts, seconds. */
export const DEFAULT_STEP_TIMEOUTS: StepTimeouts = Object.freeze({
  'announce-file': 3,
  bootstrap: 4,
  rendezvous: 5,
  dht: 8,
  mdns: 5
})

/** Largest per-step timeout: the overall discovery deadline cannot exceed 600 s either. */
export const MAX_STEP_TIMEOUT_S = 600

const PROTOCOL_WORDS: ReadonlyMap<string, readonly Protocol[]> = new Map<string, readonly Protocol[]>([
  ...['auto', 'mcp-then-legacy', 'mcp+legacy', 'mcp/legacy'].map(w => [w, ['mcp', 'legacy']] as const),
  ...['mcp', 'mcp++', 'mcp+p2p', 'mcpp', 'mcpp2p'].map(w => [w, ['mcp']] as const),
  ...['legacy', 'ndjson', 'v1', 'task-queue', 'taskqueue'].map(w => [w, ['legacy']] as const)
])

export const PROTOCOL_ACCEPTED =
  'use mcp, legacy or auto (also mcp++, mcp+p2p, ndjson, v1, task-queue, mcp+legacy, …) separated by , | ; or space'

export type ParseResult<T> = { ok: true, value: T } | { ok: false, reason: string }

/** Ordered, de-duplicated protocol list; an empty list only for input with no tokens. */
export function parseProtocol (text: string): ParseResult<readonly Protocol[]> {
  const out: Protocol[] = []
  for (const raw of text.split(/[,|;\s]+/)) {
    if (raw === '') continue
    const token = raw.toLowerCase().replaceAll('_', '-')
    const protocols = PROTOCOL_WORDS.get(token)
    if (protocols === undefined) return { ok: false, reason: `unknown protocol ${JSON.stringify(raw)}` }
    for (const p of protocols) if (!out.includes(p)) out.push(p)
  }
  return { ok: true, value: out }
}

/**
 * `name=seconds` pairs, comma-separated, merged over `base`. Names are read like the
 * protocol words (case-insensitive, `_` as `-`); seconds are Numbers in (0, 600].
 */
export function parseStepTimeouts (text: string, base: StepTimeouts = DEFAULT_STEP_TIMEOUTS): ParseResult<StepTimeouts> {
  const out: Record<DiscoveryStep, number> = { ...base }
  for (const item of text.split(',').map(s => s.trim()).filter(s => s !== '')) {
    const eq = item.indexOf('=')
    if (eq < 0) return { ok: false, reason: `${JSON.stringify(item)} is not name=seconds` }
    const name = item.slice(0, eq).trim().toLowerCase().replaceAll('_', '-')
    if (!isStep(name)) return { ok: false, reason: `unknown step ${JSON.stringify(item.slice(0, eq).trim())}` }
    const s = parseNumber(item.slice(eq + 1))
    if (s === undefined || !(s > 0 && s <= MAX_STEP_TIMEOUT_S)) {
      return { ok: false, reason: `${name} needs seconds in (0, ${MAX_STEP_TIMEOUT_S}]` }
    }
    out[name] = s
  }
  return { ok: true, value: out }
}

export const STEP_TIMEOUTS_ACCEPTED =
  `use name=seconds pairs separated by commas; names ${DISCOVERY_STEPS.join(', ')}; seconds in (0, ${MAX_STEP_TIMEOUT_S}]`

export function isStep (name: string): name is DiscoveryStep {
  return (DISCOVERY_STEPS as readonly string[]).includes(name)
}

export function validStepTimeouts (v: StepTimeouts): boolean {
  return DISCOVERY_STEPS.every(s => typeof v[s] === 'number' && v[s] > 0 && v[s] <= MAX_STEP_TIMEOUT_S)
}

/** Suffixes after `…_TASK_P2P_` that are planned but not built (config.md §4). */
const PLANNED_PREFIXES = ['SESSION_FAILOVER', 'CACHE_REPLICATE']
const PLANNED_EXACT = ['ENCRYPT', 'ENCRYPTION_KEY']

/**
 * One warning per planned variable that is set (either spelling), never printing its
 * value: ENCRYPTION_KEY is a secret.
 */
export function warnPlanned (env: Env, warn: WarnSink): string[] {
  const p = 'TASK_P2P_'
  const found = new Map<string, string>() // suffix -> name seen first (ACCELERATE preferred)
  for (const prefix of [ACCELERATE_PREFIX + p, DATASETS_PREFIX + p]) {
    for (const [key, value] of Object.entries(env)) {
      if (!key.startsWith(prefix) || value === undefined || value.trim() === '') continue
      const suffix = key.slice(prefix.length)
      const planned = PLANNED_EXACT.includes(suffix) || PLANNED_PREFIXES.some(x => suffix.startsWith(x))
      if (planned && !found.has(suffix)) found.set(suffix, key)
    }
  }
  const names = [...found.values()].sort()
  for (const name of names) {
    warn(`config warning: ${name} is planned but not supported in this release; ignored`)
  }
  return names
}
