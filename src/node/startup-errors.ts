/**
 * Start-up failures a daemon reports as one line and an exit code (cli.md §2): a path it
 * cannot use (2), state already held by another running service (2). ListenError
 * (node/listen.ts) is the third kind (3). Anything else is a bug, reported as internal.
 */

import { resolve } from 'node:path'

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** A configured path cannot be used: the message names the setting, the path and why. */
export class PathError extends Error {
  constructor (readonly what: string, readonly path: string, reason: string, options?: { cause?: unknown }) {
    super(`${what} ${path}: ${reason}`, options)
    this.name = 'PathError'
  }
}

/** Another running process holds this state (queue file, identity). */
export class StateLockedError extends Error {
  constructor (message: string, readonly holderPid: number) {
    super(message)
    this.name = 'StateLockedError'
  }
}

/** The short reason for a file-system error, by errno code (never the stack). */
export function fsReason (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  switch (e?.code) {
    case 'EACCES':
    case 'EPERM': return 'permission denied'
    case 'EROFS': return 'read-only file system'
    case 'ENOTDIR': return 'a parent of it is a file, not a directory'
    // mkdir -p of a parent that exists as a file.
    case 'EEXIST': return e.syscall === 'mkdir' ? 'a parent of it is a file, not a directory' : 'already exists'
    case 'EISDIR': return 'is a directory, not a file'
    case 'ENOSPC': return 'no space left on the device'
    case 'ENAMETOOLONG': return 'name too long'
    case 'ELOOP': return 'too many symbolic links'
    default: return e instanceof Error ? e.message : String(err)
  }
}

/**
 * Runs one start-up step that touches `path`; a failure becomes a PathError. `what`
 * names the setting as a user would look it up, e.g. "queue file (TASK_QUEUE_PATH)".
 */
export async function pathStep<T> (what: string, path: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    // Errors that already name their file and say what is wrong pass through as they are.
    if (err instanceof PathError || err instanceof StateLockedError || (err as Error)?.name === 'IdentityError') throw err
    const message = (err as Error)?.message ?? String(err)
    // Messages that already say what is wrong with the file keep that part only.
    const reason = (err as NodeJS.ErrnoException)?.code !== undefined
      ? fsReason(err)
      : message.replace(/^cannot open database \S+: /, '').replace(new RegExp(`^${escapeRegExp(resolve(path))} |^${escapeRegExp(path)} `), '')
    throw new PathError(what, path, reason, { cause: err })
  }
}
