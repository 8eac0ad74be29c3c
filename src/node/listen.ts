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
    throw new ListenError(`cannot listen on ${s.listenHost}:${s.listenPort}: ${(err as Error).message}`, { cause: err })
  }
}
