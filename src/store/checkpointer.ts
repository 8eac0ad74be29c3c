/**
 * WAL checkpointing off the commit path. By default SQLite checkpoints inside the
 * committing connection once the WAL passes `wal_autocheckpoint` pages, which stalls
 * that commit for a copy plus fsync (measured: about a third of submit time). A
 * service opens its database with a large `walAutocheckpointPages` (a safety net)
 * and runs one Checkpointer per file.
 *
 * It used to be a worker thread; a second V8 isolate cost ~15 MB of resident memory
 * for a task that needs a few milliseconds now and then. Now it is a timer on the
 * main thread with its own connection: every `intervalMs` it reads
 * `PRAGMA data_version` (a counter that moves when another connection commits —
 * microseconds) and runs a PASSIVE checkpoint once the writers have paused for a
 * tick, so a burst of requests never shares the thread with a checkpoint. Under
 * sustained load it still checkpoints at least every `maxDelayMs`, keeping the WAL
 * (and the next checkpoint) small. PASSIVE never waits for locks: a busy moment just
 * leaves the work for the next tick.
 */
import { resolve } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'

export interface CheckpointerOptions {
  /** How often to look for new commits. */
  intervalMs?: number
  /** Longest time committed frames wait while writers never pause (default 2000). */
  maxDelayMs?: number
}

export class Checkpointer {
  private readonly db: DatabaseSync
  private readonly dataVersion: StatementSync
  private readonly passive: StatementSync
  private readonly timer: NodeJS.Timeout
  private readonly maxDelayMs: number
  private lastVersion: number
  /** When the oldest not yet checkpointed commit was seen; null when the WAL is clean. */
  private dirtySince: number | null = null
  private stopping: Promise<void> | null = null

  constructor (path: string, opts: CheckpointerOptions = {}) {
    const intervalMs = Math.max(10, opts.intervalMs ?? 200)
    this.maxDelayMs = Math.max(intervalMs, opts.maxDelayMs ?? 2000)
    this.db = new DatabaseSync(resolve(path))
    this.db.exec('PRAGMA busy_timeout = 0')
    // Same sync level as the writers: the WAL is synced before frames are copied.
    this.db.exec('PRAGMA synchronous = NORMAL')
    this.dataVersion = this.db.prepare('PRAGMA data_version')
    this.passive = this.db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
    this.lastVersion = this.version()
    // The file may hold frames from before we started (a restart after a crash).
    this.dirtySince = Date.now()
    this.timer = setInterval(() => { this.tick() }, intervalMs)
    // Housekeeping only: it must never keep the process alive.
    this.timer.unref()
  }

  private version (): number {
    return Number(this.dataVersion.get()?.data_version ?? 0)
  }

  private tick (): void {
    try {
      const v = this.version()
      const now = Date.now()
      if (v !== this.lastVersion) {
        // Writers are active: wait for a quiet tick unless frames have waited too long.
        this.lastVersion = v
        this.dirtySince ??= now
        if (now - this.dirtySince < this.maxDelayMs) return
      }
      if (this.dirtySince === null) return
      this.checkpoint()
    } catch {
      // Busy or transient I/O trouble: the next tick (or a writer's autocheckpoint) retries.
    }
  }

  private checkpoint (): void {
    const r = this.passive.get()
    // Frames another connection still reads stay behind; look again next time.
    if (r !== undefined && Number(r.busy) === 0 && Number(r.log) === Number(r.checkpointed)) this.dirtySince = null
    else this.dirtySince = Date.now()
  }

  /** Runs a final checkpoint and closes the connection. */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.timer)
      try { this.passive.get() } catch { /* best effort final pass */ }
      try { this.db.close() } catch { /* already closed */ }
    })()
    return this.stopping
  }
}
