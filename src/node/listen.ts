/**
 * A daemon's listening node (serve, relay): listen address and PUBLIC_IP from the
 * settings, and one error type for "cannot listen here", which the CLIs turn into exit 3.
 */
import type { ConnectionGater, PrivateKey } from '@libp2p/interface'
import type { Settings } from '../config/index.js'
import { createTaskQueueNode } from './create-node.js'
import type { NodeParts, TaskQueueNode } from './create-node.js'
import { tcpMultiaddr } from './addresses.js'
import type { Logger } from '../logger.js'
import { PathError } from './startup-errors.js'

/** Listening failed (port in use, address not local): the CLI exits 3. */
export class ListenError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ListenError'
  }
}

export async function createListeningNode (s: Settings, privateKey: PrivateKey, parts: NodeParts[], logger?: Logger, connectionGater?: ConnectionGater): Promise<TaskQueueNode> {
  try {
    return await createTaskQueueNode({
      privateKey,
      listen: [tcpMultiaddr(s.listenHost, s.listenPort)],
      appendAnnounce: s.publicIp !== null ? [tcpMultiaddr(s.publicIp, s.listenPort)] : [],
      parts,
      logger,
      swarmKey: s.swarmKey,
      connectionGater
    })
  } catch (err) {
    // A part that failed on a file of ours (the announce file) or on a listener of its own
    // (the HTTP listener) already says which and why.
    if (err instanceof PathError || err instanceof ListenError) throw err
    throw new ListenError(listenFailure(s.listenHost, s.listenPort, err), { cause: err })
  }
}

/**
 * One line for a failed listen. libp2p folds each address's error into the text of one
 * UnsupportedListenAddressesError (with advice about its own options and the stack), so
 * the errno code is the only structured part left to read.
 */
export function listenFailure (host: string, port: number, err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  const where = `${host}:${port}`
  if (text.includes('EADDRINUSE')) return `port ${port} is already in use on ${host} (another service?): choose another with --listen-port N or LISTEN_PORT, or stop the other process`
  if (text.includes('EADDRNOTAVAIL')) return `cannot listen on ${where}: ${host} is not an address of this host; set --listen-host (LISTEN_HOST) to one of its addresses or 0.0.0.0`
  if (text.includes('EACCES')) return `cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose another with --listen-port N or LISTEN_PORT`
  const firstLine = text.split('\n').map((l) => l.trim()).find((l) => /E[A-Z]+:/.test(l)) ?? text.split('\n')[0]
  return `cannot listen on ${where}: ${firstLine.replace(/^\S+: Error: /, '')}`
}
