/**
 * The TTL cache (cache-store.ts) in the queue's PostgreSQL database (schema 4: tq_cache,
 * tq_cache_stats), so every coordinator of one queue serves the same cache: an entry set
 * through one is read, refreshed, evicted or deleted through any other.
 *
 * - Totals live in one row kept by a trigger; every writing statement takes that row's
 *   lock first (before any cache row's), so writers on all coordinators serialize there,
 *   the bounds hold across coordinators, and no two writers wait on each other in
 *   opposite orders. Reads take no lock.
 * - Recency is a sequence value (one sequence, strictly increasing across coordinators).
 *   Hits are batched as on SQLite (CacheRecency) and written by one statement that skips
 *   rows another transaction holds: a recency write never waits, so never deadlocks.
 * - Times are the store's clock (epoch seconds), as for the queue's rows.
 *
 * Uses the queue store's pool; the schema is the queue store's (PgQueueStore.open migrates).
 */
import type pg from 'pg'
import type { StoreBackend } from '../task-store.js'
import type { CacheEntry } from '../types.js'
import { parseJson } from '../queue-util.js'
import {
  CacheRecency, cacheBounds, cacheMiss, cacheOwnerOver, cacheQuotaRefusal, cacheRowOf, overBounds, validateCacheKey,
  type CacheBounds, type CacheRow, type CacheSetInput, type CacheSetResult, type CacheStats, type CacheStore
} from '../cache-store.js'
import { storeError } from './store-error.js'
import type { Db } from './admin.js'

export interface PgCacheStoreOptions extends CacheBounds {
  /** The queue store's pool (PgQueueStore.pool), on a migrated database. */
  pool: pg.Pool
}

/** Batch size of the LRU eviction scan. */
const EVICT_BATCH = 64

/** The totals row, locked: the first thing every cache write takes. */
const LOCKED_TOTALS = '(SELECT 1 FROM tq_cache_stats WHERE id = 1 FOR UPDATE) AS totals'

const SQL = {
  lookup: 'SELECT value, expires_at FROM tq_cache WHERE key = $1',
  expiry: 'SELECT expires_at FROM tq_cache WHERE key = $1',
  upsert: `INSERT INTO tq_cache (key, value, size, expires_at, owner, lru)
    SELECT $1, $2, $3, $4, $5, nextval('tq_cache_lru_seq') FROM ${LOCKED_TOTALS}
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, size = EXCLUDED.size,
      expires_at = EXCLUDED.expires_at, owner = EXCLUDED.owner, lru = EXCLUDED.lru`,
  // ★ PEER_MAX_CACHE_BYTES: the totals lock first (as every write), then the writer's
  // total and the size of its own entry this write replaces.
  ownerCheck: `SELECT (SELECT bytes FROM tq_cache_owner_usage WHERE owner = $1) AS used,
      (SELECT size FROM tq_cache WHERE key = $2 AND owner = $1) AS replaced
    FROM tq_cache_stats WHERE id = 1 FOR UPDATE`,
  ownerUsage: 'SELECT bytes FROM tq_cache_owner_usage WHERE owner = $1',
  delete: `DELETE FROM tq_cache c USING ${LOCKED_TOTALS} WHERE c.key = $1 RETURNING c.expires_at`,
  deleteExpiredKey: `DELETE FROM tq_cache c USING ${LOCKED_TOTALS}
    WHERE c.key = $1 AND c.expires_at IS NOT NULL AND c.expires_at <= $2`,
  deleteExpired: `DELETE FROM tq_cache c USING ${LOCKED_TOTALS} WHERE c.expires_at IS NOT NULL AND c.expires_at <= $1`,
  lru: 'SELECT key, size FROM tq_cache WHERE key <> $1 ORDER BY lru LIMIT $2',
  deleteKeys: 'DELETE FROM tq_cache WHERE key = ANY($1::text[])',
  stats: 'SELECT entries, bytes FROM tq_cache_stats WHERE id = 1',
  // New recency in the batch's order (the sorted subquery numbers rows in order), for
  // the rows nobody else holds right now.
  touch: `WITH touched AS MATERIALIZED (
      SELECT u.key, nextval('tq_cache_lru_seq') AS lru
      FROM (SELECT key, ord FROM unnest($1::text[]) WITH ORDINALITY AS t(key, ord) ORDER BY ord) AS u
    )
    UPDATE tq_cache c SET lru = touched.lru FROM touched
    WHERE c.key = touched.key
      AND c.key IN (SELECT key FROM tq_cache WHERE key = ANY($1::text[]) FOR UPDATE SKIP LOCKED)`
}

export class PgCacheStore implements CacheStore {
  readonly backend: StoreBackend = 'postgres'
  readonly pool: pg.Pool
  readonly bounds: Required<CacheBounds>
  /** Entries this coordinator evicted for room since it opened (metrics). */
  evictions = 0
  private readonly recency = new CacheRecency(async () => { await this.flushTouches() })

  constructor (opts: PgCacheStoreOptions) {
    this.pool = opts.pool
    this.bounds = cacheBounds(opts)
  }

