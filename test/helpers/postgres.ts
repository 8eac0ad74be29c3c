/**
 * A throwaway PostgreSQL cluster for tests: `initdb` into the test's own temporary
 * directory, `pg_ctl start` on a free loopback port (Unix socket in the same
 * directory), and `stop()` that stops it and removes the directory, also when the
 * process exits without calling it. As root (CI), the server runs as the unprivileged
 * `postgres` user through `runuser`: PostgreSQL refuses to run as root.
 *
 * Without PostgreSQL binaries a test says so loudly and is skipped; under CI=true it
 * fails (`.ci/run` installs Debian's `postgresql`).
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { freePort } from './event-follower.js'

export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string
  port: number
  dataDir: string
  /** A fresh, empty database on this cluster; its URL. */
  createDatabase: (name?: string) => string
  /** Runs SQL through psql as the superuser; stdout. */
  psql: (sql: string, db?: string) => string
  stop: () => void
}

/** The newest installed PostgreSQL's bin directory, or null. */
export function postgresBinDir (): string | null {
  const fromEnv = process.env.PG_BIN_DIR
  if (fromEnv !== undefined && existsSync(join(fromEnv, 'initdb'))) return fromEnv
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
    if (versions.length > 0) return join(root, versions[0], 'bin')
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' })
  const found = which.stdout.trim()
  return which.status === 0 && found !== '' ? join(found, '..') : null
}

/**
 * Gate for a PostgreSQL test: true when a cluster can be started. Otherwise a loud
 * banner and a skip, or under CI=true a failure.
 */
export function requirePostgres (t: TestContext): boolean {
  if (postgresBinDir() !== null) return true
  const line = 'POSTGRESQL TEST NOT RUN: no PostgreSQL server binaries (initdb, pg_ctl); install Debian\'s postgresql'
  const bar = '!'.repeat(Math.min(100, line.length + 8))
  process.stderr.write(`\n${bar}\n!!! ${line} !!!\n${bar}\n\n`)
  if (process.env.CI === 'true') throw new Error(`${line} (CI=true: PostgreSQL tests are mandatory)`)
  t.skip('no PostgreSQL binaries')
  return false
}

const live = new Set<PgCluster>()
let exitHook = false

/** Starts a cluster; the caller must `stop()` it (an exit hook also does). */
export async function startPostgres (opts: { durable?: boolean } = {}): Promise<PgCluster> {
  const bin = postgresBinDir()
  if (bin === null) throw new Error('no PostgreSQL binaries found (install Debian\'s postgresql)')
  const dataDir = mkdtempSync(join(tmpdir(), 'tq-pg-'))
  const asRoot = process.getuid?.() === 0
  const pgUser = lookupPostgresUser()
  if (asRoot) {
    if (pgUser === null) throw new Error('running as root and there is no `postgres` user to run the server as')
    chownSync(dataDir, pgUser.uid, pgUser.gid)
    chmodSync(dataDir, 0o700)
  }
  const run = (cmd: string, args: string[], timeout = 60_000): string => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] as const : [cmd, args] as const
    const r = spawnSync(full[0], full[1], { encoding: 'utf8', timeout, cwd: dataDir })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${String(r.status ?? r.error)}): ${(r.stderr ?? '').trim()} ${(r.stdout ?? '').trim()}`.trim())
    return r.stdout
  }
  const pgdata = join(dataDir, 'data')
  let started = false
  const cleanup = (): void => {
    if (started) {
      try { run(join(bin, 'pg_ctl'), ['-D', pgdata, '-m', 'immediate', '-w', 'stop'], 30_000) } catch { /* already down */ }
      started = false
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    run(join(bin, 'initdb'), ['-D', pgdata, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions'])
    let port = 0
    for (let attempt = 0; ; attempt++) {
      port = await freePort()
      // Durability settings off for tests: a throwaway cluster; nothing here survives the test
      // anyway. `durable` (the bench) keeps PostgreSQL's defaults, as an operator runs it.
      const durability = opts.durable === true ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off'
      const serverOpts = `-p ${port} -k ${dataDir} -c listen_addresses=127.0.0.1${durability} -c max_connections=200`
      try {
        run(join(bin, 'pg_ctl'), ['-D', pgdata, '-o', serverOpts, '-l', join(dataDir, 'server.log'), '-w', '-t', '60', 'start'])
        started = true
        break
      } catch (err) {
        if (attempt >= 2) throw err // another process took the port in between: try another
      }
    }
    const psql = (sql: string, db = 'postgres'): string =>
      run(join(bin, 'psql'), ['-X', '-q', '-A', '-t', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-c', sql])
    let dbs = 0
    const cluster: PgCluster = {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      port,
      dataDir,
      psql,
      createDatabase: (name?: string) => {
        const db = name ?? `t${process.pid}_${++dbs}`
        psql(`CREATE DATABASE "${db}"`)
        return `postgres://postgres@127.0.0.1:${port}/${db}`
      },
      stop: () => {
        live.delete(cluster)
        cleanup()
      }
    }
    live.add(cluster)
    if (!exitHook) {
      exitHook = true
      process.once('exit', () => { for (const c of [...live]) c.stop() })
    }
    return cluster
  } catch (err) {
    cleanup()
    throw err
  }
}

function lookupPostgresUser (): { uid: number, gid: number } | null {
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
  if (r.status !== 0 || g.status !== 0) return null
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) }
}
