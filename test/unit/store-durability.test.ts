/** Durability, locking, checkpointing and a printed performance sanity check of the queue store. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import {
  openDatabase, QueueStore, SCHEMA_VERSION
} from '../../src/store/index.js'
import type { TaskQueueError } from '../../src/protocol/errors.js'
import { claimIn, fixture, sub, tmpDir } from '../helpers/store-fixture.js'
import { Checkpointer } from '../../src/store/checkpointer.js'


test('durability: data survives closing and reopening the file', () => {
  const f = fixture()
  const id = f.q.submit(sub({ payload: { keep: 'me' }, idempotency_key: 'dur' })).task_id
  f.q.claim(claimIn('w'))
  f.q.complete({ task_id: id, status: 'completed', result: { ok: 1 }, error: '', worker_id: 'w' })
  const queued = f.q.submit(sub()).task_id
  f.db.close()
  const db = openDatabase(f.path)
  try {
    const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
    assert.equal(q.get(id)?.status, 'completed')
    assert.deepEqual(q.get(id)?.result, { ok: 1 })
    assert.deepEqual(q.get(id)?.payload, { keep: 'me' })
    assert.equal(q.submit(sub({ payload: { keep: 'me' }, idempotency_key: 'dur' })).replayed, true)
    assert.equal(q.claim(claimIn('w'))[0].task_id, queued)
    assert.equal(Number(db.prepare('PRAGMA user_version').get()?.user_version), SCHEMA_VERSION)
    assert.equal(String(db.prepare('PRAGMA journal_mode').get()?.journal_mode), 'wal')
  } finally {
    db.close()
    rmSync(f.dir, { recursive: true, force: true })
  }
})

test('durability: commits survive kill -9 of the writing process', () => {
  const dir = tmpDir()
  try {
    const path = join(dir, 'q.sqlite3')
    const storeUrl = new URL('../../src/store/index.js', import.meta.url).href
    const script = `
      const { openDatabase, QueueStore } = await import(${JSON.stringify(storeUrl)})
      const q = new QueueStore({ db: openDatabase(${JSON.stringify(path)}), leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
      const ids = []
      for (let i = 0; i < 50; i++) ids.push(q.submit({ task_type: 't', model_name: '', payload: { i }, priority: 5, max_attempts: 3, next_attempt_at: 0, idempotency_key: 'k' + i }).task_id)
      q.claim({ worker_id: 'w', peer_key: 'w', session: '', task_types: null, lease_s: 60, max_tasks: 10, same_task_type: false, transport_peer_id: '', peer_hint: '' })
      process.stdout.write(JSON.stringify(ids), () => process.kill(process.pid, 'SIGKILL'))
    `
    const child = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { encoding: 'utf8' })
    assert.equal(child.signal, 'SIGKILL', child.stderr)
    const ids = JSON.parse(child.stdout) as string[]
    assert.ok(statSync(path + '-wal').size > 0, 'the commits are still in the WAL, not checkpointed')
    const db = openDatabase(path)
    try {
      const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
      for (const id of ids) assert.ok(q.get(id) !== null)
      assert.deepEqual(q.counts().queued + q.counts().running, 50)
      assert.equal(q.counts().running, 10)
    } finally { db.close() }
  } finally { rmSync(dir, { recursive: true, force: true }) }
})

test('migration 1 → current: a schema-1 file keeps its tasks and lists finished ones through the new index', () => {
  const f = fixture()
  const done = f.q.submit(sub({ payload: { n: 1 } })).task_id
  f.q.claim(claimIn('w'))
  f.q.complete({ task_id: done, status: 'failed', result: null, error: 'boom', worker_id: 'w' })
  const queued = f.q.submit(sub({ payload: { n: 2 } })).task_id
  f.db.close()
  // Put the file back to schema 1 as a previous release left it.
  const raw = new DatabaseSync(f.path)
  raw.exec(`DROP TRIGGER trg_counts_ins; DROP TRIGGER trg_counts_move; DROP TRIGGER trg_counts_del; DROP TABLE task_counts;
    DROP TRIGGER trg_cache_owner_ins; DROP TRIGGER trg_cache_owner_del; DROP TRIGGER trg_cache_owner_upd_old;
    DROP TRIGGER trg_cache_owner_upd_new; DROP TABLE cache_owner_usage; ALTER TABLE cache DROP COLUMN owner;
    DROP TRIGGER trg_usage_ins; DROP TRIGGER trg_usage_reopen; DROP TRIGGER trg_usage_finish; DROP TRIGGER trg_usage_del;
    DROP TABLE submitter_usage; ALTER TABLE tasks DROP COLUMN submitter; ALTER TABLE tasks DROP COLUMN payload_bytes;
    DROP INDEX idx_tasks_done;
    CREATE INDEX idx_tasks_done ON tasks (status) WHERE status IN ('completed', 'failed', 'cancelled');
    DROP INDEX idx_tasks_expires;
    DROP TABLE queue_pauses; DROP TABLE queue_meta; DROP TABLE task_events;
    ALTER TABLE tasks DROP COLUMN errors; ALTER TABLE tasks DROP COLUMN backoff;
    ALTER TABLE tasks DROP COLUMN keep_s; ALTER TABLE tasks DROP COLUMN expires_at;
    PRAGMA user_version = 1`)
  raw.close()
  const db = openDatabase(f.path)
  try {
    assert.equal(Number(db.prepare('PRAGMA user_version').get()?.user_version), SCHEMA_VERSION)
    const sql = String(db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'idx_tasks_done'").get()?.sql)
    assert.doesNotMatch(sql, / IN /, 'the partial index condition has no IN list')
    const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
    assert.deepEqual(q.list({ status: 'failed', limit: 10, task_types: null, cursor: null, order: 'asc', max_bytes: 1 << 20 }).tasks.map((t) => t.task_id), [done])
    assert.deepEqual(q.list({ status: 'queued', limit: 10, task_types: null, cursor: null, order: 'asc', max_bytes: 1 << 20 }).tasks.map((t) => t.task_id), [queued])
    const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT * FROM tasks INDEXED BY idx_tasks_done
      WHERE status <> 'queued' AND status <> 'running' AND status = 'completed'`).all().map((r) => String(r.detail)).join(' ')
    assert.match(plan, /idx_tasks_done/)
    // Migration 3 → 4: tasks from before it have no submitter and count against nobody.
    const bounded = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false, submitterLimits: { maxTasks: 1, maxBytes: 0 } })
    bounded.submit(sub({ submitter: 'peer-a' }))
    assert.deepEqual(bounded.submitterUsage('peer-a'), { tasks: 1, bytes: 2 })
    // Migration 5 → 6: the queued counts start from the tasks the file had.
    assert.deepEqual(q.counts().queued_by_type, { 'text-generation': 2 })
  } finally {
    db.close()
    rmSync(f.dir, { recursive: true, force: true })
  }
})

test('lock contention beyond busy_timeout is the retryable busy code', () => {
  const dir = tmpDir()
  try {
    const path = join(dir, 'q.sqlite3')
    const db = openDatabase(path, { busyTimeoutMs: 20 })
    const other = openDatabase(path)
    try {
      const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
      other.exec('BEGIN IMMEDIATE')
      let err: TaskQueueError | null = null
      try { q.submit(sub()) } catch (e) { err = e as TaskQueueError }
      assert.equal(err?.code, 'busy')
      assert.equal(err?.retryable, true)
      other.exec('ROLLBACK')
      assert.equal(q.submit(sub()).replayed, false)
    } finally { other.close(); db.close() }
  } finally { rmSync(dir, { recursive: true, force: true }) }
})

test('background checkpointer keeps data intact and checkpoints the WAL', async () => {
  const dir = tmpDir()
  try {
    const path = join(dir, 'q.sqlite3')
    const db = openDatabase(path, { walAutocheckpointPages: 100_000 })
    const cp = new Checkpointer(path, { intervalMs: 20 })
    cp.start()
    const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
    for (let i = 0; i < 300; i++) q.submit(sub({ payload: { i } }))
    await new Promise(resolve => setTimeout(resolve, 200))
    await cp.stop()
    // Everything in the WAL was copied back: a TRUNCATE checkpoint finds nothing left to do.
    const r = db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get()
    assert.equal(Number(r?.log), Number(r?.checkpointed))
    assert.equal(q.counts().queued, 300)
    db.close()
  } finally { rmSync(dir, { recursive: true, force: true }) }
})

test('sustained writes hand checkpoints to a thread, which ends once writers are quiet', async () => {
  const dir = tmpDir()
  try {
    const path = join(dir, 'q.sqlite3')
    const db = openDatabase(path, { walAutocheckpointPages: 100_000 })
    const cp = new Checkpointer(path, { intervalMs: 10, idleMs: 30, maxDelayMs: 60, threadIdleMs: 80 })
    cp.start()
    const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
    const until = async (cond: () => boolean): Promise<boolean> => {
      for (const end = Date.now() + 10_000; Date.now() < end;) {
        if (cond()) return true
        await new Promise(resolve => setTimeout(resolve, 2))
      }
      return cond()
    }
    let i = 0
    // Writers that never pause long enough for an inline checkpoint.
    const busy = await until(() => { q.submit(sub({ payload: { i: i++ } })); return cp.threadRunning })
    assert.equal(busy, true, 'the thread took over under sustained writes')
    assert.equal(await until(() => !cp.threadRunning), true, 'the thread ended after writers went quiet')
    await cp.stop()
    const r = db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get()
    assert.equal(Number(r?.log), Number(r?.checkpointed))
    assert.equal(q.counts().queued, i)
    db.close()
  } finally { rmSync(dir, { recursive: true, force: true }) }
})

test('openDatabase refuses a non-SQLite file and creates parent directories', () => {
  const dir = tmpDir()
  try {
    const bogus = join(dir, 'notes.txt')
    writeFileSync(bogus, 'this is not a database, just some text that is long enough')
    assert.throws(() => openDatabase(bogus), (err: Error) => err.message.includes(bogus) && /not a SQLite database/.test(err.message))
    const nested = join(dir, 'a', 'b', 'q.sqlite3')
    openDatabase(nested).close()
    openDatabase(nested).close()
  } finally { rmSync(dir, { recursive: true, force: true }) }
})

const rate = (k: number, ms: number): string => `${Math.round(k / (ms / 1000))}/s`

/** submit n (with idempotency keys, as our client sends) → claim 32 at a time → complete each. */
function endToEnd (q: QueueStore, n: number, label: string): void {
  let t0 = performance.now()
  for (let i = 0; i < n; i++) q.submit(sub({ payload: { prompt: `hello ${i}`, n: i }, idempotency_key: `auto-${label}-${i}` }))
  const tSubmit = performance.now() - t0
  t0 = performance.now()
  let claimed = 0
  let tComplete = 0
  for (;;) {
    const batch = q.claim(claimIn('w', { max_tasks: 32 }))
    if (batch.length === 0) break
    claimed += batch.length
    const c0 = performance.now()
    for (const t of batch) q.complete({ task_id: t.task_id, status: 'completed', result: { text: 'ok' }, error: '', worker_id: 'w' })
    tComplete += performance.now() - c0
  }
  const tAll = performance.now() - t0
  assert.equal(claimed, n)
  console.log(`[store perf] ${label}: ${n} submits ${rate(n, tSubmit)}; claim ${rate(n, tAll - tComplete)}; complete ${rate(n, tComplete)}; end-to-end ${rate(n, tSubmit + tAll)} tasks/s`)
}

