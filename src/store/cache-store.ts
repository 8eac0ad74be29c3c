/**
 * The TTL cache's contract (wire-protocol.md §6.2, B11, B12), as the service and the
 * conformance suite use it, with two backends like the queue's (task-store.ts):
 * `SqliteCacheStore` (cache.ts: the queue's SQLite file or CACHE_DIR's, synchronous)
 * and `PgCacheStore` (pg/cache.ts: the queue's PostgreSQL database, shared by every
 * coordinator of it, asynchronous). Results are `MaybePromise`; callers that serve both
 * `await` them.
 *
 * Semantics, the same on both (test/unit/store-conformance.test.ts runs one suite
 * against each): a stored JSON null is a hit; a missing or expired key is a miss; a
 * positive ttl_s sets an expiry, anything else none; `delete` is true only for a live
 * entry; `has` is not a use for recency; bounds on entries, total bytes (UTF-8 key +
 * serialized value) and one value; over a bound, expired entries go first, then the
 * least recently used, and the entry just written last.
 *
 * The rules both backends apply before they touch storage live here, once.
 */
import { TaskQueueError } from '../protocol/errors.js'
import type { JsonValue } from '../protocol/types.js'
import type { MaybePromise, StoreBackend } from './task-store.js'
import type { CacheEntry } from './types.js'

export const MAX_CACHE_KEY_BYTES = 1024
export const DEFAULT_CACHE_MAX_ENTRIES = 100_000
export const DEFAULT_CACHE_MAX_BYTES = 268_435_456
export const DEFAULT_CACHE_MAX_VALUE_BYTES = 524_288

/** The bounds (CACHE_MAX_ENTRIES, CACHE_MAX_BYTES, CACHE_MAX_VALUE_BYTES) and the clock. */
export interface CacheBounds {
  maxEntries?: number
  /** Bound on the sum of UTF-8 key + serialized value bytes. */
  maxBytes?: number
  /** Bound on one serialized value. */
  maxValueBytes?: number
  /** ★ Bytes (key + value) the entries last written by one remote peer may hold (PEER_MAX_CACHE_BYTES); 0 = no bound. */
  maxBytesPerOwner?: number
  /** Epoch seconds with fraction; injectable for tests. */
  now?: () => number
}

export interface CacheStats {
  entries: number
  bytes: number
}

/**
 * One `cache.set`. An object, so a write can carry more about itself (who wrote it,
 * for per-peer bounds) without changing every caller.
 */
export interface CacheSetInput {
  /** Trimmed by the envelope coercion; validated by the store. */
  key: string
  /** Any JSON; undefined is stored as null. */
  value: JsonValue | undefined
  /** > 0 sets an expiry that many seconds from now; anything else, none. */
  ttl_s?: number
  /** ★ The remote peer id that writes (PEER_MAX_CACHE_BYTES); null/absent = a local write (exempt). */
  owner?: string | null
}

export interface CacheSetResult {
  expires_at: number | null
}

export interface CacheStore {
  readonly backend: StoreBackend
  /** The bounds with defaults applied (cacheBounds); `maxBytesPerOwner` 0 = no bound. */
  readonly bounds: Required<CacheBounds>
  /** Entries evicted for room by this store since it opened (metrics). */
  readonly evictions: number

  /** A stored JSON null is a hit with value null; a missing or expired key is a miss. */
  get: (key: string) => MaybePromise<CacheEntry>
  /** Does not count as a use for recency (a probe is not a read of the value). */
  has: (key: string) => MaybePromise<boolean>
  /** `value_too_large` over maxValueBytes (nothing stored); evicts to stay within the bounds. */
  set: (input: CacheSetInput) => MaybePromise<CacheSetResult>
  /** True only when a live entry was removed (an expired one is dropped silently). */
  delete: (key: string) => MaybePromise<boolean>
  /** Removes expired entries; returns how many. Safe on every coordinator at once. */
  sweep: () => MaybePromise<number>
  stats: () => MaybePromise<CacheStats>
  /** ★ Bytes held by the entries `owner` (a remote peer id) wrote last. */
  ownerBytes: (owner: string) => MaybePromise<number>
  /** Writes the recency of recent hits now (they are batched; see CacheRecency). */
  flushTouches: () => MaybePromise<void>
  /** Stops the recency timer; the storage itself belongs to whoever opened it. */
  close: () => MaybePromise<void>
}

/** Callers pass the key already trimmed (the envelope coercion trims strings). */
export function validateCacheKey (key: string): string {
  if (typeof key !== 'string' || key === '') throw new TaskQueueError('missing_key', 'key is required')
  // A UTF-16 unit is at most 3 UTF-8 bytes: short keys need no byte count.
  if (key.length * 3 > MAX_CACHE_KEY_BYTES && Buffer.byteLength(key, 'utf8') > MAX_CACHE_KEY_BYTES) {
    throw new TaskQueueError('key_too_long', `key exceeds ${MAX_CACHE_KEY_BYTES} UTF-8 bytes`)
  }
  return key
}

