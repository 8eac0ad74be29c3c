/**
 * Child process of the discovery bench: N times, a fresh RemoteQueue (its own libp2p
 * node, nothing remembered) makes its first call, `status`, and the time from that call
 * to the reply is recorded. Process start is excluded; discovery is all of what remains.
 * Prints one JSON line: {ms: number[], methods: string[]}.
 */
import { RemoteQueue } from '../src/client/remote-queue.js'

const runs = Number(process.argv[2] ?? 10)
const ms: number[] = []
const methods: string[] = []
// One warm-up call so module loading and JIT are not counted as discovery.
const warm = new RemoteQueue({ addressBookPath: null })
await warm.status().catch(() => {})
await warm.close()
for (let i = 0; i < runs; i++) {
  const rq = new RemoteQueue({ addressBookPath: null })
  const t = performance.now()
  const trace = await rq.discover()
  ms.push(performance.now() - t)
  methods.push(trace.ok ? trace.method : `failed:${trace.attempts.map((a) => `${a.method}=${a.error}`).join(',')}`)
  await rq.close()
}
process.stdout.write(JSON.stringify({ ms, methods }) + '\n')
process.exit(0)