test('perf sanity: submit + claim(32) + complete (printed, not asserted)', async () => {
  const f = fixture()
  try {
    const n = 20_000
    endToEnd(f.q, n, 'inline checkpoints')
    const path2 = join(f.dir, 'bg.sqlite3')
    const db2 = openDatabase(path2, { walAutocheckpointPages: 16384 })
    const cp = new Checkpointer(path2)
    cp.start()
    try {
      endToEnd(new QueueStore({ db: db2, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false, now: f.clock.now }), n, 'background checkpointer')
    } finally {
      await cp.stop()
      db2.close()
    }
    let t0: number

    // Claims with a large backlog: 100k queued, claim 32 at a time from the front.
    const big = 100_000
    // Bulk-load the backlog in one transaction (submit() one by one would take ~15 s).
    const ins = f.db.prepare(`INSERT INTO tasks (task_id, task_type, type_norm, model_name, payload, status,
      created_at, updated_at, priority, max_attempts) VALUES (?, 'text-generation', 'text-generation', 'm', ?,
      'queued', ?, ?, 5, 3)`)
    f.db.exec('BEGIN')
    for (let i = 0; i < big; i++) ins.run(randomUUID().replaceAll('-', ''), JSON.stringify({ i }), f.clock.t + i * 1e-6, f.clock.t)
    f.db.exec('COMMIT')
    t0 = performance.now()
    let k = 0
    for (let i = 0; i < 200; i++) k += f.q.claim(claimIn('w', { max_tasks: 32 })).length
    console.log(`[store perf] backlog ${big}: ${rate(k, performance.now() - t0)} claimed (claim 32)`)
    t0 = performance.now()
    for (let i = 0; i < 200; i++) f.q.claim(claimIn('w', { max_tasks: 32, task_types: ['nothing-like-this'] }))
    console.log(`[store perf] backlog ${big}: type-filtered empty claim ${((performance.now() - t0) / 200).toFixed(3)} ms`)
    // Deterministic scheduler with 8 live workers: each claim walks past other owners' tasks.
    const det = new QueueStore({ db: f.db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: true, now: f.clock.now })
    for (let i = 0; i < 8; i++) det.touchPeer({ peer_id: `peer${i}`, worker_id: `w${i}` })
    t0 = performance.now()
    k = 0
    for (let i = 0; i < 400; i++) k += det.claim(claimIn(`w${i % 8}`, { peer_key: `peer${i % 8}`, max_tasks: 32 })).length
    console.log(`[store perf] backlog ${big}, deterministic, 8 workers taking turns: ${rate(k, performance.now() - t0)} claimed (claim 32)`)
    t0 = performance.now()
    k = 0
    for (let i = 0; i < 50; i++) k += det.claim(claimIn('w0', { peer_key: 'peer0', max_tasks: 32 })).length
    console.log(`[store perf] same, but 7 of the 8 live workers idle: ${((performance.now() - t0) / 50).toFixed(1)} ms per claim (walks 1000 tasks owned by others)`)
    t0 = performance.now()
    f.q.counts()
    console.log(`[store perf] counts() over ${big} queued: ${(performance.now() - t0).toFixed(1)} ms`)
  } finally { f.close() }
})
