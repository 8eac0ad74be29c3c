/** Public surface of the durable store: queue, cache, scheduler and registry. */
export * from './types.js'
// The wire shapes the store reads and writes (their home is protocol/).
export * from '../protocol/types.js'
export { normalizeTaskType, canonicalTaskType, canonicalTaskTypes, expandTaskTypes } from './aliases.js'
export { SCHEDULER_CLOCK, schedulerScore, pickOwner, isOwner } from './scheduler.js'
export {
  PeerRegistry, peerKey, DEFAULT_PEER_TIMEOUT_S, DEFAULT_MAX_PEERS, MAX_CANDIDATES,
  type PeerTouch, type PeerKeySources, type PeerRegistryOptions, type Candidates
} from './peers.js'
export { openDatabase, migrate, isBusyError, SCHEMA_VERSION, type OpenDatabaseOptions } from './db.js'
export { Checkpointer, type CheckpointerOptions } from './checkpointer.js'
export type { GroupOutcome } from './group-commit.js'
export {
  QueueStore, DEFAULT_MAX_REPLY_BYTES, LEASE_EXPIRED_ERROR, ATTEMPTS_EXHAUSTED_ERROR, MIN_SCHEDULER_WALK,
  type QueueStoreOptions, type QueueStoreEvents
} from './queue.js'
export { extractAffinity, canonicalJson, encodeCursor, decodeCursor, type ListCursor } from './queue-util.js'
export { SqliteCacheStore, type SqliteCacheStoreOptions } from './cache.js'
export {
  validateCacheKey, MAX_CACHE_KEY_BYTES, DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_MAX_BYTES, DEFAULT_CACHE_MAX_VALUE_BYTES,
  type CacheStore, type CacheBounds, type CacheSetInput, type CacheSetResult, type CacheStats
} from './cache-store.js'
export {
  type RetryPolicy, type RetentionPolicy, DEFAULT_RETRY_POLICY, DEFAULT_RETENTION, retryDelayS, parseBackoff
} from './retry-policy.js'
export { EventLog, DEFAULT_EVENTS_MAX, type EventPage } from './event-log.js'
export type { RetryInput, RetryResult, PurgeInput, PausedState, PruneResult } from './queue-admin.js'
export type { TaskStore, TaskEventLog, MaybePromise, StoreBackend } from './task-store.js'
