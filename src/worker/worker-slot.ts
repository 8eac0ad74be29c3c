/**
 * A worker process's own place in the state directory, for the defaults that must be
 * unique per process yet stable across restarts: the worker id (host + a persisted
 * random id) and a remote worker's libp2p identity. Slot n is
 * `workers/slot-<n>.{lock,id,identity.key}`; a process takes the lowest slot whose
 * lock no live process holds, so the first worker on a host is slot 0 after every
 * restart, and a second one at the same time gets slot 1, its own id and identity.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'

export interface WorkerSlot {
  index: number
  /** `<host>-<persisted random id>`: the default worker id. */
  workerId: string
  /** Where this slot's libp2p identity lives (remote workers). */
  identityFile: string
  /** Gives the slot back (the lock file goes); idempotent. */
  release: () => void
}

const MAX_SLOTS = 256

/** Takes the lowest free slot under `stateDir/workers`. */
export function claimWorkerSlot (stateDir: string, host: string = hostname()): WorkerSlot {
  const dir = join(stateDir, 'workers')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  for (let i = 0; i < MAX_SLOTS; i++) {
    const lock = join(dir, `slot-${i}.lock`)
    if (!tryLock(lock)) continue
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      try { unlinkSync(lock) } catch { /* already gone */ }
    }
    process.once('exit', release)
    return { index: i, workerId: `${host}-${persistedId(join(dir, `slot-${i}.id`))}`, identityFile: join(dir, `slot-${i}.identity.key`), release }
  }
  throw new Error(`no free worker slot under ${dir} (${MAX_SLOTS} in use)`)
}

/** Creates the lock with our pid; a lock whose process is gone is taken over. */
function tryLock (path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600)
      try { writeSync(fd, String(process.pid)) } finally { closeSync(fd) }
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (holderAlive(path)) return false
    try { unlinkSync(path) } catch { /* another process took it over first */ }
  }
  return false
}

function holderAlive (path: string): boolean {
  let pid: number
  try {
    pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10)
  } catch {
    return false
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function persistedId (path: string): string {
  try {
    const id = readFileSync(path, 'utf8').trim()
    if (/^[0-9a-f]{8,32}$/.test(id)) return id
  } catch { /* first use */ }
  const id = randomBytes(4).toString('hex')
  writeFileSync(path, id + '\n', { mode: 0o600 })
  return id
}
