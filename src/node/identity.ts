/**
 * Persistent node identity (config.md IDENTITY_FILE, B13): an Ed25519 key in libp2p's
 * protobuf encoding, created 0600 on first start. A file that exists but cannot be read
 * or decoded is an error — silently replacing it would change the peer id under users.
 */
import { chmodSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, fsyncSync, closeSync } from 'node:fs'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

export class IdentityError extends Error {
  readonly path: string
  constructor (path: string, message: string) {
    super(`identity file ${path}: ${message}`)
    this.name = 'IdentityError'
    this.path = path
  }
}

export async function loadOrCreateIdentity (path: string): Promise<PrivateKey> {
  let bytes: Buffer | undefined
  try {
    bytes = readFileSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new IdentityError(path, `cannot be read (${(err as Error).message})`)
    }
  }
  if (bytes !== undefined) {
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new IdentityError(path, `is not a libp2p private key (${(err as Error).message}); move it away to create a new identity`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  writeSecretAtomically(path, privateKeyToProtobuf(key))
  return key
}

function writeSecretAtomically (path: string, data: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeSync(fd, data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}
