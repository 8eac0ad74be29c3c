/**
 * go-libp2p as a test peer (test/interop/go, built by test/interop/setup.sh): one role
 * per process, `key=value` lines on stdout (values are JSON after the start lines).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { watchLines } from './line-process.js'

export interface GoPeer {
  peerId: string
  multiaddr: string
  /** Waits for the first `key=` line and returns its value (JSON-parsed when it parses). */
  value: (key: string, timeoutMs?: number) => Promise<any>
  /** Every `key=` value printed so far (JSON-parsed), oldest first. */
  values: (key: string) => any[]
  stderr: () => string
  exited: Promise<number | null>
  stop: () => Promise<void>
}

/** `ip netns exec <ns> …` when a namespace is given (test/helpers/netns.ts). */
function argvIn (netns: string | undefined, bin: string, args: string[]): [string, string[]] {
  if (netns === undefined) return [bin, args]
  const ip = ['/usr/sbin/ip', '/sbin/ip'].find((p) => existsSync(p)) ?? 'ip'
  return [ip, ['netns', 'exec', netns, bin, ...args]]
}

/** Starts a role of a compiled peer (go-peer, or rust-peer: same line protocol; `name` for messages). */
export async function startGoPeer (bin: string, role: string, args: string[] = [], opts: { netns?: string, readyTimeoutMs?: number, waitForListen?: boolean, name?: string } = {}): Promise<GoPeer> {
  const proc = spawn(...argvIn(opts.netns, bin, [role, ...args]), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', GOLOG_LOG_LEVEL: process.env.TASKQUEUE_INTEROP_GOLOG ?? 'error' } })
  const p = watchLines(proc, `${opts.name ?? 'go-peer'} ${role}`)
  const parse = (v: string): any => { try { return JSON.parse(v) } catch { return v } }
  const value = async (key: string, timeoutMs = 60_000): Promise<any> => parse(await p.line(key, timeoutMs))
  const values = (key: string): any[] => p.all(key).map(parse)
  try {
    const peerId = await p.line('peer_id', opts.readyTimeoutMs ?? 30_000)
    const multiaddr = opts.waitForListen === false ? '' : await p.line('multiaddr', 5000)
    return { peerId, multiaddr, value, values, stderr: p.stderr, exited: p.exited, stop: p.stop }
  } catch (e) {
    proc.kill('SIGKILL')
    throw e
  }
}
