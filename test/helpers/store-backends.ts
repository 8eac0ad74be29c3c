/**
 * The queue store's backends for the conformance suite: each test gets a fresh store
 * behind the `TaskStore` contract, with an injectable clock. SQLite: a temporary
 * file. PostgreSQL: a fresh database on one throwaway cluster per test file
 * (test/helpers/postgres.ts), removed when the file's tests end.
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { openDatabase, QueueStore, type QueueStoreOptions, type TaskStore } from '../../src/store/index.js'
import { PgQueueStore } from '../../src/store/pg/queue.js'
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

export interface Backend {
  name: 'sqlite' | 'postgres'
  /** False (and the test skipped, or failed under CI=true) when the backend cannot run here. */
  available: (t: TestContext) => boolean
  open: (opts?: StoreOptions) => Promise<BackendFixture>
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
    shutdown: async () => {
      const c = cluster
      cluster = null
      if (c !== null) (await c.catch(() => null))?.stop()
    }
  }
}
