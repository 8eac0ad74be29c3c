/** Tools every service registers (wire-protocol.md §6.2 "Built-in tool"). */
import os from 'node:os'
import { VERSION } from '../version.js'
import type { ToolRegistry } from './registry.js'
import type { JsonObject } from '../protocol/types.js'

export interface ServerStatusSource {
  startedAt: number
  host: string
  port: () => number
  peerId: () => string
}

export function registerBuiltinTools (registry: ToolRegistry, source: ServerStatusSource): void {
  registry.register({
    name: 'get_server_status',
    description: 'Report that the TaskQueue service is running, with version, uptime and host facts.',
    inputSchema: { type: 'object', properties: {}, additionalProperties: true },
    handler: () => ({
      status: 'running',
      version: VERSION,
      uptime_seconds: Math.round((Date.now() - source.startedAt) / 10) / 100,
      host: source.host,
      port: source.port(),
      system: `${os.type()} ${os.release()} ${os.arch()}`,
      runtime: `node ${process.version}`,
      node_version: process.version,
      peer_id: source.peerId()
    })
  })
  registry.register({
    name: 'echo',
    description: 'Return the arguments unchanged (connectivity check).',
    inputSchema: { type: 'object', additionalProperties: true },
    handler: (args: JsonObject) => args
  })
}
