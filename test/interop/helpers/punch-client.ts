/**
 * Our library client as the DCUtR responder in go-holepunch.test.ts, run inside a
 * network namespace: `node punch-client.js <circuit address>` with the client's
 * settings in the environment (HOLEPUNCH=1). It asks `status` through the relay, waits
 * (bounded) for the peer's hole punch to give a direct connection, asks `status` again,
 * waits (bounded) for the relayed connection to be retired, and prints one JSON line:
 * whether it got a direct connection, both replies, the connections left open.
 */
import { RemoteQueue } from '../../../src/index.js'

const target = process.argv[2]
if (target === undefined) throw new Error('usage: punch-client.js <multiaddr>')
const queue = new RemoteQueue({ multiaddr: target, addressBookPath: null })
try {
  const first = await queue.status()
  const node = await queue.getNode()
  const peer = String(first.peer_id)
  const direct = (): boolean => node.getConnections().some((c) => c.remotePeer.toString() === peer && c.status === 'open' && c.limits === undefined && !c.remoteAddr.toString().includes('/p2p-circuit'))
  const until = Date.now() + 15_000
  while (!direct() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100))
  const hadDirect = direct()
  const second = await queue.status()
  // The relayed connection, idle once the sessions moved, is retired (bounded wait).
  const open = (): string[] => node.getConnections().filter((c) => c.remotePeer.toString() === peer && c.status === 'open').map((c) => c.remoteAddr.toString())
  const retireBy = Date.now() + 5000
  while (open().some((a) => a.includes('/p2p-circuit')) && Date.now() < retireBy) await new Promise((resolve) => setTimeout(resolve, 100))
  process.stdout.write(JSON.stringify({ first, direct: hadDirect, second, connections: open() }) + '\n')
} finally {
  await queue.close()
}
