/**
 * The handler API: a handler is a plain function per task type. A user module
 * exports an object of them (`--handlers MODULE`); the built-ins cover worker-routed
 * tool calls plus two utilities for smoke tests and benchmarks.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { isAbsolute, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { canonicalTaskType, expandTaskTypes } from '../store/aliases.js'
import type { ClaimedTask, JsonObject } from '../protocol/types.js'
import { isJsonObject } from '../protocol/json.js'
import { ToolRegistry } from '../tools/registry.js'

export interface TaskContext {
  /** Fires when the worker stops past its grace period or the task's lease was lost. */
  signal: AbortSignal
  /** Shallow-merged into `result.progress` on the service (sent batched, best effort). */
  progress: (p: JsonObject) => void
  workerId: string
}

/**
 * Thrown by a handler whose failure no retry can cure (bad input, a refused request):
 * the task fails at once instead of being retried with backoff. Any other thrown
 * error is retried while the task has attempts left.
 */
export class FinalError extends Error {
  /** Read by the worker, so a FinalError from another copy of this module counts too. */
  readonly retry = false
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'FinalError'
  }
}

/** Whether a thrown value asks for no retry: a FinalError, or any error with `retry: false`. */
export function isFinalError (err: unknown): boolean {
  return err instanceof FinalError || (typeof err === 'object' && err !== null && (err as { retry?: unknown }).retry === false)
}

/**
 * The return value becomes the `completed` result. A throw fails the attempt: the task
 * is retried with backoff while attempts remain, unless the error is a FinalError.
 */
export type TaskHandler = (task: ClaimedTask, ctx: TaskContext) => unknown

export type HandlerMap = Record<string, TaskHandler>

export const MAX_SLEEP_S = 3600

// ---- built-ins ----------------------------------------------------------------------

const isObject = isJsonObject

function firstString (o: JsonObject, ...keys: string[]): string {
  for (const k of keys) {
    const v = o[k]
    if (typeof v === 'string' && v.trim() !== '') return v.trim()
  }
  return ''
}

/**
 * `tool.call`: the task the service submits for a worker-context tool, payload
 * `{tool, args, _peer_id}` (wire-protocol.md §6.2). The `{tool, result}` shape is
 * what the service unwraps for the caller.
 */
export function toolCallHandler (registry: ToolRegistry): TaskHandler {
  return async (task, ctx) => {
    const payload = task.payload
    const name = firstString(payload, 'tool', 'tool_name', 'name')
    if (name === '') throw new FinalError('tool.call task has no tool name in its payload')
    const tool = registry.get(name)
    if (tool === undefined) throw new FinalError(`tool_not_found: no tool "${name}" on worker ${ctx.workerId}`)
    if (tool.handler === undefined) throw new FinalError(`tool "${name}" has no handler on worker ${ctx.workerId}`)
    const raw = payload.args ?? payload.arguments ?? payload.params
    const args: JsonObject = raw === undefined || raw === null ? {} : isObject(raw) ? raw : { value: raw }
    const callerPeerId = typeof payload._peer_id === 'string' ? payload._peer_id : ''
    let result: unknown
    try {
      result = await tool.handler(args, { callerPeerId, signal: ctx.signal })
    } catch (err) {
      // The caller waits for the outcome: a tool's error is its answer, not worth a retry.
      throw new FinalError(err instanceof Error ? err.message : String(err), { cause: err })
    }
    return { tool: name, result: result === undefined ? null : result }
  }
}

export const echoHandler: TaskHandler = (task) => task.payload

