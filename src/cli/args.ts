/**
 * A small table-driven command-line parser shared by `p2p-rpc` and `taskqueue-p2p`.
 * One table drives parsing, validation and `--help`, so the help text cannot drift
 * from what is accepted. Lexing is node:util parseArgs; validation is ours, because
 * parseArgs' strict mode rejects option values that start with `-` (`--priority -1`,
 * `--value -5`) and its messages name internals rather than the command.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parseInteger, parseNumber } from '../config/index.js'
import { isPlainObject } from '../protocol/json.js'

export type OptionType = 'string' | 'boolean'

export interface OptionSpec {
  /** Long name without the leading dashes. */
  readonly name: string
  readonly type: OptionType
  /** Placeholder shown in help for string options (`S`, `OBJ`, …). */
  readonly valueName?: string
  readonly required?: boolean
  /** Applied when the option is absent; shown in help. */
  readonly default?: string | boolean
  readonly repeatable?: boolean
  readonly help: string
}

export interface CommandSpec {
  readonly name: string
  /** One line, shown in the command list and at the top of the command's help. */
  readonly summary: string
  readonly options: readonly OptionSpec[]
  /** Extra paragraph for the command's help. */
  readonly description?: string
}

export interface ProgramSpec {
  readonly name: string
  readonly version: string
  readonly summary: string
  /** Accepted before or after the command. */
  readonly globalOptions: readonly OptionSpec[]
  readonly commands: readonly CommandSpec[]
  /** Closing paragraph of the overall help. */
  readonly epilog?: string
}

/** Bad command line. `code` is what the CLIs print as `error`. */
export class UsageError extends Error {
  readonly code = 'usage' as const
  constructor (message: string, readonly command: string | null = null) {
    super(message)
    this.name = 'UsageError'
  }
}

type Value = string | boolean | string[]

/** The validated options of one invocation. Getters throw on names outside the table (a bug, not a usage error). */
export class ParsedArgs {
  constructor (
    readonly command: string,
    private readonly specs: ReadonlyMap<string, OptionSpec>,
    private readonly values: ReadonlyMap<string, Value>,
    private readonly given: ReadonlySet<string>
  ) {}

  /** Whether the option appeared on the command line (defaults do not count). */
  has (name: string): boolean {
    this.spec(name)
    return this.given.has(name)
  }

  string (name: string): string | undefined {
    const v = this.values.get(name)
    if (this.spec(name).type !== 'string') throw new Error(`option --${name} is not a string option`)
    return Array.isArray(v) ? v[v.length - 1] : typeof v === 'string' ? v : undefined
  }

  /** A required (or defaulted) string option. */
  requireString (name: string): string {
    const v = this.string(name)
    if (v === undefined) throw new UsageError(`missing required option --${name}`, this.command)
    return v
  }

  flag (name: string): boolean {
    if (this.spec(name).type !== 'boolean') throw new Error(`option --${name} is not a boolean option`)
    return this.values.get(name) === true
  }

  /** Every value of a repeatable option, in order. */
  list (name: string): string[] {
    this.spec(name)
    const v = this.values.get(name)
    return Array.isArray(v) ? [...v] : typeof v === 'string' ? [v] : []
  }

  private spec (name: string): OptionSpec {
    const s = this.specs.get(name)
    if (s === undefined) throw new Error(`option --${name} is not defined for ${this.command}`)
    return s
  }
}

export type ParseOutcome =
  | { kind: 'help', text: string }
  | { kind: 'version', text: string }
  | { kind: 'command', args: ParsedArgs }

export const HELP_OPTION: OptionSpec = { name: 'help', type: 'boolean', help: 'show this help and exit' }
export const VERSION_OPTION: OptionSpec = { name: 'version', type: 'boolean', help: 'show the version and exit' }

function globalsOf (spec: ProgramSpec): OptionSpec[] {
  return [...spec.globalOptions, HELP_OPTION, VERSION_OPTION]
}

function toParseArgsOptions (specs: Iterable<OptionSpec>): Record<string, { type: OptionType, multiple?: boolean, short?: string }> {
  const out: Record<string, { type: OptionType, multiple?: boolean, short?: string }> = {}
  for (const s of specs) out[s.name] = { type: s.type, ...(s.name === 'help' ? { short: 'h' } : {}) }
  return out
}

type Token = ReturnType<typeof parseArgs>['tokens'] extends Array<infer T> | undefined ? T : never

function lex (argv: readonly string[], specs: Iterable<OptionSpec>): Token[] {
  return parseArgs({ args: [...argv], options: toParseArgsOptions(specs), strict: false, allowPositionals: true, tokens: true }).tokens
}

