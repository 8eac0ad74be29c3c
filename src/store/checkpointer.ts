/**
 * WAL checkpointing off the commit path. By default SQLite checkpoints inside the
 * committing connection once the WAL passes `wal_autocheckpoint` pages, which stalls
 * that commit for a copy plus fsync (measured: about a third of submit time). A
 * service opens its database with a large `walAutocheckpointPages` (a safety net)
 * and runs one Checkpointer per file.
 *
 * Two modes, because a checkpoint thread is a second V8 isolate (~15 MB resident)
 * that an idle or lightly used service does not need:
 * - Quiet: a timer on the main thread with its own connection reads
 *   `PRAGMA data_version` every `intervalMs` (a counter that moves when another
 *   connection commits — microseconds) and runs a PASSIVE checkpoint once writers
 *   have been quiet for `idleMs`, when a few ms of fsync stall nobody.
 * - Busy: when writers have not paused for `maxDelayMs`, checkpointing inline would
 *   stall requests (measured under the throughput bench: 40–80 ms every 2 s), so a
 *   worker thread takes over and checkpoints every `intervalMs` off the main
 *   thread, until writers have been quiet for `threadIdleMs`; then it ends.
 * PASSIVE never waits for locks: a busy moment just leaves the work for later.
 *
 * Startable: nothing is opened or timed before `start()` (a service node starts it
 * as a libp2p service, next to the node's other parts), and a stopped one may start again.
 */
import { Worker } from 'node:worker_threads'
import { resolve } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'

export interface CheckpointerOptions {
  /** How often to look for new commits (default 250). */
  intervalMs?: number
  /** Quiet time after the last commit before checkpointing (default 1000, at least one interval). */
  idleMs?: number
  /** Writers busy this long without a pause start the checkpoint thread (default 2000). */
  maxDelayMs?: number
  /** The thread ends after writers were quiet this long (default 5000). */
  threadIdleMs?: number
}

export class Checkpointer {
  private running: { db: DatabaseSync, dataVersion: StatementSync, passive: StatementSync, timer: NodeJS.Timeout } | null = null
  private readonly maxDelayMs: number
  private readonly idleMs: number
  private readonly threadIdleMs: number
  private readonly intervalMs: number
  private readonly path: string
  /** The busy-mode thread, while it runs. */
  private thread: { worker: Worker, stopped: Promise<void> } | null = null
  private lastVersion = 0
  /** When data_version last moved. */
  private lastChange = 0
  /** When the oldest not yet checkpointed commit was seen; null when the WAL is clean. */
  private dirtySince: number | null = null
  private stopping: Promise<void> | null = null

  constructor (path: string, opts: CheckpointerOptions = {}) {
    const intervalMs = Math.max(10, opts.intervalMs ?? 250)
    this.intervalMs = intervalMs
    this.idleMs = Math.max(intervalMs, opts.idleMs ?? 1000)
    this.maxDelayMs = Math.max(this.idleMs, opts.maxDelayMs ?? 2000)
    this.threadIdleMs = Math.max(this.idleMs, opts.threadIdleMs ?? 5000)
    this.path = resolve(path)
  }

  readonly [Symbol.toStringTag] = 'taskqueue-p2p/checkpointer'

  /** Opens the checkpointing connection and starts the timer. */
  start (): void {
    if (this.running !== null) return
    this.stopping = null
    const db = new DatabaseSync(this.path)
    db.exec('PRAGMA busy_timeout = 0')
    // Same sync level as the writers: the WAL is synced before frames are copied.
    db.exec('PRAGMA synchronous = NORMAL')
    const timer = setInterval(() => { this.tick() }, this.intervalMs)
    // Housekeeping only: it must never keep the process alive.
    timer.unref()
    this.running = { db, dataVersion: db.prepare('PRAGMA data_version'), passive: db.prepare('PRAGMA wal_checkpoint(PASSIVE)'), timer }
    this.lastVersion = this.version()
    // The file may hold frames from before we started (a restart after a crash).
    this.dirtySince = Date.now()
  }

  /** Whether the busy-mode thread is running (diagnostics and tests). */
  get threadRunning (): boolean {
    return this.thread !== null
  }

  private version (): number {
    return Number(this.running?.dataVersion.get()?.data_version ?? 0)
  }

  private tick (): void {
    try {
      const v = this.version()
      const now = Date.now()
      if (v !== this.lastVersion) {
        this.lastVersion = v
        this.lastChange = now
        this.dirtySince ??= now
      }
      if (this.thread !== null) {
        // Busy mode: the thread checkpoints; end it once writers have gone quiet.
        if (now - this.lastChange >= this.threadIdleMs) void this.stopThread()
        return
      }
      if (this.dirtySince === null) return
      if (now - this.lastChange >= this.idleMs) this.checkpoint()
      else if (now - this.dirtySince >= this.maxDelayMs) this.startThread()
    } catch {
      // Busy or transient I/O trouble: the next tick (or a writer's autocheckpoint) retries.
    }
  }

  private checkpoint (): void {
    const r = this.running?.passive.get()
    // Frames another connection still reads stay behind; look again next time.
    if (r !== undefined && Number(r.busy) === 0 && Number(r.log) === Number(r.checkpointed)) this.dirtySince = null
    else this.dirtySince = Date.now()
  }

  private startThread (): void {
    const worker = new Worker(new URL('./checkpointer-worker.js', import.meta.url), {
      workerData: { path: this.path, intervalMs: Math.max(50, Math.min(this.intervalMs, 200)) }
    })
    // Housekeeping only: it must never keep the process alive or crash it.
    worker.unref()
    const stopped = new Promise<void>((resolve) => { worker.once('exit', () => resolve()) })
    worker.on('error', (err) => {
      process.emitWarning(`WAL checkpointer thread for ${this.path} stopped: ${err.message}`)
    })
    void stopped.then(() => {
      if (this.thread?.worker === worker) this.thread = null
    })
    this.thread = { worker, stopped }
  }

  /** Asks the thread for a final pass and waits (at most 5 s) for it to end. */
  private async stopThread (): Promise<void> {
    const thread = this.thread
    if (thread === null) return
    this.thread = null
    // Its final pass checkpointed what it could; anything left is found on a quiet tick.
    this.dirtySince = Date.now()
    const timer = setTimeout(() => { void thread.worker.terminate() }, 5000)
    timer.unref()
    thread.worker.once('message', () => { void thread.worker.terminate() })
    thread.worker.postMessage('stop')
    await thread.stopped
    clearTimeout(timer)
  }

  /** Runs a final checkpoint and closes the connection. */
  async stop (): Promise<void> {
    const running = this.running
    if (running === null) return await (this.stopping ?? Promise.resolve())
    this.running = null
    this.stopping = (async () => {
      clearInterval(running.timer)
      await this.stopThread()
      try { running.passive.get() } catch { /* best effort final pass */ }
      try { running.db.close() } catch { /* already closed */ }
    })()
    await this.stopping
  }
}