/** The bounds with defaults applied (each at least 1). */
export function cacheBounds (opts: CacheBounds): Required<CacheBounds> {
  return {
    maxEntries: Math.max(1, opts.maxEntries ?? DEFAULT_CACHE_MAX_ENTRIES),
    maxBytes: Math.max(1, opts.maxBytes ?? DEFAULT_CACHE_MAX_BYTES),
    maxValueBytes: Math.max(1, opts.maxValueBytes ?? DEFAULT_CACHE_MAX_VALUE_BYTES),
    maxBytesPerOwner: Math.max(0, opts.maxBytesPerOwner ?? 0),
    now: opts.now ?? (() => Date.now() / 1000)
  }
}

/** A `cache.set` as a row: what is stored, its size for the byte bound and its expiry. */
export interface CacheRow {
  key: string
  /** Serialized JSON. */
  text: string
  /** UTF-8 key + value bytes. */
  size: number
  expiresAt: number | null
  /** ★ The remote writer, or null for a local write. */
  owner: string | null
}

/** Validates a write and turns it into the row to store (`value_too_large` before anything is written). */
export function cacheRowOf (input: CacheSetInput, now: number, maxValueBytes: number): CacheRow {
  const key = validateCacheKey(input.key)
  const text = JSON.stringify(input.value ?? null)
  const valueBytes = Buffer.byteLength(text, 'utf8')
  if (valueBytes > maxValueBytes) {
    throw new TaskQueueError('value_too_large', `value is ${valueBytes} bytes; the limit is ${maxValueBytes}`)
  }
  const ttlS = input.ttl_s ?? 0
  const expiresAt = Number.isFinite(ttlS) && ttlS > 0 ? now + ttlS : null
  return { key, text, size: Buffer.byteLength(key, 'utf8') + valueBytes, expiresAt, owner: input.owner ?? null }
}

export function cacheMiss (key: string): CacheEntry {
  return { key, hit: false, value: null, expires_at: null }
}

/** Over a bound? */
export function overBounds (s: CacheStats, bounds: { maxEntries: number, maxBytes: number }): boolean {
  return s.entries > bounds.maxEntries || s.bytes > bounds.maxBytes
}

/** Longest a cache hit's recency stays unwritten (other processes see it after this). */
const TOUCH_FLUSH_MS = 1000
/** A flush is forced at this many distinct pending keys, bounding memory and the flush transaction. */
const MAX_PENDING_TOUCHES = 4096

/**
 * Cache hits waiting to be written as recency. Writing the new recency on every hit cost
 * a write transaction per cache.get (~70 µs of the SQLite service's ~300 µs per request),
 * so hits are remembered here in order and written in one batch: before the store evicts
 * or sweeps (so its own evictions always see every read), and at most TOUCH_FLUSH_MS
 * later for other processes or coordinators sharing the storage. A crash loses only that
 * much recency information, never an entry.
 */
export class CacheRecency {
  /** Keys read since the last flush, least recent first. */
  private readonly pending = new Set<string>()
  private timer: NodeJS.Timeout | undefined

  /** `flush` writes the keys it is given (least recent first); a failure drops that batch. */
  constructor (private readonly flush: () => MaybePromise<void>) {}

  get size (): number { return this.pending.size }

  /** Records a read of `key`. */
  touch (key: string): void {
    // Delete + add moves the key to the end: the Set is the recency order of the batch.
    this.pending.delete(key)
    this.pending.add(key)
    if (this.pending.size >= MAX_PENDING_TOUCHES) {
      this.flushSafely()
      return
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.flushSafely()
      }, TOUCH_FLUSH_MS)
      this.timer.unref()
    }
  }

  /** `key` was rewritten or deleted: its pending read no longer matters. */
  forget (key: string): void {
    this.pending.delete(key)
  }

  /** The pending keys, least recent first; the batch is emptied and the timer stopped. */
  take (): string[] {
    const keys = [...this.pending]
    this.pending.clear()
    this.stop()
    return keys
  }

  stop (): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }

  private flushSafely (): void {
    const dropped = (): void => { this.pending.clear() }
    try {
      const out = this.flush()
      // Busy or closed storage: recency is advisory, drop this batch.
      if (out instanceof Promise) out.catch(dropped)
    } catch {
      dropped()
    }
  }
}

/**
 * ★ PEER_MAX_CACHE_BYTES (per-peer bound, README "Security"): would a write of `size` bytes by a peer whose entries hold
 * `used` bytes, replacing one of its own entries of `replaced` bytes, pass `max`?
 * (Each cache entry belongs to its last writer; local writes have none.)
 */
export function cacheOwnerOver (used: number, replaced: number, size: number, max: number): boolean {
  return max > 0 && used - replaced + size > max
}

export function cacheQuotaRefusal (used: number, size: number, max: number): TaskQueueError {
  return new TaskQueueError('rate_limited',
    `this peer's cache entries hold ${used} bytes and this one ${size} (PEER_MAX_CACHE_BYTES=${max}); delete some or let them expire`,
    { limit: 'PEER_MAX_CACHE_BYTES' })
}
