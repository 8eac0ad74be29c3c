/**
 * The queue store's backends for the conformance suite: each test gets a fresh store
 * behind the `TaskStore` contract, with an injectable clock. SQLite: a temporary
 * file. PostgreSQL: a fresh database on one throwaway cluster per test file
 * (test/helpers/postgres.ts), removed when the file's tests end. The cache (`CacheStore`)
 * the same way: SQLite in a temporary file, PostgreSQL in the queue's fresh database.
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { openDatabase, QueueStore, SqliteCacheStore, type CacheBounds, type CacheStore, type QueueStoreOptions, type TaskStore } from '../../src/store/index.js'
import { PgQueueStore } from '../../src/store/pg/queue.js'
import { PgCacheStore } from '../../src/store/pg/cache.js'
import { Clock, tmpDir } from './store-fixture.js'
import { requirePostgres, startPostgres, type PgCluster } from './postgres.js'

export type StoreOptions = Partial<Omit<QueueStoreOptions, 'db'>>

export interface BackendFixture {
  q: TaskStore
  clock: Clock
  /** Another store on the same queue (another process or coordinator); null where the backend has none. */
  another: () => Promise<TaskStore>
  close: () => Promise<void>
}

export interface CacheFixture {
  cache: CacheStore
  clock: Clock
  /** Another cache on the same storage (another process or coordinator), with the same bounds and clock. */
  another: () => Promise<CacheStore>
  close: () => Promise<void>
}

export type CacheOptions = Omit<CacheBounds, 'now'>

export interface Backend {
  name: 'sqlite' | 'postgres'
  /** False (and the test skipped, or failed under CI=true) when the backend cannot run here. */
  available: (t: TestContext) => boolean
  open: (opts?: StoreOptions) => Promise<BackendFixture>
  /** A fresh, empty cache of this backend. */
  openCache: (opts?: CacheOptions) => Promise<CacheFixture>
  /** After every test of the file. */
  shutdown: () => Promise<void>
}

const BASE = { leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false }

export function sqliteBackend (): Backend {
  return {
    name: 'sqlite',
    available: () => true,
    open: async (opts = {}) => {
      const dir = tmpDir()
      const path = join(dir, 'queue.sqlite3')
      const clock = new Clock()
      const dbs = [openDatabase(path)]
      const q = new QueueStore({ db: dbs[0], ...BASE, now: clock.now, ...opts })
      return {
        q,
        clock,
        another: async () => {
          const db = openDatabase(path)
          dbs.push(db)
          return new QueueStore({ db, ...BASE, now: clock.now, ...opts })
        },
        close: async () => {
          for (const db of dbs) db.close()
          rmSync(dir, { recursive: true, force: true })
        }
      }
    },
    openCache: async (opts = {}) => {
      const dir = tmpDir()
      const path = join(dir, 'cache.sqlite3')
      const clock = new Clock()
      const caches: SqliteCacheStore[] = []
      const make = (): SqliteCacheStore => {
        const cache = new SqliteCacheStore({ db: openDatabase(path), ...opts, now: clock.now })
        caches.push(cache)
        return cache
      }
      return {
        cache: make(),
        clock,
        another: async () => make(),
        close: async () => {
          for (const c of caches) {
            c.close()
            c.db.close()
          }
          rmSync(dir, { recursive: true, force: true })
        }
      }
    },
    shutdown: async () => {}
  }
}

export function postgresBackend (): Backend {
  let cluster: Promise<PgCluster> | null = null
  return {
    name: 'postgres',
    available: (t) => requirePostgres(t),
    open: async (opts = {}) => {
      cluster ??= startPostgres()
      const url = (await cluster).createDatabase()
      const clock = new Clock()
      const stores: PgQueueStore[] = []
      const make = async (): Promise<PgQueueStore> => {
        const st = await PgQueueStore.open({ url, ...BASE, now: clock.now, poolSize: 4, ...opts })
        stores.push(st)
        return st
      }
      const q = await make()
      return {
        q,
        clock,
        another: make,
        close: async () => { for (const st of stores) await st.close() }
      }
    },
    openCache: async (opts = {}) => {
      cluster ??= startPostgres()
      const url = (await cluster).createDatabase()
      const clock = new Clock()
      const stores: Array<{ queue: PgQueueStore, cache: PgCacheStore }> = []
      const make = async (): Promise<PgCacheStore> => {
        // The queue store migrates the database and owns the pool the cache uses.
        const queue = await PgQueueStore.open({ url, ...BASE, now: clock.now, poolSize: 4 })
        const cache = new PgCacheStore({ pool: queue.pool, ...opts, now: clock.now })
        stores.push({ queue, cache })
        return cache
      }
      return {
        cache: await make(),
        clock,
        another: make,
        close: async () => {
          for (const st of stores) {
            await st.cache.close()
            await st.queue.close()
          }
        }
      }
    },
    shutdown: async () => {
      const c = cluster
      cluster = null
      if (c !== null) (await c.catch(() => null))?.stop()
    }
  }
}
