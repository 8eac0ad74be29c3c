/**
 * Optional background WAL checkpointing. By default SQLite checkpoints inside the
 * committing connection once the WAL passes `wal_autocheckpoint` pages, which stalls
 * that commit for a copy plus fsync (measured: about a third of submit time). A
 * service opens its database with a large `walAutocheckpointPages` (a safety net)
 * and runs one Checkpointer per file.
 */
import { Worker } from 'node:worker_threads'
import { resolve } from 'node:path'

export interface CheckpointerOptions {
  /** Pause between passive checkpoints. */
  intervalMs?: number
}

export class Checkpointer {
  private readonly worker: Worker
  private stopping: Promise<void> | null = null

  constructor (path: string, opts: CheckpointerOptions = {}) {
    this.worker = new Worker(new URL('./checkpointer-worker.js', import.meta.url), {
      workerData: { path: resolve(path), intervalMs: Math.max(10, opts.intervalMs ?? 200) }
    })
    // Housekeeping only: it must never keep the process alive or crash it.
    this.worker.unref()
    this.worker.on('error', (err) => {
      process.emitWarning(`WAL checkpointer for ${path} stopped: ${err.message}`)
    })
  }

  /** Runs a final checkpoint and ends the thread. */
  stop (): Promise<void> {
    this.stopping ??= new Promise<void>((done) => {
      const finish = (): void => { void this.worker.terminate().finally(done) }
      const timer = setTimeout(finish, 5000)
      timer.unref()
      this.worker.once('message', () => { clearTimeout(timer); finish() })
      this.worker.once('exit', () => { clearTimeout(timer); done() })
      this.worker.postMessage('stop')
    })
    return this.stopping
  }
}
