/**
 * Gives back the memory that start-up leaves behind.
 *
 * Loading and compiling a few thousand libp2p modules makes V8 grow its young
 * generation to the maximum (16 MiB semi-spaces), and nothing shrinks it until V8's
 * own memory reducer notices the process is idle — about 10 s later. Measured on
 * the bench VM: an idle `serve` sits at ~115 MB for those seconds, then ~92 MB.
 * We run the same memory-reducing collection ourselves once the service has been
 * quiet for a moment after start: one ~50 ms pause while nothing is happening,
 * instead of carrying ~20 MB until V8 gets round to it. No V8 limits are changed;
 * under load the heap grows exactly as before.
 *
 * V8's `gc` extension is the only API that requests a memory-reducing ("last
 * resort") collection; enabling it with setFlagsFromString only affects contexts
 * created afterwards, so the function is taken from a throwaway vm context and
 * nothing is added to the application's global scope.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

type GcFn = (options: { type: 'major', execution: 'sync', flavor: 'last-resort' }) => void

let gcFn: GcFn | null | undefined

function memoryReducingGc (): GcFn | null {
  if (gcFn !== undefined) return gcFn
  try {
    setFlagsFromString('--expose-gc')
    const fn: unknown = runInNewContext('typeof gc === "function" ? gc : null')
    gcFn = typeof fn === 'function' ? fn as GcFn : null
  } catch {
    gcFn = null
  }
  return gcFn
}

export interface StartupMemoryOptions {
  /** First look this long after start. */
  delayMs?: number
  /** Required quiet time: no request started or finished within it. */
  quietMs?: number
  /** Give up after this long (V8's own memory reducer takes over). */
  giveUpMs?: number
}

/**
 * Schedules the one-time release. `busy()` tells whether requests are in flight and
 * `lastActivity()` when the last one started or finished (performance.now()).
 * Returns a cancel function (call it on stop).
 */
export function releaseStartupMemoryWhenQuiet (busy: () => boolean, lastActivity: () => number, opts: StartupMemoryOptions = {}): () => void {
  const delayMs = opts.delayMs ?? 1000
  const quietMs = opts.quietMs ?? 500
  const giveUpAt = performance.now() + (opts.giveUpMs ?? 15_000)
  let timer: NodeJS.Timeout | undefined
  const attempt = (): void => {
    timer = undefined
    const now = performance.now()
    if (busy() || now - lastActivity() < quietMs) {
      if (now < giveUpAt) schedule(quietMs)
      return
    }
    memoryReducingGc()?.({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  }
  const schedule = (ms: number): void => {
    timer = setTimeout(attempt, ms)
    // Never the reason a process stays alive.
    timer.unref()
  }
  schedule(delayMs)
  return () => { clearTimeout(timer) }
}
