/**
 * An in-process swarm of DHT server nodes on loopback, joined through one bootstrap
 * node, so a provider record lands on peers other than the service's neighbour.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import { dhtParts, getDht } from '../../src/discovery/dht.js'

export interface DhtSwarm {
  nodes: TaskQueueNode[]
  stop: () => Promise<void>
}

export async function startDhtSwarm (size: number, bootstrap: string, protocol = '/ipfs/kad/1.0.0'): Promise<DhtSwarm> {
  const nodes = await Promise.all(Array.from({ length: size }, async () => await createTaskQueueNode({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    parts: [dhtParts({ protocol, mode: 'server' })]
  })))
  await Promise.all(nodes.map(async (n) => await n.dial(multiaddr(bootstrap))))
  // Each node also meets a few of the others directly, so lookups have several hops to take.
  await Promise.all(nodes.map(async (n, i) => {
    for (const j of [i + 1, i + 3]) {
      const other = nodes[j % nodes.length]
      if (other !== n) await n.dial(other.getMultiaddrs()[0]).catch(() => {})
    }
  }))
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && nodes.some((n) => (getDht(n)?.routingTable?.size ?? 0) < 2)) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { nodes, stop: async () => { await Promise.all(nodes.map(async (n) => await n.stop())) } }
}
