/**
 * The client half of bench/nat.ts, run inside a network namespace:
 *   nat-probe latency <multiaddr> <n>   cache.get round trips over one connection
 *   nat-probe bigset <multiaddr> <n>    cache.set of the largest value the protocol allows
 *   nat-probe punch <multiaddr> <n>     n fresh clients: is the connection direct after discover?
 * Prints one JSON line.
 */
import { RemoteQueue } from '../src/client/remote-queue.js'

const [mode, target, countText] = process.argv.slice(2)
const n = Number(countText ?? '20')

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

async function timed (n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn()
    out.push(performance.now() - t)
  }
  return out.sort((a, b) => a - b)
}

async function main (): Promise<Record<string, unknown>> {
  if (mode === 'punch') {
    let direct = 0
    const kinds: string[] = []
    for (let i = 0; i < n; i++) {
      const rq = new RemoteQueue({ multiaddr: target, addressBookPath: null })
      try {
        const trace = await rq.discover({ timeoutMs: 10_000 })
        const win = (trace.attempts as Array<{ ok: boolean, connection?: string }>).find((a) => a.ok)
        kinds.push(win?.connection ?? 'failed')
        if (win?.connection === 'direct') direct++
      } finally {
        await rq.close()
      }
    }
    return { trials: n, direct, kinds }
  }
  const rq = new RemoteQueue({ multiaddr: target, addressBookPath: null })
  try {
    if (mode === 'latency') {
      await rq.cacheSet('bench', { hello: 'world' })
      await timed(50, async () => await rq.cacheGet('bench'))
      const lat = await timed(n, async () => await rq.cacheGet('bench'))
      return { p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99) }
    }
    if (mode === 'bigset') {
      // 983040 bytes: CACHE_MAX_VALUE_BYTES' maximum, whose frame is just under 1 MiB.
      const value = 'x'.repeat(983040 - 2)
      await rq.cacheSet('big', value, undefined, { timeoutMs: 60_000 })
      const lat = await timed(n, async () => await rq.cacheSet('big', value, undefined, { timeoutMs: 60_000 }))
      return { median_ms: pct(lat, 0.5), bytes: 983040 }
    }
    throw new Error(`unknown mode ${mode}`)
  } finally {
    await rq.close()
  }
}

main().then((r) => { process.stdout.write(JSON.stringify(r) + '\n'); process.exit(0) }, (err: unknown) => {
  process.stderr.write(`nat-probe failed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
