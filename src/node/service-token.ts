/**
 * The service's generated token (README "Security"): a service that listens beyond
 * loopback with no TOKEN configured makes one on first start and keeps it 0600 beside
 * its identity, like a Jupyter server's token. Clients on the same host (same user)
 * find it through the announce file's `token_file`, or beside the identity file their
 * own settings point at; the file's service is checked by peer id first, so a token
 * is never sent to another service.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

export class ServiceTokenError extends Error {
  constructor (readonly path: string, message: string) {
    super(`token file ${path}: ${message}`)
    this.name = 'ServiceTokenError'
  }
}

/** Where a service whose identity is `identityFile` keeps its generated token. */
export function serviceTokenFile (identityFile: string): string {
  return join(dirname(identityFile), 'service_token')
}

/** Whether a listen address reaches only this host. */
export function isLoopbackHost (host: string): boolean {
  return host === '::1' || host.startsWith('127.')
}

function readToken (path: string): string | null {
  try {
    const token = readFileSync(path, 'utf8').trim()
    return token === '' ? null : token
  } catch {
    return null
  }
}

/** The token in `path`, creating it (0600, 32 random bytes, base64url) when missing. */
export function loadOrCreateServiceToken (path: string): { token: string, created: boolean } {
  const existing = readToken(path)
  if (existing !== null) return { token: existing, created: false }
  mkdirSync(dirname(path), { recursive: true })
  const token = randomBytes(32).toString('base64url')
  let fd: number
  try {
    // `wx`: of two services starting at once on the same state dir, one token wins.
    fd = openSync(path, 'wx', 0o600)
  } catch (err) {
    const raced = readToken(path)
    if (raced !== null) return { token: raced, created: false }
    throw new ServiceTokenError(path, `cannot be created (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
  try {
    writeSync(fd, token + '\n')
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return { token, created: true }
}

function peerIdOfIdentity (identityFile: string): string | null {
  try {
    return peerIdFromPrivateKey(privateKeyFromProtobuf(readFileSync(identityFile))).toString()
  } catch {
    return null
  }
}

/**
 * The generated token of local service `peerId`, or null: from announce files naming
 * that peer and a `token_file`, else from beside an identity file of that peer.
 */
export function findLocalServiceToken (peerId: string, where: { announceFiles: readonly string[], identityFiles: readonly string[] }): string | null {
  if (peerId === '') return null
  for (const path of where.announceFiles) {
    try {
      const data = JSON.parse(readFileSync(path, 'utf8')) as { peer_id?: unknown, token_file?: unknown }
      if (data.peer_id !== peerId || typeof data.token_file !== 'string') continue
      const token = readToken(data.token_file)
      if (token !== null) return token
    } catch {}
  }
  for (const identity of where.identityFiles) {
    const token = readToken(serviceTokenFile(identity))
    if (token !== null && peerIdOfIdentity(identity) === peerId) return token
  }
  return null
}
