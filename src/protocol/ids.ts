/** Protocol ids of wire-protocol.md §1. */
import { randomUUID } from 'node:crypto'

export const MCP_PROTOCOL = '/mcp+p2p/1.0.0'
export const LEGACY_PROTOCOL = '/ipfs-datasets/task-queue/1.0.0'

/** The MCP protocol version our `initialize` reports (kept from the original). */
export const MCP_PROTOCOL_VERSION = '2024-11-05'

/** The one MCP tool that carries TaskQueue envelopes. */
export const TASK_QUEUE_RPC_TOOL = 'task_queue.rpc'

export const MCP_PROFILES = ['mcp++/p2p-transport', 'mcp++/profile-e-mcp-p2p'] as const

/** ★ Feature name of the `complete_many` op (README); workers batch completes only when it is listed. */
export const SERVER_FEATURE_COMPLETE_MANY = 'complete_many'

/** ★ Feature name of the `submit_many` op (README); RemoteQueue.submitMany batches only when it is listed. */
export const SERVER_FEATURE_SUBMIT_MANY = 'submit_many'

/** Most items one ★ `complete_many` or `submit_many` request may carry (the 1 MiB frame limit applies too). */
export const MAX_BATCH_ITEMS = 1024

/** ★ The ops retry, purge, pause and resume (README). */
export const SERVER_FEATURE_QUEUE_ADMIN = 'queue_admin'
/** ★ The op events (README). */
export const SERVER_FEATURE_EVENTS = 'events'
/** ★ A failed complete with `retry: true` is retried with backoff (README). */
export const SERVER_FEATURE_RETRIES = 'retries'

/** Features advertised in `status.server.features` and `initialize.features` (§8). */
export const SERVER_FEATURES = [
  'mcp_multi_call',
  'lease_renewal',
  'owner_guard',
  'list_cursor',
  'cache_null',
  'typed_errors',
  'auto_idempotency',
  SERVER_FEATURE_COMPLETE_MANY,
  SERVER_FEATURE_SUBMIT_MANY,
  SERVER_FEATURE_RETRIES,
  SERVER_FEATURE_QUEUE_ADMIN,
  SERVER_FEATURE_EVENTS,
  'delays',
  'retention'
] as const

export const DEFAULT_NAMESPACE = 'ipfs-accelerate-task-queue'

/** Reply frames the original client accepts are at most 1 MiB; keep controlled replies below. */
export const ORIGINAL_CLIENT_MAX_FRAME = 1024 * 1024
export const REPLY_BYTE_BUDGET = ORIGINAL_CLIENT_MAX_FRAME - 4096

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, in the usual
 * 8-4-4-4-12 form. Used for the client's `auto-<uuid>` idempotency keys (B8): the
 * service indexes those keys, and time-ordered keys are inserted next to each other
 * instead of into a random index page (measured: half the WAL bytes per submit,
 * ~15 % less store CPU). The random part comes from randomUUID's pooled entropy.
 */
export function uuidV7 (nowMs: number = Date.now()): string {
  const t = Math.max(0, Math.trunc(nowMs)).toString(16).padStart(12, '0').slice(-12)
  // randomUUID(): xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx; keep its random bits and variant.
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${randomUUID().slice(15)}`
}
