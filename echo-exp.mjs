import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { multiaddr } from '@multiformats/multiaddr'
import { createTaskQueueNode } from '/work/main/dist/src/node/create-node.js'
import { tuneConnection, deferWindowUpdates } from '/work/main/dist/src/protocol/transport-tuning.js'
import { StreamReader, FrameWriter } from '/work/main/dist/src/protocol/framing.js'
const PROTO = '/echo-bench/1'
const MODE = process.env.MODE ?? 'frames'
if (process.argv[2] === 'server') {
  const node = await createTaskQueueNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  node.addEventListener('connection:open', (e) => tuneConnection(e.detail))
  await node.handle(PROTO, async (stream) => {
    deferWindowUpdates(stream)
    const r = new StreamReader(stream); const w = new FrameWriter(stream)
    for (;;) { const b = r.takeFrame(1 << 20) ?? await r.readFrame(1 << 20); if (b === null) return; if (MODE === 'json') { const m = JSON.parse(Buffer.from(b).toString()); w.writeJson(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: '{"ok":true,"key":"bench","hit":true,"value":{"hello":"world"},"expires_at":null}' }] } })) } else w.writeJson(Buffer.from(b).toString()) }
  })
  process.send(node.getMultiaddrs()[0].toString())
} else {
  const child = fork(new URL(import.meta.url).pathname, ['server'], { env: { ...process.env } })
  const ma = await new Promise(r => child.once('message', r))
  const node = await createTaskQueueNode({ listen: [] })
  const conn = await node.dial(multiaddr(ma)); tuneConnection(conn)
  const stream = await conn.newStream(PROTO); deferWindowUpdates(stream)
  const r = new StreamReader(stream); const w = new FrameWriter(stream)
  const msg = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'cache.get', key: 'bench' } } })
  const cpu = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10 }
  const lat = []; const N = 20000
  for (let i = 0; i < 2000; i++) { w.writeJson(msg); await r.readFrame(1 << 20) }
  const s0 = cpu(child.pid), c0 = process.cpuUsage(), t0 = performance.now()
  for (let i = 0; i < N; i++) { const t = performance.now(); w.writeJson(msg); await r.readFrame(1 << 20); lat.push(performance.now() - t) }
  const wall = performance.now() - t0, c1 = process.cpuUsage(c0), s1 = cpu(child.pid) - s0
  lat.sort((a, b) => a - b)
  console.log(MODE, 'echo p50', lat[N >> 1].toFixed(3), 'per rtt us: wall', (wall / N * 1000).toFixed(0), 'client cpu', ((c1.user + c1.system) / N).toFixed(0), 'server cpu', (s1 * 1000 / N).toFixed(0))
  child.kill(); await node.stop(); process.exit(0)
}
