/**
 * The transport tunings keep the bytes on the wire intact: batched socket writes
 * arrive whole and in order, deferred Yamux window updates still go out once half
 * the window is used (and never while a flag is owed), and the quiet Noise length
 * reader decodes exactly what the throwing one did; a stream's 'idle' event is only
 * skipped while nobody listens for it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Socket } from 'node:net'
import type { Connection } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { batchSocketWrites, deferWindowUpdates, quietNoiseLengthDecoder, skipUnheardIdleEvents, tuneConnection } from '../../src/node/patches/transport-tuning.js'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import { FrameWriter, StreamReader } from '../../src/protocol/framing.js'

test('batched socket writes of one turn arrive complete and in order', async () => {
  const received: Buffer[] = []
  let done: () => void = () => {}
  const all = new Promise<void>((resolve) => { done = resolve })
  const server = createServer((s) => {
    s.on('data', (d) => {
      received.push(d)
      if (Buffer.concat(received).length >= 3000) done()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const socket: Socket = connect(port, '127.0.0.1')
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  try {
    const conn = { maConn: { socket } } as unknown as Connection
    assert.equal(batchSocketWrites(conn), true)
    assert.equal(batchSocketWrites(conn), true, 'idempotent')
    const chunks = Array.from({ length: 30 }, (_, i) => Buffer.alloc(100, i))
    for (const c of chunks) socket.write(c)
    assert.ok(socket.writableCorked > 0, 'corked until the end of the turn')
    await all
    assert.deepEqual(Buffer.concat(received), Buffer.concat(chunks))
    assert.equal(socket.writableCorked, 0)
  } finally {
    socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  assert.equal(batchSocketWrites({} as unknown as Connection), false, 'no TCP socket: left alone')
})

test('window updates are deferred to half the window, and only while established', () => {
  const sent: number[] = []
  const stream = {
    state: 3,
    recvWindow: 256 * 1024,
    recvWindowCapacity: 256 * 1024,
    sendWindowUpdate (): void { sent.push(this.recvWindow - this.recvWindowCapacity) }
  }
  assert.equal(deferWindowUpdates(stream), true)
  stream.recvWindowCapacity -= 1000
  stream.sendWindowUpdate()
  assert.deepEqual(sent, [], 'a small frame needs no update')
  stream.recvWindowCapacity = 100 * 1024
  stream.sendWindowUpdate()
  assert.deepEqual(sent, [156 * 1024], 'past half the window the library sends its update')
  stream.state = 2 // SYNReceived: the update carries the ACK flag
  stream.recvWindowCapacity = stream.recvWindow - 10
  stream.sendWindowUpdate()
  assert.equal(sent.length, 2)
  assert.equal(deferWindowUpdates({ sendWindowUpdate: () => {} }), false, 'not a yamux stream: left alone')
})

test('the quiet Noise length reader decodes like the original and waits without throwing', () => {
  const original = (data: Uint8ArrayList): number => {
    if (data.length < 2) throw new RangeError('Could not decode int16BE')
    return data.getUint16(0)
  }
  const decoder = { lengthDecoder: original, encodingLength: () => 2, maxDataLength: 4 * 1024 * 1024 }
  const conn = { muxer: { maConn: { decoder } } } as unknown as Connection
  assert.equal(quietNoiseLengthDecoder(conn), true)
  const read = decoder.lengthDecoder as (d: Uint8ArrayList) => number
  assert.equal(read(new Uint8ArrayList(Uint8Array.of(0x01, 0x02, 0xff))), 0x0102)
  // Fewer than 2 bytes: a length whose frame cannot fit, so the decoder waits for more.
  const waitLength = read(new Uint8ArrayList(Uint8Array.of(0x01)))
  assert.ok(waitLength + 2 > 1 && waitLength <= decoder.maxDataLength)
  assert.equal(read(new Uint8ArrayList()) + 2 > 0, true)
  assert.equal(quietNoiseLengthDecoder({} as unknown as Connection), false, 'no Noise decoder: left alone')
})

test('a stream\'s idle event is skipped while unheard and delivered to listeners (real js-libp2p streams)', async (t) => {
  const service = await createTaskQueueNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const client = await createTaskQueueNode()
  t.after(async () => { await client.stop(); await service.stop() })
  const PROTO = '/tq-test/idle/1.0.0'
  await service.handle(PROTO, (stream) => {
    deferWindowUpdates(stream)
    void (async () => {
      const reader = new StreamReader(stream)
      const writer = new FrameWriter(stream)
      for (;;) {
        const body = await reader.readFrame(1 << 20).catch(() => null)
        if (body === null) break
        await writer.writeJson(Buffer.from(body).toString())
      }
      await stream.close().catch(() => {})
    })()
  })
  const conn = await client.dial(service.getMultiaddrs()[0])
  tuneConnection(conn)
  const stream = await conn.newStream(PROTO)
  assert.equal(deferWindowUpdates(stream), true)
  assert.equal(skipUnheardIdleEvents(stream), true, 'idempotent')

  // Count what reaches the EventTarget underneath.
  const dispatched: string[] = []
  const target = stream as unknown as { dispatchEvent: (e: Event) => boolean }
  const dispatch = target.dispatchEvent.bind(stream)
  target.dispatchEvent = (e: Event): boolean => { dispatched.push(e.type); return dispatch(e) }

  const reader = new StreamReader(stream)
  const writer = new FrameWriter(stream)
  for (let i = 0; i < 5; i++) {
    await writer.writeJson(JSON.stringify({ i }))
    assert.deepEqual(JSON.parse(Buffer.from((await reader.readFrame(1 << 20))!).toString()), { i })
  }
  assert.ok(dispatched.includes('message'), 'other events still go out')
  assert.equal(dispatched.filter((d) => d === 'idle').length, 0, 'nobody listens: no idle event is built')

  let heard = 0
  const onIdle = (): void => { heard++ }
  stream.addEventListener('idle', onIdle)
  await writer.writeJson(JSON.stringify({ i: 5 }))
  await reader.readFrame(1 << 20)
  assert.ok(heard >= 1, 'a listener gets its idle event')
  stream.removeEventListener('idle', onIdle)
  const before = dispatched.length
  await writer.writeJson(JSON.stringify({ i: 6 }))
  await reader.readFrame(1 << 20)
  assert.equal(dispatched.slice(before).filter((d) => d === 'idle').length, 0, 'skipped again once the listener left')

  // close() waits for the write queue through 'idle': it must still finish.
  await writer.writeJson(JSON.stringify({ last: true }))
  await stream.close()
  assert.equal(stream.writeStatus, 'closed')
  assert.equal(skipUnheardIdleEvents(null), false)
  assert.equal(skipUnheardIdleEvents({}), false, 'not a message stream: left alone')
})
