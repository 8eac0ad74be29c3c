/**
 * Every patch in src/node/patches/ reaches into a js-libp2p package's internals. This
 * test builds real nodes over TCP loopback and fails, naming the package, when one of
 * them no longer has the shape a patch needs — so an upgrade that moves a field is
 * caught here instead of silently losing the tuning (the patches themselves skip what
 * they do not recognise). The patched packages are pinned to a patch range.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Connection, Stream, Transport } from '@libp2p/interface'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { mdns } from '@libp2p/mdns'
import { pino } from 'pino'
import type { MulticastDNSComponents } from '@libp2p/mdns'
import { PATCHES, mdnsSocketOf, openOptimisticStream, reservationStoreOf } from '../../src/node/patches/index.js'
import { YAMUX_ESTABLISHED, batchSocketWrites, deferWindowUpdates, quietNoiseLengthDecoder, skipUnheardIdleEvents } from '../../src/node/patches/transport-tuning.js'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import { FrameWriter, StreamReader } from '../../src/protocol/framing.js'
import { packageRoot } from '../../src/package-root.js'

const LISTEN = ['/ip4/127.0.0.1/tcp/0']
const PROTO = '/tq-test/shape/1.0.0'
const ROOT = packageRoot(import.meta.url) ?? process.cwd()

function installed (pkg: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version
}

/** A failure message that says what to do. */
function changed (pkg: string, what: string): string {
  return `${pkg}@${installed(pkg)} changed shape: ${what} — update src/node/patches/ for this version or pin the previous one`
}

test('every patched package is a declared dependency pinned to a patch range', () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  for (const pkg of new Set(Object.values(PATCHES))) {
    const range = manifest.dependencies[pkg]
    assert.ok(range !== undefined, `${pkg} is patched but not a dependency`)
    assert.match(range, /^~\d+\.\d+\.\d+$/, `${pkg} is patched, so package.json must pin it with ~ (has ${range})`)
    const [major, minor] = range.slice(1).split('.')
    assert.ok(installed(pkg).startsWith(`${major}.${minor}.`), `${pkg}: installed ${installed(pkg)} is outside ${range}`)
  }
})

