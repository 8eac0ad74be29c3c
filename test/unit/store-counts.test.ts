/**
 * The counts of status detail, /metrics and the dashboard are kept by triggers (db.ts
 * migration 5 → 6) instead of counted per call; these tests hold them to a count of the
 * table after every kind of transition, and through the migration of a file that
 * already has a queue. Also the oldest waiting task's age, read through the claim index.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import { rmSync } from 'node:fs'
import { fixture, sub, claimIn, tmpDir, type Fixture } from '../helpers/store-fixture.js'
import { openDatabase, QueueStore } from '../../src/store/index.js'

/** queued_by_type as a scan of the table says it. */
function truth (f: Pick<Fixture, 'db'>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of f.db.prepare("SELECT task_type, count(*) AS n FROM tasks WHERE status = 'queued' GROUP BY task_type").all()) {
    out[String(r.task_type)] = Number(r.n)
  }
  return out
}

/** Every (status, type) count as a scan of the table says it, in a stable order. */
function truthAll (f: Pick<Fixture, 'db'>): string[] {
  return f.db.prepare('SELECT status, task_type, count(*) AS n FROM tasks GROUP BY status, task_type').all()
    .map((r) => `${String(r.status)} ${String(r.task_type)} ${Number(r.n)}`).sort()
}

function check (f: Fixture, step: string): void {
  const c = f.q.counts()
  assert.deepEqual(c.queued_by_type, truth(f), step)
  assert.equal(c.queued, Object.values(truth(f)).reduce((a, b) => a + b, 0), step)
  const running = Number(f.db.prepare("SELECT count(*) AS n FROM tasks WHERE status = 'running'").get()?.n)
  assert.equal(c.running, running, step)
  assert.deepEqual(f.q.statusTypeCounts().map((r) => `${r.status} ${r.task_type} ${r.count}`).sort(), truthAll(f), step)
  const now = f.clock.now()
  const oldest = f.db.prepare("SELECT min(created_at) AS t FROM tasks WHERE status = 'queued' AND next_attempt_at <= ?").get(now)?.t
  assert.equal(f.q.oldestQueuedAgeS(), typeof oldest === 'number' ? Math.max(0, now - oldest) : 0, step)
}

test('queued counts follow every transition in and out of queued', () => {
  const f = fixture()
  try {
    check(f, 'empty')
    const ids: Record<string, string[]> = { a: [], B: [], 'c x': [] }
    for (let i = 0; i < 30; i++) {
      const type = Object.keys(ids)[i % 3]
      ids[type].push(f.q.submit(sub({ task_type: type, payload: { i }, max_attempts: 2, priority: 1 + (i % 10) })).task_id)
      f.clock.advance(1)
    }
    // A delayed task is queued but not waiting: the oldest age skips it.
    f.q.submit(sub({ task_type: 'later', next_attempt_at: f.clock.now() + 10_000 }))
    check(f, 'submitted')
    const claimed = f.q.claim(claimIn('w1', { max_tasks: 12 }))
    assert.equal(claimed.length, 12)
    check(f, 'claimed')
    f.q.complete({ task_id: claimed[0].task_id, worker_id: 'w1', status: 'completed', result: null, error: '' })
    f.q.complete({ task_id: claimed[1].task_id, worker_id: 'w1', status: 'failed', result: null, error: 'for good', retry: false })
    check(f, 'completed and failed')
    f.q.complete({ task_id: claimed[2].task_id, worker_id: 'w1', status: 'failed', result: null, error: 'again', retry: true })
    check(f, 'a retried failure is queued again')
    f.q.release({ task_id: claimed[3].task_id, worker_id: 'w1', reason: 'r', delay_s: 0 })
    check(f, 'released')
    assert.equal(f.q.cancel(ids['c x'][9]).cancelled, true)
    check(f, 'cancelled while queued')
    assert.equal(f.q.delete(ids.B[9]), true)
    check(f, 'deleted while queued')
    f.q.retryTasks({ task_ids: [claimed[1].task_id], statuses: ['failed'], task_types: null, since: null, until: null, limit: 10, delay_s: 0 })
    check(f, 'an operator retry')
    // Leases run out: the sweep requeues (or fails, attempts spent) what w1 still holds.
    f.clock.advance(4000)
    f.q.sweep()
    check(f, 'lease expiry')
    const purged = f.q.purge({ statuses: ['queued'], task_types: ['a'], before: null, limit: 1000 })
    assert.ok(purged > 0)
    check(f, 'purged')
    // The same type in another spelling counts under its own stored spelling.
    f.q.submit(sub({ task_type: 'A' }))
    check(f, 'another spelling')
    assert.equal(f.q.counts().queued_by_type.a, undefined, 'a type with nothing queued is not listed')
    f.q.prune(1000)
    check(f, 'pruned')
  } finally {
    f.close()
  }
})

test('a file migrated to the counted schema starts with the right counts', () => {
  const dir = tmpDir()
  try {
    const path = join(dir, 'queue.sqlite3')
    const db = openDatabase(path)
    const q = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
    for (let i = 0; i < 10; i++) q.submit(sub({ task_type: i % 2 === 0 ? 'even' : 'odd' }))
    const held = q.claim(claimIn('w', { max_tasks: 3 }))
    q.submit(sub({ task_type: 'done-before' }))
    const done = q.claim(claimIn('w', { max_tasks: 1, task_types: ['done-before'] }))[0]
    q.complete({ task_id: done.task_id, worker_id: 'w', status: 'failed', result: null, error: 'x', retry: false })
    db.close()
    // Back to the schema before the counts: no table, no triggers, version 5.
    const raw = new DatabaseSync(path)
    raw.exec(`DROP TRIGGER trg_counts_ins; DROP TRIGGER trg_counts_move; DROP TRIGGER trg_counts_del;
      DROP TABLE task_counts; PRAGMA user_version = 5`)
    raw.close()
    const again = openDatabase(path)
    const q2 = new QueueStore({ db: again, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
    assert.deepEqual(q2.counts().queued_by_type, truth({ db: again }))
    assert.equal(q2.counts().queued, 7)
    // A type with only finished tasks has its row from the migration: requeueing counts.
    q2.retryTasks({ task_ids: [done.task_id], statuses: ['failed'], task_types: null, since: null, until: null, limit: 1, delay_s: 0 })
    q2.release({ task_id: held[0].task_id, worker_id: 'w', reason: 'r', delay_s: 0 })
    assert.deepEqual(q2.counts().queued_by_type, truth({ db: again }))
    assert.equal(q2.counts().queued_by_type['done-before'], 1)
    again.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
