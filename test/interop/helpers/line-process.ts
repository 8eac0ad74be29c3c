/**
 * A foreign peer's process as the interop tests see it: stdout read as `key=value`
 * lines, waited for by key, stderr kept for failure messages, stopped with SIGTERM
 * (SIGKILL after 5 s).
 */
import type { ChildProcess } from 'node:child_process'

export interface LineProcess {
  /** Resolves with the value of the first `key=` line; rejects on exit or timeout. */
  line: (key: string, timeoutMs: number) => Promise<string>
  /** The values of every `key=` line so far, oldest first. */
  all: (key: string) => string[]
  stderr: () => string
  exited: Promise<number | null>
  stop: () => Promise<void>
}

export function watchLines (proc: ChildProcess, name: string): LineProcess {
  const lines: string[] = []
  let partial = ''
  let err = ''
  const waiters = new Set<() => void>()
  proc.stdout!.on('data', (d: Buffer) => {
    partial += d.toString()
    const parts = partial.split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts.filter((l) => l !== ''))
    for (const w of waiters) w()
  })
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => { for (const w of waiters) w(); resolve(code) }))
  const line = async (key: string, timeoutMs: number): Promise<string> => await new Promise((resolve, reject) => {
    const check = (): void => {
      const found = lines.find((l) => l.startsWith(`${key}=`))
      if (found !== undefined) { done(); resolve(found.slice(key.length + 1)); return }
      if (proc.exitCode !== null || proc.signalCode !== null) { done(); reject(new Error(`${name} exited (${String(proc.exitCode ?? proc.signalCode)}) before ${key}=; stderr:\n${err.slice(-4000)}`)) }
    }
    const timer = setTimeout(() => { done(); reject(new Error(`${name}: no ${key}= line in ${timeoutMs} ms; stderr:\n${err.slice(-4000)}`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); waiters.delete(check) }
    waiters.add(check)
    check()
  })
  return {
    line,
    all: (key) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1)),
    stderr: () => err,
    exited,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
  }
}