test('connection and stream internals are where the transport patches expect them (tcp, noise, yamux, utils, libp2p)', async (t) => {
  // The first node with a logger becomes the patches' debug sink.
  const lines: Array<{ patch?: string, msg?: string }> = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const service = await createTaskQueueNode({ listen: LISTEN, logger })
  const client = await createTaskQueueNode()
  t.after(async () => { await client.stop(); await service.stop() })
  const handled: Stream[] = []
  await service.handle(PROTO, (stream) => {
    handled.push(stream)
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
  const conn: Connection = await client.dial(service.getMultiaddrs()[0])
  const layers = conn as unknown as { maConn?: unknown, muxer?: { maConn?: unknown } }

  // createTaskQueueNode already applied them (applyTransportPatches); each call is idempotent and says whether it holds.
  assert.equal(batchSocketWrites(conn), true, changed('@libp2p/tcp', 'connection.maConn.socket is no net.Socket'))
  assert.equal(quietNoiseLengthDecoder(conn), true, changed('@chainsafe/libp2p-noise', 'connection.muxer.maConn.decoder is not a u16 LengthPrefixedDecoder'))
  assert.equal(skipUnheardIdleEvents(layers.maConn), true, changed('@libp2p/utils', 'the TCP message stream has no safeDispatchEvent/listenerCount'))
  assert.equal(skipUnheardIdleEvents(layers.muxer?.maConn), true, changed('@libp2p/utils', 'the Noise message stream has no safeDispatchEvent/listenerCount'))

  const stream = await conn.newStream(PROTO)
  assert.equal(deferWindowUpdates(stream), true, changed('@chainsafe/libp2p-yamux', 'a stream lacks sendWindowUpdate/recvWindow/recvWindowCapacity/state'))
  const reader = new StreamReader(stream)
  const writer = new FrameWriter(stream)
  await writer.writeJson('{"hello":1}')
  assert.deepEqual(JSON.parse(Buffer.from((await reader.readFrame(1 << 20))!).toString()), { hello: 1 })
  assert.equal((stream as unknown as { state: unknown }).state, YAMUX_ESTABLISHED,
    changed('@chainsafe/libp2p-yamux', `StreamState.Established is no longer ${YAMUX_ESTABLISHED}`))
  assert.equal(deferWindowUpdates(handled[0]), true, changed('@chainsafe/libp2p-yamux', 'an inbound stream lacks the window fields'))
  // simultaneous-open.ts: yamux takes its role from the raw connection's direction
  // (client: odd stream ids on the outbound side, server: even ones on the inbound side).
  assert.equal(Number(stream.id) % 2, 1, changed('@chainsafe/libp2p-yamux', `an outbound connection's stream id ${stream.id} is not a client's (odd)`))
  const inbound = service.getConnections(client.peerId)[0]
  const back = await inbound.newStream('/ipfs/id/1.0.0')
  assert.equal(Number(back.id) % 2, 0, changed('@chainsafe/libp2p-yamux', `an inbound connection's stream id ${back.id} is not a server's (even)`))
  back.abort(new Error('shape checked'))
  await stream.close()

  const optimistic = await openOptimisticStream(conn, PROTO)
  assert.ok(optimistic !== null, changed('libp2p', 'connection.muxer has no createStream/status'))
  await optimistic.negotiated
  await optimistic.stream.close()

  const applied = new Set(lines.filter((l) => l.msg === 'transport patch applied').map((l) => l.patch))
  for (const name of ['socket-write-batching', 'noise-quiet-length-decoder', 'unheard-idle-events', 'yamux-deferred-window-updates', 'optimistic-select']) {
    assert.ok(applied.has(name), `a debug line says ${name} applied`)
  }
})

test('the circuit relay transport keeps its reservation store where the relay keeper reads it', async (t) => {
  let manager: { getTransports: () => Transport[] } | null = null
  const node = await createTaskQueueNode({
    parts: [{
      transports: [circuitRelayTransport()],
      services: { grab: (c: { transportManager: { getTransports: () => Transport[] } }) => { manager = c.transportManager; return {} } }
    }]
  })
  t.after(async () => { await node.stop() })
  assert.ok(manager !== null)
  const store = reservationStoreOf((manager as { getTransports: () => Transport[] }).getTransports())
  assert.ok(store !== null, changed('@libp2p/circuit-relay-v2', 'no transport has a reservationStore'))
  assert.equal(typeof store.getReservation, 'function', changed('@libp2p/circuit-relay-v2', 'reservationStore.getReservation is gone'))
  assert.equal(typeof store.relayFilter?.remove, 'function', changed('@libp2p/circuit-relay-v2', 'reservationStore.relayFilter.remove is gone'))
})

test('@libp2p/mdns keeps its multicast-dns socket where the mDNS capability reads it (loopback only)', async (t) => {
  let components: MulticastDNSComponents | null = null
  const node = await createTaskQueueNode({ parts: [{ services: { grab: (c: MulticastDNSComponents) => { components = c; return {} } } }] })
  t.after(async () => { await node.stop() })
  assert.ok(components !== null)
  // A non-multicast loopback group on a high port: nothing reaches a real interface.
  const inner = mdns({ broadcast: false, interval: 2_147_483_647, port: 45353, ip: '127.0.0.1' })(components) as unknown as { start: () => Promise<void>, stop: () => Promise<void> }
  await inner.start()
  try {
    const sock = mdnsSocketOf(inner)
    assert.ok(sock !== null, changed('@libp2p/mdns', 'the started discovery has no multicast-dns socket in its mdns field'))
    sock.on('error', () => {})
  } finally {
    await inner.stop().catch(() => {})
  }
})
