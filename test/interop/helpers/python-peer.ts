/**
 * The original's stack as a test peer (test/interop/python/original_peer.py on
 * py-libp2p): its service as a daemon, its client as one process per batch of calls.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { INTEROP_SRC } from './toolchains.js'
import { watchLines } from './line-process.js'
import type { Env } from '../../helpers/procs.js'

const PEER = join(INTEROP_SRC, 'python/original_peer.py')

export interface PythonService {
  peerId: string
  multiaddr: string
  /** The value of the first `key=` line (`dht_record=…` arrives after the start lines). */
  line: (key: string, timeoutMs: number) => Promise<string>
  stderr: () => string
  stop: () => Promise<void>
}

function pyEnv (env: Env = {}): Env {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PYTHONUNBUFFERED: '1', ...env }
}

export async function startPythonService (python: string, args: string[] = [], env: Env = {}, readyTimeoutMs = 30_000): Promise<PythonService> {
  const proc = spawn(python, [PEER, 'serve', ...args], { env: pyEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  const p = watchLines(proc, 'python peer')
  try {
    const multiaddr = await p.line('multiaddr', readyTimeoutMs)
    const peerId = await p.line('peer_id', 1000)
    return { peerId, multiaddr, line: p.line, stderr: p.stderr, stop: p.stop }
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

const RENDEZVOUS_PEER = join(INTEROP_SRC, 'python/rendezvous_peer.py')

/** py-libp2p's own rendezvous (test/interop/python/rendezvous_peer.py): a point, or one REGISTER. */
export async function startPythonRendezvous (python: string, args: string[], readyTimeoutMs = 30_000): Promise<PythonService> {
  const proc = spawn(python, [RENDEZVOUS_PEER, ...args], { env: pyEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  const p = watchLines(proc, `py-libp2p rendezvous ${args[0] ?? ''}`)
  try {
    const peerId = await p.line('peer_id', readyTimeoutMs)
    const multiaddr = args[0] === 'point' ? await p.line('multiaddr', 5000) : ''
    return { peerId, multiaddr, line: p.line, stderr: p.stderr, stop: p.stop }
  } catch (e) {
    proc.kill('SIGKILL')
    throw e
  }
}
