/**
 * Bounded TTL cache (wire-protocol.md §6.2, B11, B12) in SQLite, so entries survive
 * restarts and can be shared by processes using the same file. Totals are kept by
 * triggers (db.ts) because count(*)/sum() would scan the table on every `set`.
 */
import type { DatabaseSync } from 'node:sqlite'
import { TaskQueueError } from '../protocol/errors.js'
import { immediate, migrate, prepareTx } from './db.js'
import { num, parseJson, type Row } from './queue-util.js'
import type { CacheEntry, JsonValue } from './types.js'

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
  if (Buffer.byteLength(key, 'utf8') > MAX_CACHE_KEY_BYTES) {
    throw new TaskQueueError('key_too_long', `key exceeds ${MAX_CACHE_KEY_BYTES} UTF-8 bytes`)
  }
  return key
}

/** Batch size of the LRU eviction scan. */
const EVICT_BATCH = 64

export class CacheStore {
  readonly db: DatabaseSync
  readonly maxEntries: number
  readonly maxBytes: number
  readonly maxValueBytes: number
  readonly now: () => number
  private readonly s: ReturnType<typeof prepareCacheStatements>

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
    return immediate(this.s, () => {
      const row = this.s.get.get(key)
      if (row === undefined) return miss(key)
      if (expired(row, now)) {
        this.s.delete.run(key)
        return miss(key)
      }
      // A write per hit: LRU order must be shared by every process using the file.
      this.s.touch.run(key)
      return { key, hit: true, value: parseJson(row.value), expires_at: expiresAt(row) }
    })
  }

  /** Does not count as a use for LRU purposes (a probe is not a read of the value). */
  has (key: string): boolean {
    validateCacheKey(key)
    const row = this.s.get.get(key)
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
      this.s.upsert.run(key, text, size, expiresAtValue)
      this.evict(now, key)
    })
    return { expires_at: expiresAtValue }
  }

  /** True only when a live entry was removed (an expired one is dropped silently). */
  delete (key: string): boolean {
    validateCacheKey(key)
    const now = this.now()
    return immediate(this.s, () => {
      const row = this.s.get.get(key)
      if (row === undefined) return false
      this.s.delete.run(key)
      return !expired(row, now)
    })
  }

  /** Removes expired entries; returns how many. */
  sweep (): number {
    const now = this.now()
    return immediate(this.s, () => Number(this.s.deleteExpired.run(now).changes))
  }

  stats (): CacheStats {
    const r = this.s.stats.get()
    return { entries: num(r?.entries), bytes: num(r?.bytes) }
  }

  /** Expired entries go first, then least recently used; `keep` (just written) goes last. */
  private evict (now: number, keep: string): void {
    if (!this.over()) return
    this.s.deleteExpired.run(now)
    while (this.over()) {
      const victims = this.s.lru.all(keep, EVICT_BATCH)
      if (victims.length === 0) return // only `keep` left: a value larger than maxBytes
      for (const v of victims) {
        this.s.delete.run(v.key as string)
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

function expiresAt (row: Row): number | null {
  return row.expires_at == null ? null : num(row.expires_at)
}

function expired (row: Row, now: number): boolean {
  const e = expiresAt(row)
  return e !== null && e <= now
}

function prepareCacheStatements (db: DatabaseSync) {
  // The LRU sequence is max+1 over an index: strictly increasing across processes.
  const nextLru = '(SELECT coalesce(max(lru), 0) + 1 FROM cache)'
  return {
    ...prepareTx(db),
    get: db.prepare('SELECT value, expires_at FROM cache WHERE key = ?'),
    touch: db.prepare(`UPDATE cache SET lru = ${nextLru} WHERE key = ?`),
    upsert: db.prepare(`INSERT INTO cache (key, value, size, expires_at, lru) VALUES (?, ?, ?, ?, ${nextLru})
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size,
      expires_at = excluded.expires_at, lru = excluded.lru`),
    delete: db.prepare('DELETE FROM cache WHERE key = ?'),
    deleteExpired: db.prepare('DELETE FROM cache WHERE expires_at IS NOT NULL AND expires_at <= ?'),
    lru: db.prepare('SELECT key FROM cache WHERE key <> ? ORDER BY lru LIMIT ?'),
    stats: db.prepare('SELECT entries, bytes FROM cache_stats WHERE id = 1')
  }
}
