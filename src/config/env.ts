/**
 * Parsing primitives for environment configuration (config.md §1–§2).
 *
 * Every variable goes through the same rule so that the original's inconsistencies
 * (ignored `on`/`off`, empty values that sometimes overrode, bad numbers silently
 * replaced by defaults) cannot come back one getter at a time.
 */
import { homedir } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
import { multiaddr as parseMultiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'

export type Env = Readonly<Record<string, string | undefined>>
export type WarnSink = (msg: string) => void

export const ACCELERATE_PREFIX = 'IPFS_ACCELERATE_PY_'
export const DATASETS_PREFIX = 'IPFS_DATASETS_PY_'
/** `P` of config.md §3: the prefix of the TaskQueue P2P variables. */
export const P = `${ACCELERATE_PREFIX}TASK_P2P_`

export const TRUE_WORDS: readonly string[] = ['1', 'true', 'yes', 'y', 'on']
export const FALSE_WORDS: readonly string[] = ['0', 'false', 'no', 'n', 'off']

const BOOL_ACCEPTED = 'use 1/true/yes/y/on or 0/false/no/n/off'
const INTEGER_RE = /^[+-]?\d+$/
// Decimal only: hex, inf/nan, `_` separators and unit suffixes all fail this pattern.
const NUMBER_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

/** Printed instead of a secret's value, so a token never reaches stderr or a log. */
export const REDACTED = '***'

/**
 * A start-up configuration error. The message is the single stderr line of
 * config.md §2; CLIs print it and exit 2, the library throws it.
 */
export class ConfigError extends Error {
  readonly code = 'invalid_config' as const
  /** The environment variable (or command-line flag) that carried the bad value. */
  readonly variable: string
  /** The offending value, trimmed; `***` for secrets. */
  readonly value: string

  /** `problem` completes the sentence, e.g. `is not a boolean (use …)`. */
  constructor (variable: string, value: string, problem: string) {
    // JSON quoting keeps the message on one line whatever the value contains.
    super(`config error: ${variable}=${JSON.stringify(value)} ${problem}`)
    this.name = 'ConfigError'
    this.variable = variable
    this.value = value
  }
}

/** The DATASETS spelling of an ACCELERATE variable, or undefined for other names. */
export function aliasOf (name: string): string | undefined {
  return name.startsWith(ACCELERATE_PREFIX)
    ? DATASETS_PREFIX + name.slice(ACCELERATE_PREFIX.length)
    : undefined
}

export function isTrueWord (value: string): boolean {
  return TRUE_WORDS.includes(value.trim().toLowerCase())
}

export function isFalseWord (value: string): boolean {
  return FALSE_WORDS.includes(value.trim().toLowerCase())
}

/** Boolean per config.md §2, or undefined when the text is not one of the ten words. */
export function parseBool (text: string): boolean | undefined {
  if (isTrueWord(text)) return true
  if (isFalseWord(text)) return false
  return undefined
}

/** Strict integer (optional sign, decimal digits), or undefined. */
export function parseInteger (text: string): number | undefined {
  const t = text.trim()
  if (!INTEGER_RE.test(t)) return undefined
  const n = Number(t)
  if (!Number.isSafeInteger(n)) return undefined
  return n === 0 ? 0 : n // no -0
}

/** Strict decimal number (fraction and exponent allowed), or undefined. */
export function parseNumber (text: string): number | undefined {
  const t = text.trim()
  if (!NUMBER_RE.test(t)) return undefined
  const n = Number(t)
  if (!Number.isFinite(n)) return undefined
  return n === 0 ? 0 : n
}

/**
 * Validates one multiaddr and returns its canonical string, or an error reason.
 * The library accepts `/` and never checks `/p2p/` ids; both would only fail later
 * at dial time, far from the variable that caused it.
 */
export function checkMultiaddr (text: string): { ok: true, value: string } | { ok: false, reason: string } {
  try {
    const ma = parseMultiaddr(text.trim())
    const components = ma.getComponents()
    if (components.length === 0) return { ok: false, reason: 'empty multiaddr' }
    for (const c of components) {
      if ((c.name === 'p2p' || c.name === 'ipfs') && c.value !== undefined) peerIdFromString(c.value)
    }
    return { ok: true, value: ma.toString() }
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) }
  }
}

export interface ReaderOptions {
  /** Base for relative paths; default `process.cwd()`. */
  cwd?: string
  /** Home for `~`; default HOME from the env object, else `os.homedir()`. */
  home?: string
  /** Variables (ACCELERATE names) whose values must never be printed. */
  secrets?: Iterable<string>
}

/** A command-line value that wins over the environment; `value: undefined` = flag not given. */
export interface Override<T> {
  flag: string
  value: T | undefined
}