/** `sleep`: payload `{seconds}` (0..3600); stops early with an error when aborted. */
export const sleepHandler: TaskHandler = async (task, ctx) => {
  const seconds = task.payload.seconds ?? 0
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    throw new FinalError('sleep: payload.seconds must be a non-negative number')
  }
  if (seconds > MAX_SLEEP_S) throw new FinalError(`sleep: payload.seconds must be at most ${MAX_SLEEP_S}`)
  await new Promise<void>((resolve, reject) => {
    const { signal } = ctx
    if (signal.aborted) {
      reject(abortError(signal))
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(abortError(signal))
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, seconds * 1000)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  return { slept: seconds }
}

function abortError (signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof Error ? reason : new Error('aborted')
}

export interface BuiltinHandlerOptions {
  /** Worker-side tools run by `tool.call`; default: an empty registry. */
  tools?: ToolRegistry
}

export function builtinHandlers (opts: BuiltinHandlerOptions = {}): HandlerMap {
  return {
    'tool.call': toolCallHandler(opts.tools ?? new ToolRegistry()),
    echo: echoHandler,
    sleep: sleepHandler
  }
}

// ---- maps ---------------------------------------------------------------------------

/** Later maps win: user modules override built-ins, per canonical task type. */
export function mergeHandlers (...maps: HandlerMap[]): HandlerMap {
  const byCanonical = new Map<string, [string, TaskHandler]>()
  for (const map of maps) {
    for (const [type, handler] of Object.entries(map)) {
      const canonical = canonicalTaskType(type)
      if (canonical === '') continue
      byCanonical.delete(canonical) // keep insertion order meaningful: last definition last
      byCanonical.set(canonical, [type, handler])
    }
  }
  const out: HandlerMap = {}
  for (const [type, handler] of byCanonical.values()) out[type] = handler
  return out
}

/** Dispatch table keyed by canonical type, so any alias of a claimed type finds its handler. */
export function dispatchTable (map: HandlerMap): Map<string, TaskHandler> {
  const table = new Map<string, TaskHandler>()
  for (const [type, handler] of Object.entries(map)) {
    if (typeof handler !== 'function') throw new TypeError(`handler for task type "${type}" is not a function`)
    const canonical = canonicalTaskType(type)
    if (canonical !== '') table.set(canonical, handler)
  }
  return table
}

/**
 * The claim filter: every spelling of the handled types, narrowed to an explicit
 * allowlist when given (a type without a handler is never claimed). Empty means the
 * worker can run nothing, which the caller must treat as a configuration error —
 * an empty filter would mean "any type" to the service.
 */
export function claimTaskTypes (handlerTypes: Iterable<string>, allowlist: readonly string[] | null | undefined): string[] {
  const handled = new Set([...handlerTypes].map(canonicalTaskType).filter((t) => t !== ''))
  const wanted = allowlist === null || allowlist === undefined
    ? [...handled]
    : [...new Set(allowlist.map(canonicalTaskType))].filter((t) => handled.has(t))
  return expandTaskTypes(wanted)
}

// ---- loading modules ----------------------------------------------------------------

export interface LoadHandlerOptions {
  /** Base for relative paths and package resolution; default process.cwd(). */
  cwd?: string
}

/**
 * Imports a handler module by path (relative to cwd) or package name. It must export
 * an object of functions keyed by task type: as its default export, or as `handlers`.
 */
export async function loadHandlerModule (specifier: string, opts: LoadHandlerOptions = {}): Promise<HandlerMap> {
  const spec = specifier.trim()
  if (spec === '') throw new TypeError('empty handler module specifier')
  const cwd = opts.cwd ?? process.cwd()
  let ns: Record<string, unknown>
  try {
    ns = await import(resolveSpecifier(spec, cwd)) as Record<string, unknown>
  } catch (err) {
    throw new Error(`cannot load handler module ${spec}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  return handlersFromModule(ns, spec)
}

function resolveSpecifier (spec: string, cwd: string): string {
  if (spec.startsWith('file:') || spec.startsWith('data:') || spec.startsWith('node:')) return spec
  const looksLikePath = isAbsolute(spec) || spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..' ||
    /^[A-Za-z]:[\\/]/.test(spec)
  const asPath = resolve(cwd, spec)
  if (looksLikePath || existsSync(asPath)) return pathToFileURL(asPath).href
  // A package installed next to the user's project, not next to this library.
  try {
    return pathToFileURL(createRequire(join(cwd, 'package.json')).resolve(spec)).href
  } catch {
    return spec // ESM-only exports or a package visible from here: let import() decide
  }
}

/** Accepts `export default {...}`, `export const handlers = {...}`, and CommonJS `module.exports = {handlers}`. */
export function handlersFromModule (ns: Record<string, unknown>, spec = 'module'): HandlerMap {
  const def = ns.default
  const candidates: unknown[] = [ns.handlers, isObject(def) ? (def as Record<string, unknown>).handlers : undefined, def]
  for (const c of candidates) {
    if (c === undefined || c === null || typeof c !== 'object' || Array.isArray(c)) continue
    const entries = Object.entries(c as Record<string, unknown>)
    if (entries.length === 0) continue
    const bad = entries.find(([, v]) => typeof v !== 'function')
    if (bad !== undefined) throw new TypeError(`${spec}: handler "${bad[0]}" is not a function`)
    return Object.fromEntries(entries) as HandlerMap
  }
  throw new TypeError(`${spec}: expected a default export or a named "handlers" export: an object of functions keyed by task type`)
}
