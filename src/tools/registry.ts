/**
 * Tools callable through the `tool` op and direct MCP `tools/call`. A library user
 * registers their own with `registry.register({...})`.
 *
 * A tool's context says where it runs: `server` tools run inside the service process;
 * `worker` tools are routed through the queue as `tool.call` tasks (wire-protocol.md
 * §6.2 "Tool routing") and run on whichever worker claims them.
 */
import type { JsonObject } from '../protocol/types.js'

export type ToolContext = 'server' | 'worker'

export interface ToolCallInfo {
  /** Transport peer id of the caller ('' when called in-process). */
  callerPeerId: string
  signal: AbortSignal
}

export type ToolHandler = (args: JsonObject, info: ToolCallInfo) => unknown

export interface ToolDefinition {
  name: string
  description: string
  /** JSON Schema of the arguments object (informational; shown by tools/list). */
  inputSchema?: JsonObject
  context?: ToolContext
  /** Required for `server` tools; a `worker` tool runs on workers through their `tool.call` handler. */
  handler?: ToolHandler
}

export interface RegisteredTool {
  name: string
  description: string
  inputSchema: JsonObject
  context: ToolContext
  handler?: ToolHandler
}

export class ToolError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ToolError'
  }
}

/** Thrown by a handler to report bad arguments (`invalid_params`) rather than a tool failure. */
export class InvalidToolParamsError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidToolParamsError'
  }
}

const ANY_OBJECT_SCHEMA: JsonObject = { type: 'object', additionalProperties: true }

export class ToolRegistry {
  private readonly tools = new Map<string, RegisteredTool>()

  register (def: ToolDefinition): this {
    const name = def.name.trim()
    if (name === '') throw new TypeError('a tool needs a non-empty name')
    const context = def.context ?? 'server'
    if (context === 'server' && typeof def.handler !== 'function') {
      throw new TypeError(`server tool "${name}" needs a handler`)
    }
    this.tools.set(name, {
      name,
      description: def.description,
      inputSchema: def.inputSchema ?? ANY_OBJECT_SCHEMA,
      context,
      handler: def.handler
    })
    return this
  }

  get (name: string): RegisteredTool | undefined {
    return this.tools.get(name)
  }

  has (name: string): boolean {
    return this.tools.has(name)
  }

  /** Sorted by name, as tools/list returns them. */
  list (): RegisteredTool[] {
    return [...this.tools.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  }
}
