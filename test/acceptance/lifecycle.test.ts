/**
 * One lifecycle: a service node is one libp2p node whose services are every long-lived
 * part, so starting and stopping it 20 times in one process — each time serving a real
 * client over TCP and, with HTTP_PORT, answering HTTP requests on a kept-alive connection
 * — leaves nothing behind: no socket or server handle, no timer (ref'd or not), no process
 * listener. Then the same for the coordination node.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
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

/** One GET on a connection of its own, kept alive by the client so the server's stop must close it. */
async function get (url: string, token: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { authorization: `Bearer ${token}`, connection: 'keep-alive' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

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
  const TOKEN = 'lifecycle-token'
  const box = sandbox({
    [`${P}DHT`]: '1',
    [`${P}RENDEZVOUS`]: '1',
    [`${P}ENABLE_LEGACY_PROTOCOL`]: '1',
    [`${P}HTTP_PORT`]: '0',
    [`${P}TOKEN`]: TOKEN
  })
  t.after(() => box.cleanup())
  const timers = trackTimers()
  t.after(() => timers.restore())

  await t.test('service node (TaskQueue service, access control, checkpointer, bootstrap keeper, DHT provider, announce file, HTTP listener)', async () => {
    const settings = loadSettings(box.env, { enableCache: true, enableTools: true }, () => {}, { role: 'serve' })
    const clientSettings = loadSettings(box.env, {}, () => {}, { role: 'client' })
    const cycle = async (i: number): Promise<void> => {
      const svc = await startServiceNode({ settings })
      const q = new RemoteQueue({ multiaddr: svc.multiaddr, settings: clientSettings, addressBookPath: null })
      try {
        const { task_id: taskId } = await q.submit({ task_type: 'cycle', payload: { i } })
        assert.equal((await q.get(taskId))?.status, 'queued')
        assert.match(svc.httpUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/)
        const announced = JSON.parse(readFileSync(box.announceFile, 'utf8')) as { http_url?: string }
        assert.equal(announced.http_url, svc.httpUrl, 'the announce file names the HTTP listener from its first write')
        assert.equal((await get(`${svc.httpUrl ?? ''}/readyz`, TOKEN)).status, 200)
        const metrics = await get(`${svc.httpUrl ?? ''}/metrics`, TOKEN)
        assert.equal(metrics.status, 200)
        assert.match(metrics.body, /taskqueue_task_transitions_total\{status="queued",task_type="cycle"\} 1\b/)
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

  await t.test('a start that fails in a service (HTTP port in use) says which port and leaves nothing behind', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as AddressInfo).port
    try {
      const settings = loadSettings({ ...box.env, [`${P}HTTP_PORT`]: String(port) }, {}, () => {}, { role: 'serve' })
      const attempt = async (): Promise<void> => {
        await assert.rejects(startServiceNode({ settings }), (err: Error) => err.name === 'ListenError' && err.message.startsWith(`HTTP port ${port} is already in use`))
      }
      await attempt()
      const before = snapshot(timers.live)
      for (let i = 0; i < 5; i++) await attempt()
      assert.deepEqual(await growth(before, timers.live), {}, 'left behind after 5 failed starts')
    } finally {
      await new Promise((resolve) => blocker.close(resolve))
    }
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