/** Parses `argv` (without the node and script paths) against the table. Throws UsageError. */
export function parseCommandLine (spec: ProgramSpec, argv: readonly string[]): ParseOutcome {
  checkTable(spec)
  const globals = globalsOf(spec)
  const globalNames = new Set(globals.map((o) => o.name))
  const commandOptionNames = new Set(spec.commands.flatMap((c) => c.options.map((o) => o.name)))

  // First pass, globals only: find the command word, and notice --help / --version
  // anywhere so that they win over every other problem on the line.
  const first = lex(argv, globals)
  let commandIndex = -1
  let early: UsageError | null = null
  let wantsHelp = false
  let wantsVersion = false
  let terminated = false
  for (const t of first) {
    if (t.kind === 'option-terminator') { terminated = true; continue }
    if (t.kind === 'positional') {
      if (commandIndex < 0 && !terminated) commandIndex = t.index
      continue
    }
    if (terminated) continue
    if (t.name === 'help' || t.name === 'h') wantsHelp = true
    else if (t.name === 'version') wantsVersion = true
    else if (commandIndex < 0 && !globalNames.has(t.name) && early === null) {
      early = commandOptionNames.has(t.name)
        ? new UsageError(`option ${t.rawName} must come after the command`)
        : new UsageError(`unknown option ${t.rawName}`)
    }
  }
  const commandName = commandIndex >= 0 ? argv[commandIndex] : undefined
  const command = spec.commands.find((c) => c.name === commandName)
  if (wantsHelp) return { kind: 'help', text: formatHelp(spec, command?.name) }
  if (wantsVersion) return { kind: 'version', text: `${spec.name} ${spec.version}\n` }
  if (early !== null) throw early
  if (commandName === undefined) throw new UsageError(`missing command (one of: ${spec.commands.map((c) => c.name).join(', ')})`)
  if (command === undefined) throw new UsageError(`unknown command ${JSON.stringify(commandName)} (one of: ${spec.commands.map((c) => c.name).join(', ')})`)

  // Second pass: everything but the command word, against globals + the command's options.
  const all = [...globals, ...command.options]
  const byName = new Map(all.map((o) => [o.name, o]))
  const rest = [...argv.slice(0, commandIndex), ...argv.slice(commandIndex + 1)]
  const values = new Map<string, Value>()
  const given = new Set<string>()
  const fail = (message: string): never => { throw new UsageError(message, command.name) }
  for (const t of lex(rest, all)) {
    if (t.kind === 'option-terminator') continue
    if (t.kind === 'positional') fail(`unexpected argument ${JSON.stringify(t.value)}`)
    if (t.kind !== 'option') continue
    const o = byName.get(t.name)
    if (o === undefined) {
      const hint = commandOptionNames.has(t.name) ? ` (not an option of ${command.name})` : ''
      return fail(`unknown option ${t.rawName}${hint}`)
    }
    if (o.type === 'boolean') {
      if (t.value !== undefined) fail(`option --${o.name} takes no value`)
      values.set(o.name, true)
    } else {
      const v = t.value
      // parseArgs hands the next word to a string option even when it is another option.
      if (v === undefined || (!t.inlineValue && looksLikeOption(v, byName))) fail(`option --${o.name} needs a value${o.valueName !== undefined ? ` (${o.valueName})` : ''}`)
      const prev = values.get(o.name)
      if (o.repeatable === true) values.set(o.name, [...(Array.isArray(prev) ? prev : []), v as string])
      else if (given.has(o.name)) fail(`option --${o.name} given more than once`)
      else values.set(o.name, v as string)
    }
    given.add(o.name)
  }
  for (const o of all) {
    if (values.has(o.name)) continue
    if (o.required === true) fail(`missing required option --${o.name}${o.valueName !== undefined ? ` ${o.valueName}` : ''}`)
    if (o.default !== undefined) values.set(o.name, o.default)
  }
  return { kind: 'command', args: new ParsedArgs(command.name, byName, values, given) }
}

function looksLikeOption (word: string, known: ReadonlyMap<string, OptionSpec>): boolean {
  if (word === '-h') return true
  if (!word.startsWith('--')) return false
  const name = word.slice(2).split('=')[0]
  return known.has(name) || name === 'help' || name === 'version'
}

/** Programming errors in a table (duplicates, globals shadowed by a command) surface at once. */
function checkTable (spec: ProgramSpec): void {
  const globals = new Set<string>()
  for (const o of globalsOf(spec)) {
    if (globals.has(o.name)) throw new Error(`duplicate global option --${o.name}`)
    globals.add(o.name)
  }
  const names = new Set<string>()
  for (const c of spec.commands) {
    if (names.has(c.name)) throw new Error(`duplicate command ${c.name}`)
    names.add(c.name)
    const seen = new Set<string>()
    for (const o of c.options) {
      if (globals.has(o.name) || seen.has(o.name)) throw new Error(`option --${o.name} of ${c.name} is defined twice`)
      if (o.type === 'boolean' && (o.required === true || o.repeatable === true)) throw new Error(`boolean option --${o.name} cannot be required or repeatable`)
      seen.add(o.name)
    }
  }
}

// ---- help ------------------------------------------------------------------------------

function optionLabel (o: OptionSpec): string {
  return o.name === 'help' ? '-h, --help' : `--${o.name}${o.type === 'string' ? ` ${o.valueName ?? 'VALUE'}` : ''}`
}

