/**
 * One lifecycle: a service node is one libp2p node whose services are every long-lived
 * part, so starting and stopping it 20 times in one process — each time serving a real
 * client over TCP — leaves nothing behind: no socket or server handle, no timer (ref'd
 * or not), no process listener. Then the same for the coordination node.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadSettings } from '../../src/config/index.js'
import { startServiceNode } from '../../src/service/service-node.js'
import { startCoordinationNode } from '../../src/coordination/coordination-node.js'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import { sandbox } from '../helpers/procs.js'

const P = 'IPFS_ACCELERATE_PY_TASK_P2P_'
const CYCLES = 20

/** Every JS timer set and not yet fired or cleared, ref'd or not (process.getActiveResourcesInfo lists only ref'd ones). */
function trackTimers (): { live: () => number, restore: () => void } {
  const live = new Set<unknown>()
  const { setTimeout: st, setInterval: si, clearTimeout: ct, clearInterval: ci } = globalThis
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t = st((...a: unknown[]) => { live.delete(t); fn(...a) }, ms, ...args)
    live.add(t)
    return t
  }) as typeof setTimeout
  globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t = si(fn, ms, ...args)
    live.add(t)
    return t
  }) as typeof setInterval
  globalThis.clearTimeout = ((t: Parameters<typeof clearTimeout>[0]) => { live.delete(t); ct(t) }) as typeof clearTimeout
  globalThis.clearInterval = ((t: Parameters<typeof clearInterval>[0]) => { live.delete(t); ci(t) }) as typeof clearInterval
  return {
    live: () => live.size,
    restore: () => { Object.assign(globalThis, { setTimeout: st, setInterval: si, clearTimeout: ct, clearInterval: ci }) }
  }
}

type Counts = Record<string, number>

function snapshot (timers: () => number): Counts {
  const counts: Counts = { 'JS timers': timers() }
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1
  for (const name of process.eventNames()) counts[`process '${String(name)}' listeners`] = process.listenerCount(name)
  return counts
}

/** What grew since `before` (closing sockets and one-off timers may need a moment: looks again for up to 10 s). */
async function growth (before: Counts, timers: () => number): Promise<Counts> {
  const end = Date.now() + 10_000
  for (;;) {
    const now = snapshot(timers)
    const grown = Object.fromEntries(Object.entries(now).filter(([k, v]) => v > (before[k] ?? 0)).map(([k, v]) => [k, v - (before[k] ?? 0)]))
    if (Object.keys(grown).length === 0 || Date.now() > end) return grown
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

test(`start and stop ${CYCLES} times in one process: no leaked handles, timers or listeners`, { timeout: 280_000 }, async (t) => {
  const box = sandbox({ [`${P}DHT`]: '1', [`${P}RENDEZVOUS`]: '1', [`${P}ENABLE_LEGACY_PROTOCOL`]: '1' })
  t.after(() => box.cleanup())
  const timers = trackTimers()
  t.after(() => timers.restore())

  await t.test('service node (TaskQueue service, checkpointer, bootstrap keeper, DHT provider, announce file)', async () => {
    const settings = loadSettings(box.env, { enableCache: true, enableTools: true }, () => {}, { role: 'serve' })
    const clientSettings = loadSettings(box.env, {}, () => {}, { role: 'client' })
    const cycle = async (i: number): Promise<void> => {
      const svc = await startServiceNode({ settings })
      const q = new RemoteQueue({ multiaddr: svc.multiaddr, settings: clientSettings, addressBookPath: null })
      try {
        const { task_id: taskId } = await q.submit({ task_type: 'cycle', payload: { i } })
        assert.equal((await q.get(taskId))?.status, 'queued')
      } finally {
        await q.close()
        await svc.stop()
      }
    }
    // The first cycle creates what lives as long as the process (module state, pools).
    await cycle(-1)
    const before = snapshot(timers.live)
    for (let i = 0; i < CYCLES; i++) await cycle(i)
    assert.deepEqual(await growth(before, timers.live), {}, `left behind after ${CYCLES} cycles`)
  })

  await t.test('coordination node (relay, rendezvous point, DHT server, bootstrap keeper)', async () => {
    const settings = loadSettings(box.env, {}, () => {}, { role: 'relay' })
    const cycle = async (): Promise<void> => { await (await startCoordinationNode(settings)).stop() }
    await cycle()
    const before = snapshot(timers.live)
    for (let i = 0; i < CYCLES; i++) await cycle()
    assert.deepEqual(await growth(before, timers.live), {}, `left behind after ${CYCLES} cycles`)
  })
})
