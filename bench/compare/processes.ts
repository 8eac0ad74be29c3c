/**
 * The processes of a side-by-side section: bench children forked over IPC (compare/child.ts:
 * producers and the other system's worker), and the wait for a freshly started server to
 * go quiet before a round is timed.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { cpuMs } from '../proc-stats.js'
import type { ProducerReply, ProducerRequest } from './protocol.js'

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url))

export interface Child { proc: ChildProcess, request: (msg: ProducerRequest) => Promise<ProducerReply>, stop: () => Promise<void> }

/** Forks `compare/child.js <args>` and waits for its `{ready: true}`. */
export async function forkChild (args: string[], env: NodeJS.ProcessEnv): Promise<Child> {
  const proc = fork(CHILD, args, { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const next = async <T>(): Promise<T> => await new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null): void => { reject(new Error(`bench child ${args[0]} exited with ${String(code)}`)) }
    proc.once('exit', onExit)
    proc.once('message', (m) => {
      proc.off('exit', onExit)
      const msg = m as { error?: string }
      if (typeof msg.error === 'string') reject(new Error(msg.error))
      else resolve(m as T)
    })
  })
  await next<{ ready: true }>()
  return {
    proc,
    request: async (msg) => {
      const reply = next<ProducerReply>()
      proc.send(msg)
      return await reply
    },
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        if (proc.connected) proc.send({ close: true })
        else proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
    }
  }
}

/** A forked worker child (no IPC requests): SIGTERM and wait for its exit. */
export async function stopWorkerChild (child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return
  const exited = new Promise((resolve) => child.proc.once('exit', resolve))
  child.proc.kill('SIGTERM')
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

/**
 * Waits (at most 5 s) until the processes have been quiet for 200 ms: our service
 * finishes loading parts of libp2p after its ready line, and a round must not time that.
 */
export async function settle (cpu: () => number): Promise<void> {
  const end = Date.now() + 5000
  let before = cpu()
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    const now = cpu()
    if (now - before <= 20) return
    before = now
  }
}

/** `settle` on one process. */
export async function settlePid (pid: number): Promise<void> {
  await settle(() => cpuMs(pid))
}

/** Runs `stops` in order, each even when one before it failed; rethrows the first failure. */
export async function stopAll (stops: Array<() => Promise<void>>): Promise<void> {
  let first: unknown = null
  for (const s of stops) {
    try { await s() } catch (err) { first ??= err }
  }
  if (first !== null) throw first
}
