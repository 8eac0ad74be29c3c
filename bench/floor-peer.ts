/**
 * The answering side of bench/floor.ts when run as a process, and the measuring
 * loops it imports. Listens on loopback only.
 */
import net from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { createTaskQueueNode } from '../src/node/create-node.js'
import { deferWindowUpdates, tuneConnection } from '../src/node/patches/transport-tuning.js'
import { FrameWriter, StreamReader } from '../src/protocol/framing.js'

const PROTOCOL = '/taskqueue-bench/floor/1.0.0'
const MAX_FRAME = 1 << 20
/** A cache.get request and reply as they travel (sizes matter, content does not). */
const REQUEST = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'cache.get', key: 'bench' } } })
const REPLY = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: JSON.stringify({ ok: true, key: 'bench', hit: true, value: { hello: 'world' }, expires_at: null, peer_id: '12D3KooWxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }) }] } })

async function serve (): Promise<void> {
  const tcp = net.createServer((s) => {
    s.setNoDelay(true)
    s.on('data', (d) => s.write(d))
  })
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve))
  const node = await createTaskQueueNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  node.addEventListener('connection:open', (evt) => { tuneConnection(evt.detail) })
  await node.handle(PROTOCOL, async (stream: Stream) => {
    deferWindowUpdates(stream)
    const reader = new StreamReader(stream)
    const writer = new FrameWriter(stream, () => {})
    for (;;) {
      const body = reader.takeFrame(MAX_FRAME) ?? await reader.readFrame(MAX_FRAME)
      if (body === null) return
      void writer.writeJson(REPLY)
    }
  })
  const tcpPort = (tcp.address() as net.AddressInfo).port
  process.send?.({ tcpPort, libp2pAddr: node.getMultiaddrs()[0].toString() })
  process.on('disconnect', () => process.exit(0))
}

/** Round-trip times (ms) of a 200-byte echo over plain TCP. */
export async function rawTcpRoundTrips (port: number, warmup: number, rounds: number): Promise<number[]> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const payload = Buffer.alloc(200, 0x61)
  const out: number[] = []
  try {
    for (let i = 0; i < warmup + rounds; i++) {
      const t = performance.now()
      let got = 0
      await new Promise<void>((resolve) => {
        const onData = (d: Buffer): void => {
          got += d.byteLength
          if (got >= payload.byteLength) { socket.off('data', onData); resolve() }
        }
        socket.on('data', onData)
        socket.write(payload)
      })
      if (i >= warmup) out.push(performance.now() - t)
    }
  } finally {
    socket.destroy()
  }
  return out.sort((a, b) => a - b)
}

/** Round-trip times (ms) of cache.get-sized frames over our libp2p stack, nothing above it. */
export async function libp2pRoundTrips (addr: string, warmup: number, rounds: number): Promise<number[]> {
  const node = await createTaskQueueNode({ listen: [] })
  const out: number[] = []
  try {
    const connection = await node.dial(multiaddr(addr))
    tuneConnection(connection)
    const stream = await connection.newStream(PROTOCOL)
    deferWindowUpdates(stream)
    const reader = new StreamReader(stream)
    const writer = new FrameWriter(stream, () => {})
    for (let i = 0; i < warmup + rounds; i++) {
      const t = performance.now()
      void writer.writeJson(REQUEST)
      const body = reader.takeFrame(MAX_FRAME) ?? await reader.readFrame(MAX_FRAME)
      if (body === null) throw new Error('floor peer closed the stream')
      if (i >= warmup) out.push(performance.now() - t)
    }
    await stream.close()
  } finally {
    await node.stop()
  }
  return out.sort((a, b) => a - b)
}

if (process.send !== undefined && process.argv[1] === new URL(import.meta.url).pathname) {
  serve().catch((err: unknown) => {
    process.stderr.write(`floor peer failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
