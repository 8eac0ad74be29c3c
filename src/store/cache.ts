/**
 * Bounded TTL cache (wire-protocol.md §6.2, B11, B12) in SQLite, so entries survive
 * restarts and can be shared by processes using the same file. Totals are kept by
 * triggers (db.ts) because count(*)/sum() would scan the table on every `set`.
 */
import type { DatabaseSync, SQLOutputValue } from 'node:sqlite'
import { TaskQueueError } from '../protocol/errors.js'
import { immediate, migrate, prepareTx, returnArrays } from './db.js'
import { num, parseJson } from './queue-util.js'
import type { JsonValue } from '../protocol/types.js'
import type { CacheEntry } from './types.js'

export const MAX_CACHE_KEY_BYTES = 1024
export const DEFAULT_CACHE_MAX_ENTRIES = 100_000
export const DEFAULT_CACHE_MAX_BYTES = 268_435_456
export const DEFAULT_CACHE_MAX_VALUE_BYTES = 524_288

export interface CacheStoreOptions {
  db: DatabaseSync
  maxEntries?: number
  /** Bound on the sum of UTF-8 key + serialized value bytes. */
  maxBytes?: number
  /** Bound on one serialized value. */
  maxValueBytes?: number
  /** Epoch seconds with fraction; injectable for tests. */
  now?: () => number
}

export interface CacheStats {
  entries: number
  bytes: number
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

/** Batch size of the LRU eviction scan. */
const EVICT_BATCH = 64
/** Longest a cache hit's recency stays unwritten (other processes see it after this). */
const TOUCH_FLUSH_MS = 1000
/** A flush is forced at this many distinct pending keys, bounding memory and the flush transaction. */
const MAX_PENDING_TOUCHES = 4096

export class CacheStore {
  readonly db: DatabaseSync
  readonly maxEntries: number
  readonly maxBytes: number
  readonly maxValueBytes: number
  readonly now: () => number
  private readonly s: ReturnType<typeof prepareCacheStatements>
  /** Keys read since the last flush, least recent first (touchLater). */
  private readonly pendingTouches = new Set<string>()
  private touchTimer: NodeJS.Timeout | undefined

  constructor (opts: CacheStoreOptions) {
    this.db = opts.db
    this.maxEntries = Math.max(1, opts.maxEntries ?? DEFAULT_CACHE_MAX_ENTRIES)
    this.maxBytes = Math.max(1, opts.maxBytes ?? DEFAULT_CACHE_MAX_BYTES)
    this.maxValueBytes = Math.max(1, opts.maxValueBytes ?? DEFAULT_CACHE_MAX_VALUE_BYTES)
    this.now = opts.now ?? (() => Date.now() / 1000)
    migrate(this.db)
    this.s = prepareCacheStatements(this.db)
  }

  /** A stored JSON null is a hit with value null; a missing or expired key is a miss. */
  get (key: string): CacheEntry {
    validateCacheKey(key)
    const now = this.now()
    // A plain read: a hit needs no write transaction (see touchLater).
    const row = this.lookup(key)
    if (row === undefined) return miss(key)
    const expiresAt = expiryOf(row)
    if (expiresAt !== null && expiresAt <= now) {
      // Re-checked under the write lock: another process may have just rewritten it.
      immediate(this.s, () => this.s.deleteExpiredKey.run(key, now))
      return miss(key)
    }
    this.touchLater(key)
    return { key, hit: true, value: parseJson(row[0]), expires_at: expiresAt }
  }

  /**
   * Records a read for LRU order. Writing the new recency on every hit cost a
   * write transaction per cache.get (~70 µs of the service's ~300 µs per request), so
   * hits are remembered here in order and written in one transaction: before this
   * store evicts or sweeps (so its own evictions always see every read), and at most
   * TOUCH_FLUSH_MS later for other processes sharing the file. A crash loses only
   * that much recency information, never an entry.
   */
  private touchLater (key: string): void {
    // Delete + add moves the key to the end: the Set is the recency order of the batch.
    this.pendingTouches.delete(key)
    this.pendingTouches.add(key)
    if (this.pendingTouches.size >= MAX_PENDING_TOUCHES) {
      this.flushTouches()
      return
    }
    if (this.touchTimer === undefined) {
      this.touchTimer = setTimeout(() => {
        this.touchTimer = undefined
        try {
          this.flushTouches()
        } catch {
          // Busy or closed database: recency is advisory, drop this batch.
          this.pendingTouches.clear()
        }
      }, TOUCH_FLUSH_MS)
      this.touchTimer.unref()
    }
  }

