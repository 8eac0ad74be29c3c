/**
 * One running service per state (queue file, identity): a second `serve` on the same
 * home directory would otherwise start with the same peer id, overwrite the first one's
 * announce file and delete it on exit, leaving the first running but unfindable.
 *
 * The lock is a file beside the guarded one (`<path>.lock`) created exclusively (O_EXCL),
 * holding `{pid, host, peer_id, multiaddr, started_at}` so a refused start can name the
 * holder. A lock whose pid no longer runs on this host is stale (a crash or SIGKILL) and
 * is taken over. Why not flock: Node has no flock/fcntl lock API without a native addon,
 * and a lock that must say who holds it needs a file with content anyway.
 */
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, mkdirSync } from 'node:fs'
import os from 'node:os'
import { dirname } from 'node:path'
import { StateLockedError, fsReason, PathError } from './startup-errors.js'

export interface LockHolder {
  pid: number
  host: string
  peer_id?: string
  multiaddr?: string
  started_at?: number
}

export interface StateLock {
  readonly path: string
  /** Adds what a refused second start should print (the peer id and address, once listening). */
  update: (info: Pick<LockHolder, 'peer_id' | 'multiaddr'>) => void
  release: () => void
}

function readHolder (path: string): LockHolder | null {
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>
    return typeof data.pid === 'number' ? { host: '', ...data } as LockHolder : null
  } catch {
    return null
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function describe (h: LockHolder): string {
  const where = h.multiaddr !== undefined && h.multiaddr !== '' ? ` at ${h.multiaddr}` : ', still starting'
  return `pid ${h.pid}${h.host !== '' && h.host !== os.hostname() ? ` on ${h.host}` : ''}${where}`
}

/**
 * Takes the lock for `guarded` (the queue file or identity file), or throws
 * StateLockedError naming the running holder. `what` names the state in messages.
 */
export function acquireStateLock (guarded: string, what: string): StateLock {
  const path = `${guarded}.lock`
  const mine: LockHolder = { pid: process.pid, host: os.hostname(), started_at: Date.now() / 1000 }
  const write = (fd: number, h: LockHolder): void => { writeSync(fd, JSON.stringify(h) + '\n') }
  try {
    mkdirSync(dirname(path), { recursive: true })
  } catch (err) {
    throw new PathError(what, guarded, fsReason(err), { cause: err })
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx', 0o600)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new PathError(what, guarded, `cannot create the lock file ${path}: ${fsReason(err)}`, { cause: err })
      }
      const holder = readHolder(path)
      // A lock from another host (shared file system) is never judged by our pid table.
      if (holder !== null && (holder.host !== os.hostname() || (holder.pid !== process.pid && alive(holder.pid)))) {
        throw new StateLockedError(
          `another service (${describe(holder)}) is running on this ${what} ${guarded}: stop it, or give this one its own --queue and --identity`,
          holder.pid)
      }
      if (holder === null && attempt === 0) {
        // Being written right now by a starting process: look again shortly.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
        continue
      }
      try { unlinkSync(path) } catch { /* another starter removed it first */ }
      continue
    }
    try { write(fd, mine) } finally { closeSync(fd) }
    let released = false
    return {
      path,
      update: (info) => {
        if (released) return
        Object.assign(mine, info)
        const tmp = `${path}.${process.pid}.tmp`
        const tfd = openSync(tmp, 'w', 0o600)
        try { write(tfd, mine) } finally { closeSync(tfd) }
        renameSync(tmp, path)
      },
      release: () => {
        if (released) return
        released = true
        // Only our own lock: never remove one a successor took over.
        if (readHolder(path)?.pid === process.pid) {
          try { unlinkSync(path) } catch { /* already gone */ }
        }
      }
    }
  }
  throw new StateLockedError(`${what} ${guarded} is being locked by another starting service (${path}); try again`, 0)
}
