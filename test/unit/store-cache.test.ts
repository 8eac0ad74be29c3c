import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { openDatabase, SqliteCacheStore, QueueStore, validateCacheKey, type SqliteCacheStoreOptions } from '../../src/store/index.js'
import type { TaskQueueError } from '../../src/protocol/errors.js'

interface Fixture { dir: string, path: string, db: DatabaseSync, cache: SqliteCacheStore, clock: { t: number }, close: () => void }

function fixture (opts: Partial<SqliteCacheStoreOptions> = {}): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'tq-cache-'))
  const path = join(dir, 'cache.sqlite3')
  const db = openDatabase(path)
  const clock = { t: 1_700_000_000 }
  const cache = new SqliteCacheStore({ db, maxEntries: 1000, maxBytes: 1 << 20, maxValueBytes: 4096, now: () => clock.t, ...opts })
  return { dir, path, db, cache, clock, close: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

function code (fn: () => unknown): string {
  try { fn() } catch (err) { return (err as TaskQueueError).code }
  return 'no error'
}

test('a stored null is a hit; a missing key is a miss; values round-trip', () => {
  const f = fixture()
  try {
    assert.deepEqual(f.cache.get('nothing'), { key: 'nothing', hit: false, value: null, expires_at: null })
    assert.deepEqual(f.cache.set({ key: 'n', value: null, ttl_s: 0 }), { expires_at: null })
    assert.deepEqual(f.cache.get('n'), { key: 'n', hit: true, value: null, expires_at: null })
    assert.equal(f.cache.has('n'), true)
    assert.equal(f.cache.has('nothing'), false)
    const v = { a: [1, 2, { b: 'ü' }], c: true, d: 1.5 }
    f.cache.set({ key: 'v', value: v, ttl_s: 0 })
    assert.deepEqual(f.cache.get('v').value, v)
    f.cache.set({ key: 'v', value: 'replaced', ttl_s: 0 })
    assert.equal(f.cache.get('v').value, 'replaced')
    assert.equal(f.cache.stats().entries, 2)
  } finally { f.close() }
})

test('TTL: expiry makes a miss; delete is truthful; sweep removes expired entries', () => {
  const f = fixture()
  try {
    assert.deepEqual(f.cache.set({ key: 't', value: 1, ttl_s: 10 }), { expires_at: f.clock.t + 10 })
    f.cache.set({ key: 'forever', value: 2, ttl_s: 0 })
    f.cache.set({ key: 'neg', value: 3, ttl_s: -5 })
    assert.equal(f.cache.get('neg').expires_at, null, 'ttl <= 0 means no expiry')
    assert.equal(f.cache.get('t').expires_at, f.clock.t + 10)
    f.clock.t += 9.9
    assert.equal(f.cache.get('t').hit, true)
    f.clock.t += 0.1
    assert.equal(f.cache.get('t').hit, false)
    assert.equal(f.cache.has('t'), false)
    f.cache.set({ key: 't2', value: 1, ttl_s: 5 })
    f.clock.t += 6
    assert.equal(f.cache.delete('t2'), false, 'an expired entry was not live')
    assert.equal(f.cache.delete('forever'), true)
    assert.equal(f.cache.delete('forever'), false)
    f.cache.set({ key: 'e1', value: 1, ttl_s: 1 })
    f.cache.set({ key: 'e2', value: 1, ttl_s: 1 })
    f.clock.t += 2
    assert.equal(f.cache.sweep(), 2)
    assert.equal(f.cache.stats().entries, 1)
  } finally { f.close() }
})

test('LRU eviction by entry count: reads refresh recency, expired entries go first', () => {
  const f = fixture({ maxEntries: 3 })
  try {
    f.cache.set({ key: 'a', value: 1, ttl_s: 0 })
    f.cache.set({ key: 'b', value: 2, ttl_s: 0 })
    f.cache.set({ key: 'c', value: 3, ttl_s: 0 })
    f.cache.get('a') // b is now least recently used
    f.cache.set({ key: 'd', value: 4, ttl_s: 0 })
    assert.equal(f.cache.has('b'), false)
    assert.ok(f.cache.has('a') && f.cache.has('c') && f.cache.has('d'))
    // An expired entry is evicted before the least recently used live one.
    f.cache.set({ key: 'c', value: 3, ttl_s: 1 })
    f.clock.t += 2
    f.cache.set({ key: 'e', value: 5, ttl_s: 0 })
    assert.equal(f.cache.get('c').hit, false)
    assert.ok(f.cache.has('a') && f.cache.has('d') && f.cache.has('e'))
    assert.equal(f.cache.stats().entries, 3)
  } finally { f.close() }
})

test('LRU eviction by bytes, value_too_large, key validation', () => {
  const f = fixture({ maxBytes: 1000, maxValueBytes: 400 })
  try {
    const v = 'x'.repeat(298) // 300 bytes serialized, plus a 1-byte key
    f.cache.set({ key: 'a', value: v, ttl_s: 0 })
    f.cache.set({ key: 'b', value: v, ttl_s: 0 })
    f.cache.set({ key: 'c', value: v, ttl_s: 0 })
    assert.equal(f.cache.stats().bytes, 903)
    f.cache.get('a')
    f.cache.set({ key: 'd', value: v, ttl_s: 0 })
    assert.equal(f.cache.has('b'), false, 'least recently used evicted to fit')
    assert.ok(f.cache.stats().bytes <= 1000)
    assert.equal(code(() => f.cache.set({ key: 'big', value: 'y'.repeat(399), ttl_s: 0 })), 'value_too_large')
    assert.equal(f.cache.has('big'), false)
    assert.equal(code(() => f.cache.get('')), 'missing_key')
    assert.equal(code(() => validateCacheKey('k'.repeat(1025))), 'key_too_long')
    assert.equal(code(() => validateCacheKey('é'.repeat(513))), 'key_too_long', 'limit counts UTF-8 bytes')
    assert.equal(validateCacheKey('é'.repeat(512)), 'é'.repeat(512))
  } finally { f.close() }
})

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