  async get (key: string): Promise<CacheEntry> {
    validateCacheKey(key)
    const now = this.bounds.now()
    const r = await this.read<{ value: string, expires_at: number | null }>(SQL.lookup, [key])
    const row = r.rows[0]
    if (row === undefined) return cacheMiss(key)
    if (expired(row.expires_at, now)) {
      // Re-checked under the lock: another coordinator may have just rewritten it.
      await this.read(SQL.deleteExpiredKey, [key, now])
      return cacheMiss(key)
    }
    this.recency.touch(key)
    return { key, hit: true, value: parseJson(row.value), expires_at: row.expires_at }
  }

  async has (key: string): Promise<boolean> {
    validateCacheKey(key)
    const r = await this.read<{ expires_at: number | null }>(SQL.expiry, [key])
    const row = r.rows[0]
    return row !== undefined && !expired(row.expires_at, this.bounds.now())
  }

  async set (input: CacheSetInput): Promise<CacheSetResult> {
    const now = this.bounds.now()
    const row = cacheRowOf(input, now, this.bounds.maxValueBytes)
    this.recency.forget(row.key)
    // Our own reads count before we evict (on SQLite they are flushed inside the write).
    await this.flushTouches().catch(() => {})
    await this.tx(async (c) => {
      if (row.owner !== null && this.bounds.maxBytesPerOwner > 0) await this.checkOwner(c, row, now)
      await c.query(SQL.upsert, [row.key, row.text, row.size, row.expiresAt, row.owner])
      await this.evict(c, now, row.key)
    })
    return { expires_at: row.expiresAt }
  }

  async delete (key: string): Promise<boolean> {
    validateCacheKey(key)
    const now = this.bounds.now()
    this.recency.forget(key)
    const r = await this.read<{ expires_at: number | null }>(SQL.delete, [key])
    const row = r.rows[0]
    return row !== undefined && !expired(row.expires_at, now)
  }

  async sweep (): Promise<number> {
    const now = this.bounds.now()
    await this.flushTouches().catch(() => {})
    return (await this.read(SQL.deleteExpired, [now])).rowCount ?? 0
  }

  /**
   * ★ PEER_MAX_CACHE_BYTES, under the totals lock every cache write takes first, so it
   * is exact across coordinators. Expired entries are dropped before a refusal.
   */
  private async checkOwner (c: Db, row: CacheRow, now: number): Promise<void> {
    const over = async (): Promise<number | null> => {
      const r = (await c.query<{ used: string | null, replaced: string | null }>(SQL.ownerCheck, [row.owner, row.key])).rows[0]
      const used = Number(r?.used ?? 0)
      return cacheOwnerOver(used, Number(r?.replaced ?? 0), row.size, this.bounds.maxBytesPerOwner) ? used : null
    }
    if (await over() === null) return
    await c.query(SQL.deleteExpired, [now])
    const used = await over()
    if (used !== null) throw cacheQuotaRefusal(used, row.size, this.bounds.maxBytesPerOwner)
  }

  async ownerBytes (owner: string): Promise<number> {
    return Number((await this.read<{ bytes: string }>(SQL.ownerUsage, [owner])).rows[0]?.bytes ?? 0)
  }

  async stats (): Promise<CacheStats> {
    return statsOf(await this.read(SQL.stats, []))
  }

  async flushTouches (): Promise<void> {
    if (this.recency.size === 0) return
    await this.read(SQL.touch, [this.recency.take()])
  }

  async close (): Promise<void> {
    this.recency.stop()
    await this.flushTouches().catch(() => {})
  }

  /** Expired entries go first, then least recently used; `keep` (just written) goes last. */
  private async evict (c: Db, now: number, keep: string): Promise<void> {
    let totals = statsOf(await c.query(SQL.stats))
    if (!overBounds(totals, this.bounds)) return
    await c.query(SQL.deleteExpired, [now])
    totals = statsOf(await c.query(SQL.stats))
    while (overBounds(totals, this.bounds)) {
      const victims = (await c.query<{ key: string, size: string }>(SQL.lru, [keep, EVICT_BATCH])).rows
      if (victims.length === 0) return // only `keep` left: a value larger than maxBytes
      const gone: string[] = []
      for (const v of victims) {
        gone.push(v.key)
        totals = { entries: totals.entries - 1, bytes: totals.bytes - Number(v.size) }
        if (!overBounds(totals, this.bounds)) break
      }
      // Nobody else deletes meanwhile: every cache write waits for the totals lock we hold.
      await c.query(SQL.deleteKeys, [gone])
      this.evictions += gone.length
    }
  }

  private async read<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params)
    } catch (err) {
      throw storeError(err)
    }
  }

  private async tx (fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
    let c: pg.PoolClient
    try {
      c = await this.pool.connect()
    } catch (err) {
      throw storeError(err)
    }
    try {
      await c.query('BEGIN')
      await fn(c)
      await c.query('COMMIT')
    } catch (err) {
      const rolledBack = await c.query('ROLLBACK').then(() => true, () => false)
      // A connection that cannot even roll back is broken: the pool drops it.
      c.release(rolledBack ? undefined : true)
      throw storeError(err)
    }
    c.release()
  }
}

function expired (expiresAt: number | null, now: number): boolean {
  return expiresAt !== null && expiresAt <= now
}

function statsOf (r: pg.QueryResult): CacheStats {
  const row = r.rows[0] as { entries?: unknown, bytes?: unknown } | undefined
  return { entries: Number(row?.entries ?? 0), bytes: Number(row?.bytes ?? 0) }
}
