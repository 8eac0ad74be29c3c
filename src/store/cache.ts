/**
 * The TTL cache (cache-store.ts) in SQLite, so entries survive restarts and can be
 * shared by processes using the same file: the queue's file, or CACHE_DIR's
 * `cache.sqlite3`. Totals are kept by triggers (db.ts) because count(*)/sum() would
 * scan the table on every `set`.
 */
import type { DatabaseSync, SQLOutputValue } from 'node:sqlite'
import { immediate, migrate, prepareTx, returnArrays } from './db.js'
import { num, parseJson } from './queue-util.js'
import type { StoreBackend } from './task-store.js'
import type { CacheEntry } from './types.js'
import {
  CacheRecency, cacheBounds, cacheMiss, cacheOwnerOver, cacheQuotaRefusal, cacheRowOf, overBounds, validateCacheKey,
  type CacheBounds, type CacheRow, type CacheSetInput, type CacheSetResult, type CacheStats, type CacheStore
} from './cache-store.js'

export interface SqliteCacheStoreOptions extends CacheBounds {
  db: DatabaseSync
}

/** Batch size of the LRU eviction scan. */
const EVICT_BATCH = 64

export class SqliteCacheStore implements CacheStore {
  readonly backend: StoreBackend = 'sqlite'
  readonly db: DatabaseSync
  readonly bounds: Required<CacheBounds>
  /** Entries evicted for room since this store opened (metrics). */
  evictions = 0
  private readonly s: ReturnType<typeof prepareCacheStatements>
  private readonly recency = new CacheRecency(() => { this.flushTouches() })

  constructor (opts: SqliteCacheStoreOptions) {
    this.db = opts.db
    this.bounds = cacheBounds(opts)
    migrate(this.db)
    this.s = prepareCacheStatements(this.db)
  }

  get (key: string): CacheEntry {
    validateCacheKey(key)
    const now = this.bounds.now()
    // A plain read: a hit needs no write transaction (CacheRecency).
    const row = this.lookup(key)
    if (row === undefined) return cacheMiss(key)
    const expiresAt = expiryOf(row)
    if (expiresAt !== null && expiresAt <= now) {
      // Re-checked under the write lock: another process may have just rewritten it.
      immediate(this.s, () => this.s.deleteExpiredKey.run(key, now))
      return cacheMiss(key)
    }
    this.recency.touch(key)
    return { key, hit: true, value: parseJson(row[0]), expires_at: expiresAt }
  }

  /** Writes the pending LRU touches (inside the caller's transaction when `inTx`). */
  flushTouches (inTx = false): void {
    if (this.recency.size === 0) return
    const keys = this.recency.take()
    const run = (): void => { for (const k of keys) this.s.touch.run(k) }
    if (inTx) run()
    else immediate(this.s, run)
  }

  /** The stored [value, expires_at] of `key`, if any (read as an array: no object per row). */
  private lookup (key: string): EntryRow | undefined {
    return this.s.lookup.get(key) as EntryRow | undefined
  }

  has (key: string): boolean {
    validateCacheKey(key)
    const row = this.lookup(key)
    return row !== undefined && !expired(row, this.bounds.now())
  }

  set (input: CacheSetInput): CacheSetResult {
    const now = this.bounds.now()
    const row = cacheRowOf(input, now, this.bounds.maxValueBytes)
    immediate(this.s, () => {
      if (row.owner !== null) this.checkOwner(row, now)
      this.recency.forget(row.key)
      this.flushTouches(true)
      this.s.upsert.run(row.key, row.text, row.size, row.expiresAt, row.owner)
      this.evict(now, row.key)
    })
    return { expires_at: row.expiresAt }
  }

  delete (key: string): boolean {
    validateCacheKey(key)
    const now = this.bounds.now()
    this.recency.forget(key)
    return immediate(this.s, () => {
      const row = this.lookup(key)
      if (row === undefined) return false
      this.s.delete.run(key)
      return !expired(row, now)
    })
  }

  sweep (): number {
    const now = this.bounds.now()
    return immediate(this.s, () => {
      this.flushTouches(true)
      return Number(this.s.deleteExpired.run(now).changes)
    })
  }

  /**
   * ★ PEER_MAX_CACHE_BYTES, under the write lock (exact): the writer's running total
   * (kept by triggers, db.ts migration 4 → 5), less its own entry this write replaces.
   * Expired entries are dropped before a refusal, so only live ones count against it.
   */
  private checkOwner (row: CacheRow, now: number): void {
    if (this.bounds.maxBytesPerOwner <= 0 || row.owner === null) return
    const over = (): { used: number } | null => {
      const used = this.ownerBytes(row.owner as string)
      const replaced = num(this.s.ownedSize.get(row.key, row.owner)?.size)
      return cacheOwnerOver(used, replaced, row.size, this.bounds.maxBytesPerOwner) ? { used } : null
    }
    if (over() === null) return
    this.s.deleteExpired.run(now)
    const still = over()
    if (still !== null) throw cacheQuotaRefusal(still.used, row.size, this.bounds.maxBytesPerOwner)
  }

  ownerBytes (owner: string): number {
    return num(this.s.ownerUsage.get(owner)?.bytes)
  }

  stats (): CacheStats {
    const r = this.s.stats.get()
    return { entries: num(r?.entries), bytes: num(r?.bytes) }
  }

  close (): void {
    this.recency.stop()
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
        this.evictions++
        if (!this.over()) return
      }
    }
  }

  private over (): boolean {
    return overBounds(this.stats(), this.bounds)
  }
}

/** A cache row as SqliteCacheStore.lookup reads it. */
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
    upsert: db.prepare(`INSERT INTO cache (key, value, size, expires_at, owner, lru) VALUES (?, ?, ?, ?, ?, ${nextLru})
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size,
      expires_at = excluded.expires_at, owner = excluded.owner, lru = excluded.lru`),
    ownerUsage: db.prepare('SELECT bytes FROM cache_owner_usage WHERE owner = ?'),
    ownedSize: db.prepare('SELECT size FROM cache WHERE key = ? AND owner = ?'),
    delete: db.prepare('DELETE FROM cache WHERE key = ?'),
    deleteExpired: db.prepare('DELETE FROM cache WHERE expires_at IS NOT NULL AND expires_at <= ?'),
    deleteExpiredKey: db.prepare('DELETE FROM cache WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?'),
    lru: db.prepare('SELECT key FROM cache WHERE key <> ? ORDER BY lru LIMIT ?'),
    stats: db.prepare('SELECT entries, bytes FROM cache_stats WHERE id = 1')
  }
}
