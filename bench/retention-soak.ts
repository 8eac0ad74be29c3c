/**
 * Retention soak (issue 18): runs N tasks (default 100,000) through a queue file with
 * the service's retention path (QueueStore.prune in batches, EventLog.trim) and prints
 * the file size (database + WAL) every 10,000 tasks. With retention on, the size levels
 * off instead of growing with N. Not a timed test; figures only.
 *
 *   node dist/bench/retention-soak.js [tasks] [maxFinished]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase } from '../src/store/db.js'
import { QueueStore } from '../src/store/queue.js'

const total = Number(process.argv[2] ?? 100_000)
const maxFinished = Number(process.argv[3] ?? 10_000)
const dir = mkdtempSync(join(tmpdir(), 'tq-soak-'))
const path = join(dir, 'queue.sqlite3')
const db = openDatabase(path)
const store = new QueueStore({
  db,
  leaseS: 300,
  peerTimeoutS: 300,
  stealAfterS: 30,
  deterministic: false,
  retention: { completedS: 3600, failedS: 3600, maxFinished },
  eventsMax: 20_000
})

function size (file: string): number {
  try { return statSync(file).size } catch { return 0 }
}

const mib = (n: number): string => (n / 1048576).toFixed(2)
const payload = { text: 'x'.repeat(200) }
const started = Date.now()
console.log(`retention soak: ${total} tasks, RETENTION_MAX_FINISHED=${maxFinished}, EVENTS_MAX=20000, file ${path}`)
console.log('tasks      db MiB   wal MiB   finished kept   pruned')
try {
  const BATCH = 500
  for (let done = 0; done < total;) {
    const n = Math.min(BATCH, total - done)
    store.group(Array.from({ length: n }, (_, i) => () => store.submit({
      task_type: 'soak', model_name: 'm', payload: { ...payload, i: done + i }, priority: 5, max_attempts: 3, next_attempt_at: 0, idempotency_key: null
    })))
    const claimed = store.claim({ worker_id: 'w', peer_key: 'w', session: '', task_types: null, lease_s: 300, max_tasks: n, same_task_type: false, transport_peer_id: '', peer_hint: '' })
    store.group(claimed.map((t) => () => store.complete({ task_id: t.task_id, status: 'completed', result: { ok: true }, error: '', worker_id: 'w' })))
    done += n
    // What the service's sweeper does each second: small batches until nothing is due.
    for (let i = 0; i < 40 && store.prune(500).more; i++);
    store.events.trim()
    if (done % 10_000 === 0) {
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
      const kept = Number(db.prepare("SELECT count(*) AS n FROM tasks WHERE status <> 'queued' AND status <> 'running'").get()?.n)
      console.log(`${String(done).padEnd(10)} ${mib(size(path)).padStart(7)} ${mib(size(path + '-wal')).padStart(9)}   ${String(kept).padStart(13)}   ${store.prunedTotal()}`)
    }
  }
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s; final file ${mib(size(path))} MiB`)
} finally {
  db.close()
  rmSync(dir, { recursive: true, force: true })
}
