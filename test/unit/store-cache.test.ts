/**
 * The SQLite cache's own case: it shares the queue's file and survives reopening. Its
 * semantics, the same as PostgreSQL's, are in cache-conformance.test.ts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { openDatabase, SqliteCacheStore, QueueStore, type SqliteCacheStoreOptions } from '../../src/store/index.js'

interface Fixture { dir: string, path: string, db: DatabaseSync, cache: SqliteCacheStore, clock: { t: number }, close: () => void }

function fixture (opts: Partial<SqliteCacheStoreOptions> = {}): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'tq-cache-'))
  const path = join(dir, 'cache.sqlite3')
  const db = openDatabase(path)
  const clock = { t: 1_700_000_000 }
  const cache = new SqliteCacheStore({ db, maxEntries: 1000, maxBytes: 1 << 20, maxValueBytes: 4096, now: () => clock.t, ...opts })
  return { dir, path, db, cache, clock, close: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

test('cache shares a file with the queue and survives reopening', () => {
  const f = fixture()
  const q = new QueueStore({ db: f.db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
  const id = q.submit({ task_type: 't', model_name: '', payload: {}, priority: 5, max_attempts: 3, next_attempt_at: 0, idempotency_key: null }).task_id
  f.cache.set({ key: 'k', value: { kept: true }, ttl_s: 0 })
  f.cache.set({ key: 'n', value: null, ttl_s: 0 })
  f.db.close()
  const db = openDatabase(f.path)
  try {
    const cache = new SqliteCacheStore({ db, maxEntries: 10, maxBytes: 1 << 20, maxValueBytes: 4096 })
    assert.deepEqual(cache.get('k').value, { kept: true })
    assert.equal(cache.get('n').hit, true)
    assert.equal(cache.stats().entries, 2)
    assert.equal(new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false }).get(id)?.status, 'queued')
  } finally {
    db.close()
    rmSync(f.dir, { recursive: true, force: true })
  }
})