  /** Writes the pending LRU touches (inside the caller's transaction when `inTx`). */
  flushTouches (inTx = false): void {
    if (this.pendingTouches.size === 0) return
    const keys = [...this.pendingTouches]
    this.pendingTouches.clear()
    if (this.touchTimer !== undefined) {
      clearTimeout(this.touchTimer)
      this.touchTimer = undefined
    }
    const run = (): void => { for (const k of keys) this.s.touch.run(k) }
    if (inTx) run()
    else immediate(this.s, run)
  }

  /** The stored [value, expires_at] of `key`, if any (read as an array: no object per row). */
  private lookup (key: string): EntryRow | undefined {
    return this.s.lookup.get(key) as EntryRow | undefined
  }

  /** Does not count as a use for LRU purposes (a probe is not a read of the value). */
  has (key: string): boolean {
    validateCacheKey(key)
    const row = this.lookup(key)
    return row !== undefined && !expired(row, this.now())
  }

  set (key: string, value: JsonValue | undefined, ttlS: number = 0): { expires_at: number | null } {
    validateCacheKey(key)
    const text = JSON.stringify(value ?? null)
    const valueBytes = Buffer.byteLength(text, 'utf8')
    if (valueBytes > this.maxValueBytes) {
      throw new TaskQueueError('value_too_large', `value is ${valueBytes} bytes; the limit is ${this.maxValueBytes}`)
    }
    const now = this.now()
    const expiresAtValue = Number.isFinite(ttlS) && ttlS > 0 ? now + ttlS : null
    const size = Buffer.byteLength(key, 'utf8') + valueBytes
    immediate(this.s, () => {
      this.pendingTouches.delete(key)
      this.flushTouches(true)
      this.s.upsert.run(key, text, size, expiresAtValue)
      this.evict(now, key)
    })
    return { expires_at: expiresAtValue }
  }

  /** True only when a live entry was removed (an expired one is dropped silently). */
  delete (key: string): boolean {
    validateCacheKey(key)
    const now = this.now()
    this.pendingTouches.delete(key)
    return immediate(this.s, () => {
      const row = this.lookup(key)
      if (row === undefined) return false
      this.s.delete.run(key)
      return !expired(row, now)
    })
  }

  /** Removes expired entries; returns how many. */
  sweep (): number {
    const now = this.now()
    return immediate(this.s, () => {
      this.flushTouches(true)
      return Number(this.s.deleteExpired.run(now).changes)
    })
  }

  stats (): CacheStats {
    const r = this.s.stats.get()
    return { entries: num(r?.entries), bytes: num(r?.bytes) }
  }

  /** Expired entries go first, then least recently used; `keep` (just written) goes last. */
  /** Entries evicted for room since this store opened (metrics). */
  evictions = 0

  private evict (now: number, keep: string): void {
    if (!this.over()) return
    this.s.deleteExpired.run(now)
    while (this.over()) {
      const victims = this.s.lru.all(keep, EVICT_BATCH)
      if (victims.length === 0) return // only `keep` left: a value larger than maxBytes
      for (const v of victims) {
        this.s.delete.run(v.key as string)
        this.evictions++
        if (!this.over()) return
      }
    }
  }

  private over (): boolean {
    const { entries, bytes } = this.stats()
    return entries > this.maxEntries || bytes > this.maxBytes
  }
}

function miss (key: string): CacheEntry {
  return { key, hit: false, value: null, expires_at: null }
}

/** A cache row as CacheStore.lookup reads it. */
type EntryRow = [value: SQLOutputValue, expiresAt: SQLOutputValue]

function expiryOf (row: EntryRow): number | null {
  return row[1] == null ? null : num(row[1])
}

function expired (row: EntryRow, now: number): boolean {
  const e = expiryOf(row)
  return e !== null && e <= now
}

function prepareCacheStatements (db: DatabaseSync) {
  // The LRU sequence is max+1 over an index: strictly increasing across processes.
  const nextLru = '(SELECT coalesce(max(lru), 0) + 1 FROM cache)'
  return {
    ...prepareTx(db),
    lookup: returnArrays(db.prepare('SELECT value, expires_at FROM cache WHERE key = ?')),
    touch: db.prepare(`UPDATE cache SET lru = ${nextLru} WHERE key = ?`),
    upsert: db.prepare(`INSERT INTO cache (key, value, size, expires_at, lru) VALUES (?, ?, ?, ?, ${nextLru})
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size,
      expires_at = excluded.expires_at, lru = excluded.lru`),
    delete: db.prepare('DELETE FROM cache WHERE key = ?'),
    deleteExpired: db.prepare('DELETE FROM cache WHERE expires_at IS NOT NULL AND expires_at <= ?'),
    deleteExpiredKey: db.prepare('DELETE FROM cache WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?'),
    lru: db.prepare('SELECT key FROM cache WHERE key <> ? ORDER BY lru LIMIT ?'),
    stats: db.prepare('SELECT entries, bytes FROM cache_stats WHERE id = 1')
  }
}
