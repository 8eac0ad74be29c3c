/**
 * Worker-thread body of `Checkpointer` (checkpointer.ts) while writers are busy:
 * copies WAL frames back into the database file on its own connection, so the
 * fsyncs a checkpoint implies do not stall the thread that serves requests. The
 * parent ends it once the writers have been quiet for a while.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { DatabaseSync } from 'node:sqlite'

interface Init { path: string, intervalMs: number }

const { path, intervalMs } = workerData as Init
const db = new DatabaseSync(path)
db.exec('PRAGMA busy_timeout = 1000')
// Same sync level as the writers: the WAL must be synced before frames are copied.
db.exec('PRAGMA synchronous = NORMAL')
const passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)')

let stopped = false
function tick (): void {
  if (stopped) return
  try {
    passive.get()
  } catch {
    // Busy or transient I/O trouble: the next tick (or a writer's autocheckpoint) retries.
  }
  setTimeout(tick, intervalMs)
}
setTimeout(tick, intervalMs)

parentPort?.on('message', (msg: unknown) => {
  if (msg !== 'stop') return
  stopped = true
  try { passive.get() } catch { /* best effort final pass */ }
  db.close()
  parentPort?.postMessage('stopped')
  parentPort?.close()
})
