/**
 * ONE conformance suite for the TTL cache (`CacheStore`, store/cache-store.ts), run
 * against both backends: `SqliteCacheStore` (a temporary file) and `PgCacheStore` (a
 * fresh database on a throwaway cluster, test/helpers/postgres.ts). Every case speaks
 * only the contract and awaits every call. "Another" cache is a second process on the
 * same SQLite file, or a second coordinator on the same database: what one writes, the
 * other reads, and the bounds hold across both.
 */
import { after, describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { TaskQueueError } from '../../src/protocol/errors.js'
import type { CacheStore } from '../../src/store/index.js'
import { postgresBackend, sqliteBackend, type Backend, type CacheFixture, type CacheOptions } from '../helpers/store-backends.js'

/** The typed error code `fn` fails with (SQLite throws synchronously, PostgreSQL rejects). */
async function code (fn: () => unknown): Promise<string> {
  try { await fn() } catch (err) { return err instanceof TaskQueueError ? err.code : `untyped: ${String(err)}` }
  return 'no error'
}

for (const backend of [sqliteBackend(), postgresBackend()]) {
  describe(`cache conformance: ${backend.name}`, () => {
    after(async () => { await backend.shutdown() })
    conformance(backend)
  })
}

const BOUNDS: CacheOptions = { maxEntries: 1000, maxBytes: 1 << 20, maxValueBytes: 4096 }

function conformance (backend: Backend): void {
  const withCache = (name: string, fn: (f: CacheFixture) => Promise<void>, opts: CacheOptions = {}): void => {
    test(name, async (t: TestContext) => {
      if (!backend.available(t)) return
      const f = await backend.openCache({ ...BOUNDS, ...opts })
      try { await fn(f) } finally { await f.close() }
    })
  }
  const hits = async (cache: CacheStore, keys: string[]): Promise<string[]> => {
    const out: string[] = []
    for (const k of keys) if (await cache.has(k)) out.push(k)
    return out
  }

  withCache('a stored null is a hit; a missing key is a miss; values round-trip and are replaced', async ({ cache }) => {
    assert.equal(cache.backend, backend.name)
    assert.deepEqual(await cache.get('nothing'), { key: 'nothing', hit: false, value: null, expires_at: null })
    assert.deepEqual(await cache.set({ key: 'n', value: null, ttl_s: 0 }), { expires_at: null })
    assert.deepEqual(await cache.get('n'), { key: 'n', hit: true, value: null, expires_at: null })
    assert.deepEqual(await cache.set({ key: 'u', value: undefined }), { expires_at: null })
    assert.deepEqual(await cache.get('u'), { key: 'u', hit: true, value: null, expires_at: null }, 'an absent value is stored as null')
    assert.equal(await cache.has('n'), true)
    assert.equal(await cache.has('nothing'), false)
    const v = { a: [1, 2, { b: 'ü\'"\\' }], c: true, d: 1.5, e: '' }
    await cache.set({ key: 'v', value: v })
    assert.deepEqual((await cache.get('v')).value, v)
    await cache.set({ key: 'v', value: 'replaced' })
    assert.equal((await cache.get('v')).value, 'replaced')
    assert.deepEqual(await cache.stats(), { entries: 3, bytes: 'n'.length + 4 + 'u'.length + 4 + 'v'.length + '"replaced"'.length })
  })

  withCache('TTL: expiry makes a miss (and drops the entry); delete is truthful; sweep removes expired entries', async ({ cache, clock }) => {
    assert.deepEqual(await cache.set({ key: 't', value: 1, ttl_s: 10 }), { expires_at: clock.t + 10 })
    await cache.set({ key: 'forever', value: 2, ttl_s: 0 })
    await cache.set({ key: 'neg', value: 3, ttl_s: -5 })
    await cache.set({ key: 'nan', value: 4, ttl_s: Number.NaN })
    assert.equal((await cache.get('neg')).expires_at, null, 'ttl <= 0 means no expiry')
    assert.equal((await cache.get('nan')).expires_at, null, 'a non-finite ttl means no expiry')
    assert.equal((await cache.get('t')).expires_at, clock.t + 10)
    clock.advance(9.9)
    assert.equal((await cache.get('t')).hit, true)
    assert.equal(await cache.has('t'), true)
    clock.advance(0.1)
    assert.equal(await cache.has('t'), false, 'expired at expires_at exactly')
    assert.deepEqual(await cache.get('t'), { key: 't', hit: false, value: null, expires_at: null })
    assert.equal((await cache.stats()).entries, 3, 'a get of an expired entry removes it')
    await cache.set({ key: 't2', value: 1, ttl_s: 5 })
    clock.advance(6)
    assert.equal(await cache.delete('t2'), false, 'an expired entry was not live')
    assert.equal(await cache.delete('forever'), true)
    assert.equal(await cache.delete('forever'), false)
    assert.equal(await cache.delete('never-set'), false)
    await cache.set({ key: 'e1', value: 1, ttl_s: 1 })
    await cache.set({ key: 'e2', value: 1, ttl_s: 1 })
    clock.advance(2)
    assert.equal(await cache.sweep(), 2)
    assert.equal(await cache.sweep(), 0)
    assert.deepEqual(await hits(cache, ['neg', 'nan', 'e1', 'e2', 't', 't2', 'forever']), ['neg', 'nan'])
    assert.equal((await cache.stats()).entries, 2)
  })

  withCache('LRU eviction by entry count: reads refresh recency, a probe does not, expired entries go first', async ({ cache, clock }) => {
    await cache.set({ key: 'a', value: 1 })
    await cache.set({ key: 'b', value: 2 })
    await cache.set({ key: 'c', value: 3 })
    await cache.get('a') // b is now least recently used
    await cache.has('b') // a probe is not a use
    await cache.set({ key: 'd', value: 4 })
    assert.deepEqual(await hits(cache, ['a', 'b', 'c', 'd']), ['a', 'c', 'd'])
    assert.equal(cache.evictions, 1)
    // An expired entry is evicted before the least recently used live one.
    await cache.set({ key: 'c', value: 3, ttl_s: 1 })
    clock.advance(2)
    await cache.set({ key: 'e', value: 5 })
    assert.equal((await cache.get('c')).hit, false)
    assert.deepEqual(await hits(cache, ['a', 'd', 'e']), ['a', 'd', 'e'])
    assert.equal((await cache.stats()).entries, 3)
    assert.equal(cache.evictions, 1, 'an expired entry dropped for room is not an eviction')
  }, { maxEntries: 3 })

  withCache('LRU eviction by bytes; the entry just written goes last; value_too_large and key checks', async ({ cache }) => {
    const v = 'x'.repeat(298) // 300 bytes serialized, plus a 1-byte key
    await cache.set({ key: 'a', value: v })
    await cache.set({ key: 'b', value: v })
    await cache.set({ key: 'c', value: v })
    assert.equal((await cache.stats()).bytes, 903)
    await cache.get('a')
    await cache.set({ key: 'd', value: v })
    assert.deepEqual(await hits(cache, ['a', 'b', 'c', 'd']), ['a', 'c', 'd'], 'least recently used evicted to fit')
    assert.ok((await cache.stats()).bytes <= 1000)
    assert.equal(await code(() => cache.set({ key: 'big', value: 'y'.repeat(399) })), 'value_too_large')
    assert.equal(await cache.has('big'), false)
    assert.equal((await cache.stats()).entries, 3, 'a refused write changes nothing')
    // Large values push out the least recently used until they fit.
    await cache.set({ key: 'huge', value: 'z'.repeat(398) })
    await cache.set({ key: 'huge2', value: 'z'.repeat(398) })
    await cache.set({ key: 'huge3', value: 'z'.repeat(398) })
    assert.ok((await cache.stats()).bytes <= 1000)
    assert.deepEqual(await hits(cache, ['a', 'c', 'd', 'huge', 'huge2', 'huge3']), ['huge2', 'huge3'])
    assert.equal(await code(() => cache.get('')), 'missing_key')
    assert.equal(await code(() => cache.has('')), 'missing_key')
    assert.equal(await code(() => cache.delete('')), 'missing_key')
    assert.equal(await code(() => cache.set({ key: 'k'.repeat(1025), value: 1 })), 'key_too_long')
    assert.equal(await code(() => cache.get('é'.repeat(513))), 'key_too_long', 'the limit counts UTF-8 bytes')
    await cache.set({ key: 'é'.repeat(512), value: 1 })
    assert.equal((await cache.get('é'.repeat(512))).hit, true)
  }, { maxBytes: 1000, maxValueBytes: 400 })

  withCache('a value over the byte bound on its own is kept alone', async ({ cache }) => {
    await cache.set({ key: 'a', value: 1 })
    await cache.set({ key: 'big', value: 'y'.repeat(200) })
    assert.deepEqual(await hits(cache, ['a', 'big']), ['big'])
    assert.deepEqual(await cache.stats(), { entries: 1, bytes: 3 + 202 })
  }, { maxBytes: 100, maxValueBytes: 400 })

  withCache('one cache through two processes or coordinators: writes, deletes, expiry and recency are shared', async ({ cache: a, another, clock }) => {
    const b = await another()
    await a.set({ key: 'k', value: { from: 'a' }, ttl_s: 30 })
    assert.deepEqual(await b.get('k'), { key: 'k', hit: true, value: { from: 'a' }, expires_at: clock.t + 30 })
    await b.set({ key: 'k', value: { from: 'b' } })
    assert.deepEqual(await a.get('k'), { key: 'k', hit: true, value: { from: 'b' }, expires_at: null })
    assert.equal(await b.delete('k'), true)
    assert.equal(await a.has('k'), false)
    assert.equal(await a.delete('k'), false)
    await b.set({ key: 'short', value: 1, ttl_s: 5 })
    clock.advance(5)
    assert.equal((await a.get('short')).hit, false)
    // Bounds are the storage's, not one store's: b's reads, once written, protect a key
    // from a's eviction.
    await a.set({ key: 'x', value: 1 })
    await a.set({ key: 'y', value: 2 })
    await a.set({ key: 'z', value: 3 })
    assert.equal((await b.get('x')).hit, true)
    await b.flushTouches()
    await a.set({ key: 'w', value: 4 })
    assert.deepEqual(await hits(b, ['w', 'x', 'y', 'z']), ['w', 'x', 'z'])
    assert.deepEqual(await a.stats(), await b.stats())
    assert.equal((await b.stats()).entries, 3)
  }, { maxEntries: 3 })

  withCache('writers on two stores at once keep the bounds and the totals exact', async ({ cache: a, another }) => {
    const b = await another()
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`)
    await Promise.all(keys.map(async (key, i) => {
      const store = i % 2 === 0 ? a : b
      await store.set({ key, value: 'v'.repeat(i) })
      if (i % 7 === 0) await store.get(keys[i >> 1])
      if (i % 11 === 0) await store.delete(keys[i >> 2])
    }))
    await Promise.all([a.flushTouches(), b.flushTouches()])
    const live = await hits(a, keys)
    const stats = await a.stats()
    assert.ok(stats.entries <= 20, `entries ${stats.entries} > 20`)
    assert.equal(stats.entries, live.length, 'the entry total matches the live entries')
    const bytes = live.reduce((sum, key) => sum + key.length + JSON.stringify('v'.repeat(Number(key.slice(1)))).length, 0)
    assert.equal(stats.bytes, bytes, 'the byte total matches the live entries')
  }, { maxEntries: 20 })

  // ★ PEER_MAX_CACHE_BYTES (README "Security"): each entry belongs to its last writer.
  withCache('per-writer bytes: a typed refusal that stores nothing; replacing, another writer, delete and expiry free room; local writes exempt', async ({ cache, clock, another }) => {
    const A = 'peer-a'
    const size = (key: string, value: unknown): number => Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(value))
    const x = (n: number): string => 'x'.repeat(n)
    const refusal = async (fn: () => unknown): Promise<{ code: string, limit: unknown, retryable: boolean }> => {
      try { await fn() } catch (err) {
        if (err instanceof TaskQueueError) return { code: err.code, limit: err.extra?.limit, retryable: err.retryable }
        throw err
      }
      return { code: 'no error', limit: undefined, retryable: false }
    }
    await cache.set({ key: 'a1', value: x(40), owner: A })
    await cache.set({ key: 'a2', value: x(40), owner: A })
    assert.equal(await cache.ownerBytes(A), 2 * size('a1', x(40)))
    assert.deepEqual(await refusal(() => cache.set({ key: 'a3', value: x(20), owner: A })), { code: 'rate_limited', limit: 'PEER_MAX_CACHE_BYTES', retryable: true })
    assert.equal(await cache.has('a3'), false, 'nothing stored')
    assert.equal((await cache.stats()).entries, 2)
    // Replacing one's own entry counts only the difference.
    await cache.set({ key: 'a1', value: x(50), owner: A })
    assert.equal(await cache.ownerBytes(A), size('a1', x(50)) + size('a2', x(40)))
    // Local writes are exempt.
    await cache.set({ key: 'local', value: x(500) })
    assert.equal(await cache.ownerBytes(A), size('a1', x(50)) + size('a2', x(40)))
    // Another writer's write moves the entry's bytes to it.
    await cache.set({ key: 'a2', value: x(40), owner: 'peer-b' })
    assert.equal(await cache.ownerBytes(A), size('a1', x(50)))
    assert.equal(await cache.ownerBytes('peer-b'), size('a2', x(40)))
    assert.equal(await cache.delete('a1'), true)
    assert.equal(await cache.ownerBytes(A), 0)
    // Expired entries are dropped before a refusal: only live ones count.
    await cache.set({ key: 'e', value: x(90), ttl_s: 5, owner: A })
    assert.equal((await refusal(() => cache.set({ key: 'f', value: x(20), owner: A }))).limit, 'PEER_MAX_CACHE_BYTES')
    clock.advance(5)
    await cache.set({ key: 'f', value: x(20), owner: A })
    assert.equal(await cache.ownerBytes(A), size('f', x(20)))
    // A value over the bound on its own is refused outright.
    assert.equal((await refusal(() => cache.set({ key: 'g', value: x(200), owner: 'peer-c' }))).limit, 'PEER_MAX_CACHE_BYTES')
    // The totals are the storage's: another process or coordinator sees them.
    const b = await another()
    assert.equal(await b.ownerBytes(A), size('f', x(20)))
    assert.equal((await refusal(() => b.set({ key: 'h', value: x(90), owner: A }))).limit, 'PEER_MAX_CACHE_BYTES')
  }, { maxBytesPerOwner: 100 })

  withCache('per-writer bytes: the global LRU eviction frees a writer\'s room; 0 = no bound', async ({ cache }) => {
    await cache.set({ key: 'k1', value: 'x'.repeat(300), owner: 'peer-a' })
    await cache.set({ key: 'k2', value: 'x'.repeat(300), owner: 'peer-a' })
    await cache.set({ key: 'k3', value: 1 })
    assert.equal(await cache.has('k1'), false, 'evicted as least recently used')
    assert.equal(await cache.ownerBytes('peer-a'), 2 + 302)
  }, { maxEntries: 2, maxBytesPerOwner: 0 })
}