/** Where a value came from: `flag --x`, `env NAME`, or `default`. */
export type Source = string

interface Raw {
  /** The name that supplied the value (ACCELERATE or DATASETS spelling). */
  variable: string
  /** Trimmed, non-empty. */
  text: string
}

interface Ranged {
  min: number
  max: number
  exclusiveMin?: boolean
}

/**
 * Reads variables by ACCELERATE name with DATASETS fallback. Getters take the
 * ACCELERATE name, the default, and optionally a flag override that wins.
 */
export class EnvReader {
  readonly cwd: string
  readonly home: string
  private readonly env: Env
  private readonly warn: WarnSink
  private readonly secrets: Set<string>
  private readonly warned = new Set<string>()
  private readonly sourceMap = new Map<string, Source>()

  constructor (env: Env, warn: WarnSink, opts: ReaderOptions = {}) {
    this.env = env
    this.warn = warn
    this.cwd = opts.cwd ?? process.cwd()
    const envHome = env.HOME?.trim()
    this.home = opts.home ?? (envHome !== undefined && envHome !== '' ? envHome : homedir())
    this.secrets = new Set(opts.secrets ?? [])
  }

  /** Where each variable read so far came from, keyed by ACCELERATE name. */
  get sources (): ReadonlyMap<string, Source> {
    return this.sourceMap
  }

  isSecret (name: string): boolean {
    return this.secrets.has(name) || this.secrets.has(name.replace(DATASETS_PREFIX, ACCELERATE_PREFIX))
  }

  /** A raw variable outside the alias rule (HOME, XDG_CACHE_HOME): trimmed, empty = unset. */
  plain (name: string): string | undefined {
    const v = this.env[name]?.trim()
    return v === undefined || v === '' ? undefined : v
  }

  /**
   * The trimmed value by precedence ACCELERATE > DATASETS, warning once when both
   * are set and differ. Undefined when neither is set.
   */
  raw (name: string): Raw | undefined {
    const primary = this.plain(name)
    const aliasName = aliasOf(name)
    const alias = aliasName === undefined ? undefined : this.plain(aliasName)
    if (primary !== undefined) {
      if (alias !== undefined && alias !== primary && aliasName !== undefined && !this.warned.has(name)) {
        this.warned.add(name)
        this.warn(`config warning: ${name}=${this.show(name, primary)} and ${aliasName}=${this.show(name, alias)} differ; using ${name}`)
      }
      return { variable: name, text: primary }
    }
    if (alias !== undefined && aliasName !== undefined) return { variable: aliasName, text: alias }
    return undefined
  }

  /** Whether either spelling is set (non-empty). */
  has (name: string): boolean {
    return this.raw(name) !== undefined
  }

  private refuse (variable: string, text: string, problem: string, err: unknown): never {
    if (err instanceof Reject) this.fail(variable, text, `${problem}; ${err.message}`)
    throw err
  }

  /** Throws the ConfigError for `variable`, redacting secrets. */
  fail (variable: string, text: string, problem: string): never {
    throw new ConfigError(variable, this.isSecret(variable) ? REDACTED : text, problem)
  }

  /**
   * The general getter the typed ones build on: `parse` turns text into a value, or
   * returns undefined / throws Reject(detail) to refuse it with `problem`; `check`
   * validates an override.
   */
  custom<T> (name: string, def: T, parse: (text: string) => T | undefined, problem: string,
    ov?: Override<T>, check?: (value: T) => boolean): T {
    if (ov !== undefined && ov.value !== undefined) {
      let ok = true
      try { ok = check === undefined || check(ov.value) } catch (err) { this.refuse(ov.flag, String(ov.value), problem, err) }
      if (!ok) this.fail(ov.flag, String(ov.value), problem)
      this.sourceMap.set(name, `flag ${ov.flag}`)
      return ov.value
    }
    const raw = this.raw(name)
    if (raw === undefined) {
      this.sourceMap.set(name, 'default')
      return def
    }
    let value: T | undefined
    try { value = parse(raw.text) } catch (err) { this.refuse(raw.variable, raw.text, problem, err) }
    if (value === undefined) this.fail(raw.variable, raw.text, problem)
    this.sourceMap.set(name, `env ${raw.variable}`)
    return value
  }

  bool (name: string, def: boolean, ov?: Override<boolean>): boolean {
    return this.custom(name, def, parseBool, `is not a boolean (${BOOL_ACCEPTED})`, ov)
  }

  /** Like bool, but undefined when unset (for values derived from other variables). */
  optBool (name: string, ov?: Override<boolean>): boolean | undefined {
    return this.custom<boolean | undefined>(name, undefined, parseBool, `is not a boolean (${BOOL_ACCEPTED})`, ov)
  }

