/**
 * The announce file (wire-protocol.md §9, discovery.md §3): written atomically by a
 * service once it listens, read by clients on the same host.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import os from 'node:os'
import { isPlainObject } from '../protocol/json.js'
import { peerIdOf } from '../node/addresses.js'
import type { Discoverer, DiscoveryScope, ProbeSuccess } from './types.js'

export interface AnnounceInfo {
  peer_id: string
  multiaddr: string
  multiaddrs: string[]
  namespace?: string
  protocols?: string[]
  /** ★ Where the service's generated token is (readable by the same user only). */
  token_file?: string
  pid?: number
  started_at?: number
  updated_at?: number
}

export class AnnounceFileError extends Error {
  constructor (readonly path: string, readonly reason: 'missing' | 'invalid', message: string) {
    super(`announce file ${path}: ${message}`)
    this.name = 'AnnounceFileError'
  }
}

/** Reads and validates one file; unknown fields are ignored. */
export function readAnnounceFile (path: string): AnnounceInfo {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new AnnounceFileError(path, code === 'ENOENT' ? 'missing' : 'invalid', code === 'ENOENT' ? 'does not exist' : `cannot be read (${String(code)})`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    throw new AnnounceFileError(path, 'invalid', 'is not JSON')
  }
  if (!isPlainObject(data)) throw new AnnounceFileError(path, 'invalid', 'is not a JSON object')
  const peerId = typeof data.peer_id === 'string' ? data.peer_id.trim() : ''
  const addr = typeof data.multiaddr === 'string' ? data.multiaddr.trim() : ''
  if (peerId === '' || addr === '') throw new AnnounceFileError(path, 'invalid', 'lacks peer_id or multiaddr')
  const named = peerIdOf(addr)
  if (named === '') throw new AnnounceFileError(path, 'invalid', 'multiaddr does not end in /p2p/<peer id>')
  if (named !== peerId) throw new AnnounceFileError(path, 'invalid', 'multiaddr names a peer other than peer_id')
  const extra = Array.isArray(data.multiaddrs) ? data.multiaddrs.filter((a): a is string => typeof a === 'string' && a.trim() !== '') : []
  return { peer_id: peerId, multiaddr: addr, multiaddrs: extra }
}

/** Atomic replace: temporary file in the same directory, fsync, rename. */
export function writeAnnounceFile (path: string, info: AnnounceInfo): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.announce.tmp`)
  const fd = openSync(tmp, 'w', 0o644)
  try {
    writeSync(fd, JSON.stringify(info, null, 2) + '\n')
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

/** Removes the file at shutdown, but only if it still names us (another service may own it now). */
export function removeAnnounceFileIfOurs (path: string, peerId: string): boolean {
  try {
    if (readAnnounceFile(path).peer_id !== peerId) return false
    unlinkSync(path)
    return true
  } catch {
    return false
  }
}

export function cacheHomeDir (env: Readonly<Record<string, string | undefined>> = process.env): string {
  const xdg = env.XDG_CACHE_HOME?.trim()
  return xdg !== undefined && xdg !== '' && xdg.startsWith('/') ? xdg : join(os.homedir(), '.cache')
}

/** discovery.md §3 candidate list, relative paths resolved against `cwd`. */
export function announceCandidates (cwd: string = process.cwd(), cacheHome: string = cacheHomeDir()): string[] {
  return [
    resolve(cwd, 'state/task_p2p_announce.json'),
    resolve(cwd, 'state/task_p2p_announce_mcp.json'),
    join(cacheHome, 'ipfs_accelerate_py/task_p2p_announce.json'),
    join(cacheHome, 'ipfs_datasets_py/task_p2p_announce.json'),
    '/var/cache/ipfs-accelerate/task_p2p_announce.json'
  ]
}

function mtimeOf (path: string): number | null {
  try {
    return statSync(path).mtimeMs
  } catch {
    return null
  }
}

export interface AnnounceFileDiscovererInit {
  /** --announce-file / RemoteQueue option: the only file read. */
  explicitPath: string | null
  /** ANNOUNCE_FILE: a path, or null when disabled. */
  envPath: string | null
  /** Whether ANNOUNCE_FILE was explicitly set (otherwise only candidates are read). */
  envPathSet: boolean
  candidates: string[]
}

export function announceFileDiscoverer (init: AnnounceFileDiscovererInit): Discoverer {
  return {
    method: 'announce-file',
    skipReason: () => init.explicitPath === null && init.envPathSet && init.envPath === null ? 'disabled' : null,
    run: async (scope: DiscoveryScope): Promise<ProbeSuccess | null> => {
      let files: string[]
      if (init.explicitPath !== null) {
        files = [init.explicitPath]
      } else {
        // The configured path first, then the remaining existing candidates newest first.
        const first = init.envPathSet && init.envPath !== null ? [init.envPath] : []
        const rest = init.candidates
          .filter((p) => !first.includes(p))
          .map((p) => ({ p, m: mtimeOf(p) }))
          .filter((x): x is { p: string, m: number } => x.m !== null)
          .sort((a, b) => b.m - a.m)
          .map((x) => x.p)
        files = [...first.filter((p) => mtimeOf(p) !== null), ...rest]
      }
      if (files.length === 0) {
        scope.fail('no_announce_multiaddr')
        return null
      }
      let first: ProbeSuccess | null = null
      for (const path of files) {
        if (scope.signal.aborted) return first
        const startedAt = performance.now()
        let info: AnnounceInfo
        try {
          info = readAnnounceFile(path)
        } catch (err) {
          const missing = err instanceof AnnounceFileError && err.reason === 'missing'
          scope.fail(missing ? 'no_announce_multiaddr' : 'invalid_announce', { source: path, startedAt })
          continue
        }
        if (scope.peerIdFilter !== null && info.peer_id !== scope.peerIdFilter) {
          scope.fail('peer_id_mismatch', { source: path, peer_id: info.peer_id, multiaddr: info.multiaddr, startedAt })
          continue
        }
        const addrs = [info.multiaddr, ...info.multiaddrs.filter((a) => a !== info.multiaddr)]
        const result = await scope.probe(addrs, path, info.peer_id)
        if (result.ok) {
          first ??= result
          if (scope.all !== true) return result
        }
      }
      return first
    }
  }
}
