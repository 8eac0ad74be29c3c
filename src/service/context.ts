/**
 * What the op handlers receive. The service is assembled from these components
 * (js-libp2p style) rather than reaching for globals, so tests can build one with a
 * temporary store and no network.
 */
import type { TaskStore } from '../store/task-store.js'
import type { CacheStore } from '../store/cache-store.js'
import type { ToolRegistry } from '../tools/registry.js'
import type { TaskEvents } from './task-events.js'
import type { ServiceStats } from './stats.js'
import type { QueueWrites } from './write-batcher.js'
import type { NatReport } from '../nat/report.js'
import type { AccessControl } from './access.js'
import type { CoordinationInfo } from './coordinator-directory.js'

export interface ServiceOptions {
  /** Shared token; null = open service. */
  token: string | null
  enableTools: boolean
  enableCache: boolean
  enableLegacy: boolean
  /** This node's session tag (status.session). */
  session: string
  namespace: string
  leaseS: number
  waitMaxS: number
  /** ★ max_attempts of a task submitted without one (MAX_ATTEMPTS, default 3). */
  maxAttempts?: number
  /** Max bytes of one cache value (wire-protocol.md §6.2). */
  cacheMaxValueBytes: number
  mcp: McpLimits
  /** ★ SWARM_KEY is set: the node only talks to nodes with the same key (status `security`). */
  privateNetwork?: boolean
}

export interface McpLimits {
  maxFrameBytes: number
  maxFrames: number
  rateCapacity: number
  rateRefillPerSec: number
  /** Streams idle longer than this are closed (clients reopen transparently). */
  idleTimeoutMs: number
}

/** Facts about the embedded worker for status detail (§8 local_worker). */
export interface LocalWorkerInfo {
  enabled: boolean
  supportedTaskTypes: string[]
}

export interface ServiceComponents {
  /** The queue: embedded SQLite or PostgreSQL (store/task-store.ts). */
  store: TaskStore
  /** null when the cache is disabled. */
  cache: CacheStore | null
  tools: ToolRegistry
  events: TaskEvents
  /** Queue writes: group commit on SQLite (write-batcher.ts), a transaction each on PostgreSQL (pg-writes.ts). */
  writes: QueueWrites
  stats: ServiceStats
  /** Allow list, tokens and roles: every refusal is decided (and counted) there. */
  access: AccessControl
  /** Own peer id as a string ('' before the node exists). */
  peerId: () => string
  /** Announced multiaddrs (with /p2p/). */
  multiaddrs: () => string[]
  nat: () => NatReport
  localWorker: () => LocalWorkerInfo
  /** ★ The store's backend and the other coordinators of a shared queue (status). */
  coordination: () => CoordinationInfo
  /** Worker-routed tool tasks whose caller gave up while they ran; deleted when they finish. */
  orphanedToolTasks: Set<string>
}

export interface ServiceContext extends ServiceComponents {
  options: ServiceOptions
}

/** Who sent a request, and a signal that fires when their stream goes away. */
export interface CallerInfo {
  remotePeerId: string
  signal: AbortSignal
  /**
   * `http`: the node's own HTTP listener (the dashboard) calls for a browser that is no
   * libp2p peer, so the allow list and per-peer limits do not apply; its token and role do.
   */
  via?: 'http'
}

export type Reply = Record<string, unknown> & { ok: boolean }
