/**
 * The original's stack as a test peer (test/interop/python/original_peer.py on
 * py-libp2p): its service as a daemon, its client as one process per batch of calls.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { INTEROP_SRC } from './toolchains.js'
import type { Env } from '../../helpers/procs.js'

const PEER = join(INTEROP_SRC, 'python/original_peer.py')

export interface PythonService {
  peerId: string
  multiaddr: string
  /** Every stdout line so far (`dht_record=…` arrives after the start lines). */
  lines: string[]
  waitForLine: (prefix: string, timeoutMs: number) => Promise<string>
  stderr: () => string
  stop: () => Promise<void>
}

function pyEnv (env: Env = {}): Env {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PYTHONUNBUFFERED: '1', ...env }
}

export async function startPythonService (python: string, args: string[] = [], env: Env = {}, readyTimeoutMs = 30_000): Promise<PythonService> {
  const proc: ChildProcess = spawn(python, [PEER, 'serve', ...args], { env: pyEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  const lines: string[] = []
  const waiters = new Set<() => void>()
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
    const parts = out.split('\n')
    out = parts.pop() ?? ''
    lines.push(...parts.filter((l) => l !== ''))
    for (const w of waiters) w()
  })
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<void>((resolve) => proc.on('exit', () => { for (const w of waiters) w(); resolve() }))
  const waitForLine = async (prefix: string, timeoutMs: number): Promise<string> => await new Promise((resolve, reject) => {
    const check = (): void => {
      const line = lines.find((l) => l.startsWith(prefix))
      if (line !== undefined) { done(); resolve(line.slice(prefix.length)); return }
      if (proc.exitCode !== null || proc.signalCode !== null) { done(); reject(new Error(`python peer exited before ${prefix}; stderr:\n${err.slice(-4000)}`)) }
    }
    const timer = setTimeout(() => { done(); reject(new Error(`python peer: no ${prefix} line in ${timeoutMs} ms; stderr:\n${err.slice(-4000)}`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); waiters.delete(check) }
    waiters.add(check)
    check()
  })
  try {
    const multiaddr = await waitForLine('multiaddr=', readyTimeoutMs)
    const peerId = await waitForLine('peer_id=', 1000)
    return {
      peerId,
      multiaddr,
      lines,
      waitForLine,
      stderr: () => err,
      stop: async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
    }
  } catch (e) {
    proc.kill('SIGKILL')
    throw e
  }
}

export interface PythonClientResult {
  ok: boolean
  target: string
  method: string
  results: Array<Record<string, any>>
  error?: string
}

/**
 * Runs the original's client: each envelope is one call exactly as it made them (a new
 * host and identity, one stream, ids 1). `target` selects how it finds the service.
 */
export async function runPythonClient (python: string, envelopes: Array<Record<string, unknown>>, target: string[], opts: { legacy?: boolean, timeoutMs?: number } = {}): Promise<PythonClientResult> {
  const argv = [PEER, 'client', '--ops', JSON.stringify(envelopes), ...target, ...(opts.legacy === true ? ['--legacy'] : [])]
  const proc = spawn(python, argv, { env: pyEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
  await new Promise((resolve) => proc.on('close', resolve))
  clearTimeout(timer)
  try {
    return JSON.parse(stdout) as PythonClientResult
  } catch {
    throw new Error(`python client printed no JSON (stdout ${JSON.stringify(stdout.slice(0, 500))}); stderr:\n${stderr.slice(-4000)}`)
  }
}
