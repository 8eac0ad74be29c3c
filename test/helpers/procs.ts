/**
 * Real processes for acceptance tests: a `serve` started exactly as a user would
 * (bin/taskqueue-p2p.js), and `p2p-rpc` runs. Every process gets a private HOME and
 * XDG_CACHE_HOME so no test reads or writes the developer's real cache.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const NODE = process.execPath
export const SERVE_BIN = join(ROOT, 'bin/taskqueue-p2p.js')
export const RPC_BIN = join(ROOT, 'bin/p2p-rpc.js')

export type Env = Record<string, string>

/** `ip netns exec <ns> cmd ...` when a namespace is given (test/helpers/netns.ts); it execs, so the pid stays the command's. */
function inNetns (netns: string | undefined, cmd: string, argv: string[]): [string, string[]] {
  const ip = ['/usr/sbin/ip', '/sbin/ip'].find((p) => existsSync(p)) ?? 'ip'
  return netns === undefined ? [cmd, argv] : [ip, ['netns', 'exec', netns, cmd, ...argv]]
}

export interface Sandbox {
  dir: string
  env: Env
  announceFile: string
  queuePath: string
  cleanup: () => void
}

/** A private directory and the environment that points everything into it. */
export function sandbox (extra: Env = {}): Sandbox {
  const dir = mkdtempSync(join(os.tmpdir(), 'tq-test-'))
  const announceFile = join(dir, 'announce.json')
  const queuePath = join(dir, 'queue.sqlite3')
  const env: Env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_CACHE_HOME: join(dir, 'cache'),
    IPFS_ACCELERATE_PY_TASK_QUEUE_PATH: queuePath,
    IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE: announceFile,
    IPFS_ACCELERATE_PY_TASK_P2P_LISTEN_HOST: '127.0.0.1',
    IPFS_ACCELERATE_PY_TASK_P2P_LISTEN_PORT: '0',
    // Never touch the host's LAN or any public network from tests.
    IPFS_ACCELERATE_PY_TASK_P2P_MDNS: '0',
    IPFS_ACCELERATE_PY_TASK_P2P_DHT: '0',
    IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS: '0',
    TASKQUEUE_P2P_LOG_LEVEL: 'warn',
    ...extra
  }
  return { dir, env, announceFile, queuePath, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export interface Daemon {
  proc: ChildProcess
  peerId: string
  multiaddr: string
  lines: string[]
  stderr: () => string
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
  exited: Promise<number | null>
}

/** Starts `taskqueue-p2p <command> ...args` and waits for its start lines. */
export async function startDaemon (command: 'serve' | 'worker' | 'relay', args: string[], env: Env, readyTimeoutMs = 20_000, netns?: string): Promise<Daemon> {
  const proc = spawn(...inNetns(netns, NODE, [SERVE_BIN, command, ...args]), { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  const wanted = command === 'worker' ? 1 : 3
  const lines = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} not ready in ${readyTimeoutMs} ms; stderr:\n${err}`)), readyTimeoutMs)
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const ls = out.split('\n').filter((l) => l !== '')
      if (ls.length >= wanted && out.endsWith('\n')) {
        clearTimeout(timer)
        resolve(ls)
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`${command} exited with ${String(code)} before ready; stderr:\n${err}`))
    })
  })
  const field = (name: string): string => lines.find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1) ?? ''
  return {
    proc,
    lines,
    peerId: field('peer_id'),
    multiaddr: field('multiaddr'),
    stderr: () => err,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return await exited
    }
  }
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** stdout parsed as JSON (undefined when it is not one JSON document). */
  json: Record<string, unknown> | undefined
}

/** Runs `p2p-rpc ...args` to completion. */
export async function runRpc (args: string[], env: Env, timeoutMs = 60_000, netns?: string): Promise<CliResult> {
  return await runNode([RPC_BIN, ...args], env, timeoutMs, netns)
}

export async function runNode (argv: string[], env: Env, timeoutMs = 60_000, netns?: string): Promise<CliResult> {
  const proc = spawn(...inNetns(netns, NODE, argv), { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => proc.on('close', (c) => resolve(c)))
  clearTimeout(timer)
  let json: Record<string, unknown> | undefined
  try {
    json = JSON.parse(stdout) as Record<string, unknown>
  } catch {}
  return { code, stdout, stderr, json }
}