  int (name: string, def: number, min: number, max: number, ov?: Override<number>): number {
    const ok = (n: number): boolean => Number.isSafeInteger(n) && n >= min && n <= max
    return this.custom(name, def, text => {
      const n = parseInteger(text)
      return n !== undefined && ok(n) ? n : undefined
    }, `is not an integer in ${min}..${max}`, ov, ok)
  }

  number (name: string, def: number, range: Ranged, ov?: Override<number>): number {
    const ok = (n: number): boolean => inRange(n, range)
    return this.custom(name, def, text => {
      const n = parseNumber(text)
      return n !== undefined && ok(n) ? n : undefined
    }, `is not a number in ${describeRange(range)}`, ov, ok)
  }

  /** Comma-separated, items trimmed, empty items dropped. */
  list (name: string, def: readonly string[], ov?: Override<readonly string[]>): readonly string[] {
    return this.custom(name, def, splitList, 'is not a list', ov)
  }

  /** Multiaddr list; a whole value that is a false word means an empty list. */
  addrList (name: string, def: readonly string[] = [], ov?: Override<readonly string[]>): readonly string[] {
    const parse = (text: string): readonly string[] => {
      if (isFalseWord(text)) return []
      const out: string[] = []
      for (const item of splitList(text)) {
        const ma = mustMultiaddr(item)
        if (!out.includes(ma)) out.push(ma)
      }
      return out
    }
    return this.custom(name, def, parse, 'is not a comma-separated multiaddr list', ov,
      v => v.every(a => mustMultiaddr(a) !== ''))
  }

  /** A single multiaddr, canonicalised; undefined default = unset. */
  multiaddr (name: string, def?: string, ov?: Override<string>): string | undefined {
    return this.custom<string | undefined>(name, def, mustMultiaddr, 'is not a multiaddr', ov,
      v => v === undefined || mustMultiaddr(v) !== '')
  }

  /** `~` expanded, relative paths resolved against cwd; also applied to defaults and flags. */
  path (name: string, def: string, ov?: Override<string>): string {
    const norm = this.resolvePath.bind(this)
    const v = this.custom(name, def, norm, 'is not a path', ov)
    return norm(v)
  }

  /** As `path`, but a false word (or a `null` flag) means disabled: null. */
  pathOrDisabled (name: string, def: string | null, ov?: Override<string | null>): string | null {
    const v = this.custom<string | null>(name, def,
      text => isFalseWord(text) ? null : this.resolvePath(text), 'is not a path', ov)
    return v === null ? null : this.resolvePath(v)
  }

  /** One of `allowed`, compared case-insensitively; returns the canonical spelling. */
  enum<T extends string> (name: string, allowed: readonly T[], def: T, ov?: Override<T>): T {
    const find = (text: string): T | undefined => allowed.find(a => a.toLowerCase() === text.trim().toLowerCase())
    const shown = allowed.map(a => a === '' ? '""' : a).join(', ')
    return this.custom(name, def, find, `is not one of ${shown}`, ov, v => find(v) !== undefined)
  }

  /** Any non-empty trimmed string. */
  string (name: string, def: string, ov?: Override<string>): string {
    return this.custom(name, def, text => text, 'is not a string', ov)
  }

  /** A string that is absent by default (TOKEN). */
  optString (name: string, ov?: Override<string>): string | undefined {
    return this.custom<string | undefined>(name, undefined, text => text, 'is not a string', ov)
  }

  resolvePath (p: string): string {
    let t = p.trim()
    if (t === '~') t = this.home
    else if (t.startsWith('~/')) t = this.home + t.slice(1)
    return isAbsolute(t) ? resolve(t) : resolve(this.cwd, t)
  }

  private show (name: string, value: string): string {
    return JSON.stringify(this.isSecret(name) ? REDACTED : value)
  }
}

/** Thrown by a parse function to refuse a value with a specific reason. */
export class Reject extends Error {}

function mustMultiaddr (text: string): string {
  const r = checkMultiaddr(text)
  if (!r.ok) throw new Reject(`${text.trim()}: ${r.reason}`)
  return r.value
}

export function splitList (text: string): string[] {
  return text.split(',').map(s => s.trim()).filter(s => s !== '')
}

function inRange (n: number, r: Ranged): boolean {
  if (!Number.isFinite(n) || n > r.max) return false
  return r.exclusiveMin === true ? n > r.min : n >= r.min
}

function describeRange (r: Ranged): string {
  return r.exclusiveMin === true ? `(${r.min}, ${r.max}]` : `${r.min}..${r.max}`
}
