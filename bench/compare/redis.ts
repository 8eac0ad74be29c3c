/**
 * The Redis server of the BullMQ side of `--only bullmq`: Debian's `redis-server`,
 * installed with apt-get when it is missing (as root), started by the bench on a
 * loopback port in its own directory, with AOF on and `appendfsync everysec` (BullMQ's
 * usual durable set-up: an acknowledged add can be lost for up to a second on power
 * loss, where ours survives kill -9 and power loss alike once acknowledged).
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const INSTALL_TIMEOUT_MS = 300_000

export interface RedisServer {
  port: number
  proc: ChildProcess
  stop: () => Promise<void>
}

function findBinary (name: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    const p = join(dir, name)
    if (existsSync(p)) return p
  }
  return null
}

/** A loud banner on stderr: a comparison that silently ran one side would read as a result. */
export function loudly (line: string): void {
  const bar = '!'.repeat(Math.min(110, line.length + 8))
  process.stderr.write(`\n${bar}\n!!! ${line} !!!\n${bar}\n\n`)
}

/**
 * Installs Debian's `pkg` with apt-get (as root) unless `find` already finds what the
 * bench needs; returns what `find` finds. Throws, after a loud banner starting with
 * `banner`, when it can be neither found nor installed.
 */
export function ensureDebianPackage (pkg: string, find: () => string | null, banner: string): string {
  const found = find()
  if (found !== null) return found
  const apt = findBinary('apt-get')
  const root = typeof process.getuid === 'function' && process.getuid() === 0
  let reason: string
  if (apt === null) reason = `${pkg} is not installed and apt-get is not available`
  else if (!root) reason = `${pkg} is not installed and installing it needs root (apt-get install ${pkg})`
  else {
    process.stderr.write(`bench: ${pkg} missing; installing Debian's ${pkg} with apt-get …\n`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const install = (): boolean => spawnSync(apt, ['install', '-y', '--no-install-recommends', pkg], { env, stdio: 'inherit', timeout: INSTALL_TIMEOUT_MS }).status === 0
    if (!install()) {
      spawnSync(apt, ['update'], { env, stdio: 'inherit', timeout: INSTALL_TIMEOUT_MS })
      install()
    }
    const now = find()
    if (now !== null) return now
    reason = `${pkg} is not installed and \`apt-get install ${pkg}\` failed`
  }
  loudly(`${banner}: ${reason}`)
  throw new Error(reason)
}

/** The path of `redis-server`, installing Debian's package first when it is missing. */
export function ensureRedisServer (): string {
  return ensureDebianPackage('redis-server', () => findBinary('redis-server'), 'BULLMQ SIDE CANNOT RUN')
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** A fresh, empty Redis on 127.0.0.1 with AOF everysec, in a directory removed on stop. */
export async function startRedis (binary: string): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-redis-'))
  const port = await freePort()
  const proc = spawn(binary, [
    '--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--daemonize', 'no', '--protected-mode', 'yes',
    // BullMQ's requirement: keys with a TTL must not be evicted under memory pressure.
    '--maxmemory-policy', 'noeviction'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server not ready in 10 s:\n${out}`)), 10_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve() }
    })
    proc.stderr?.on('data', (d: Buffer) => { out += d.toString() })
    void exited.then(() => { clearTimeout(timer); reject(new Error(`redis-server exited before ready:\n${out}`)) })
  })
  return {
    port,
    proc,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
