/**
 * libp2p construction shared by service, worker, relay and client: TCP + Noise + Yamux
 * + identify + ping, nothing else by default (no plaintext, no mplex, no public
 * bootstrap list). Discovery and NAT features add their services through `services`.
 */
import { createLibp2p } from 'libp2p'
import type { Libp2p, PrivateKey, ServiceMap } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { isDialableAddress } from './addresses.js'

export interface NodeOptions {
  /** Persistent key for daemons; clients omit it and get an ephemeral identity. */
  privateKey?: PrivateKey
  /** Listen multiaddrs; [] for a pure client. */
  listen?: string[]
  /** Extra addresses to announce (PUBLIC_IP). */
  appendAnnounce?: string[]
  /** Per-dial timeout. */
  dialTimeoutMs?: number
}

export type TaskQueueNode = Libp2p<ServiceMap>

export async function createTaskQueueNode (opts: NodeOptions = {}): Promise<TaskQueueNode> {
  return await createLibp2p({
    privateKey: opts.privateKey,
    addresses: {
      listen: opts.listen ?? [],
      appendAnnounce: opts.appendAnnounce ?? [],
      announceFilter: (addrs) => addrs.filter(isDialableAddress)
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      dialTimeout: opts.dialTimeoutMs ?? 8000
    },
    services: {
      identify: identify(),
      ping: ping()
    }
  })
}