function optionNotes (o: OptionSpec): string {
  const notes: string[] = []
  if (o.required === true) notes.push('required')
  if (o.default !== undefined && o.type === 'string') notes.push(`default: ${o.default === '' ? '""' : o.default}`)
  if (o.repeatable === true) notes.push('repeatable')
  return notes.length > 0 ? ` (${notes.join('; ')})` : ''
}

function table (rows: Array<[string, string]>): string {
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)))
  return rows.map(([l, r]) => l.length > width
    ? `  ${l}\n  ${' '.repeat(width)}  ${r}`
    : `  ${l.padEnd(width)}  ${r}`).join('\n')
}

function optionTable (options: readonly OptionSpec[]): string {
  return table(options.map((o) => [optionLabel(o), o.help + optionNotes(o)]))
}

/** The overall help, or one command's. */
export function formatHelp (spec: ProgramSpec, commandName?: string): string {
  const command = spec.commands.find((c) => c.name === commandName)
  const globals = globalsOf(spec)
  const parts: string[] = []
  if (command === undefined) {
    parts.push(`Usage: ${spec.name} [global options] <command> [options]`, spec.summary)
    parts.push(`Commands:\n${table(spec.commands.map((c) => [c.name, c.summary]))}`)
    parts.push(`Global options (before or after the command):\n${optionTable(globals)}`)
    parts.push(`Run '${spec.name} <command> --help' for the options of a command.`)
    if (spec.epilog !== undefined) parts.push(spec.epilog)
  } else {
    parts.push(`Usage: ${spec.name} ${command.name}${command.options.length > 0 ? ' [options]' : ''} [global options]`, command.summary)
    if (command.description !== undefined) parts.push(command.description)
    if (command.options.length > 0) parts.push(`Options:\n${optionTable(command.options)}`)
    parts.push(`Global options:\n${optionTable(globals)}`)
  }
  return parts.join('\n\n') + '\n'
}

// ---- typed values (shared by the CLIs) -----------------------------------------------------

/** Any JSON value. */
export function parseJsonOption (name: string, text: string): unknown {
  const { json, from } = jsonSource(name, text)
  try {
    return JSON.parse(json)
  } catch (err) {
    throw new UsageError(`option --${name}${from} is not valid JSON: ${(err as Error).message}`)
  }
}

let stdinTakenBy: string | null = null

/**
 * A JSON option's text: `@PATH` reads the file, `-` reads standard input (once per
 * run), anything else is the JSON itself. No JSON text starts with `@`, and `-` alone
 * is not JSON, so neither form shadows a value. Files and stdin also carry what the
 * argument list cannot (Linux caps one argument at 128 KiB).
 */
function jsonSource (name: string, text: string): { json: string, from: string } {
  if (text === '-') {
    if (stdinTakenBy !== null) throw new UsageError(`options --${stdinTakenBy} and --${name} cannot both read standard input`)
    stdinTakenBy = name
    try {
      return { json: readFileSync(0, 'utf8'), from: ' (standard input)' }
    } catch (err) {
      throw new UsageError(`option --${name}: cannot read standard input: ${(err as Error).message}`)
    }
  }
  if (text.startsWith('@')) {
    const path = text.slice(1)
    if (path === '') throw new UsageError(`option --${name}: @ must be followed by a file name`)
    try {
      return { json: readFileSync(path, 'utf8'), from: ` (file ${path})` }
    } catch (err) {
      throw new UsageError(`option --${name}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  return { json: text, from: '' }
}

/** A JSON object (`OBJ` in cli.md), given inline, as `@file` or as `-` (stdin). */
export function parseJsonObjectOption (name: string, text: string): Record<string, unknown> {
  const v = parseJsonOption(name, text)
  if (!isPlainObject(v)) throw new UsageError(`option --${name} must be a JSON object, got ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`)
  return v
}

export interface NumberBounds {
  min?: number
  max?: number
  /** min itself is refused (for "> 0"). */
  exclusiveMin?: boolean
}

function bounded (name: string, text: string, n: number | undefined, kind: string, b: NumberBounds): number {
  if (n === undefined) throw new UsageError(`option --${name} is not ${kind}: ${JSON.stringify(text)}`)
  const low = b.min !== undefined && (b.exclusiveMin === true ? n <= b.min : n < b.min)
  const high = b.max !== undefined && n > b.max
  if (low || high) {
    const range = `${b.min !== undefined ? `${b.exclusiveMin === true ? '>' : '>='} ${b.min}` : ''}${b.min !== undefined && b.max !== undefined ? ' and ' : ''}${b.max !== undefined ? `<= ${b.max}` : ''}`
    throw new UsageError(`option --${name} must be ${range}, got ${text}`)
  }
  return n
}

/** Decimal number per config.md §2 (no hex, inf, nan, units). */
export function parseNumberOption (name: string, text: string, bounds: NumberBounds = {}): number {
  return bounded(name, text, parseNumber(text), 'a number', bounds)
}

export function parseIntegerOption (name: string, text: string, bounds: NumberBounds = {}): number {
  return bounded(name, text, parseInteger(text), 'an integer', bounds)
}

/** Comma-separated list: items trimmed, empty items dropped. */
export function parseListOption (text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter((s) => s !== '')
}
