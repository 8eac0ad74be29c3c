/**
 * The client's first call on a new connection: the MCP stream is negotiated
 * optimistically and the call is pipelined behind `initialize` (one round trip after
 * the connection, not three), a refusal still moves on to the next protocol, an
 * initialize failure is the error reported, and identify waits until the link is idle.
 * The service side here is a scripted MCP peer on an in-process libp2p node.
 */
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { UnsupportedProtocolError } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { createTaskQueueNode } from '../../src/node/create-node.js'
import type { TaskQueueNode } from '../../src/node/create-node.js'
import { PeerLink } from '../../src/client/peer-link.js'
import type { WireProtocol } from '../../src/client/peer-link.js'
import { ProtocolError, ProtocolNotSupportedError } from '../../src/client/errors.js'
import { NegotiationError, openOptimisticStream } from '../../src/node/patches/optimistic-select.js'
import { okReply, scriptedMcpPeer } from '../helpers/scripted-mcp-peer.js'
import { IDENTIFY_HOLD_MAX_MS } from '../../src/node/identify-scheduler.js'
import { LEGACY_PROTOCOL, MCP_PROTOCOL } from '../../src/protocol/ids.js'
import { StreamReader, encodeLine } from '../../src/protocol/framing.js'

const LISTEN = ['/ip4/127.0.0.1/tcp/0']
type Obj = Record<string, any>

async function client (t: TestContext, peer: TaskQueueNode, protocols: WireProtocol[] = ['mcp']): Promise<{ node: TaskQueueNode, link: PeerLink }> {
  const node = await createTaskQueueNode()
  const link = new PeerLink(node, peer.getMultiaddrs(), { protocols, token: null, maxOutboundFrameBytes: 1 << 20, maxInboundFrameBytes: 1 << 24 })
  t.after(async () => {
    link.close()
    await node.stop()
  })
  return { node, link }
}

test('the first call leaves behind initialize, without waiting for it, and the session is reused', async (t) => {
  const peer = await scriptedMcpPeer(t)
  const { link } = await client(t, peer.node)
  const first = await link.call({ op: 'status' }, { timeoutMs: 5000 })
  assert.deepEqual(first, { ok: true, echo: { op: 'status' } })
  assert.equal(peer.seen[0].method, 'initialize')
  assert.equal(peer.seen[1].method, 'tools/call')
  assert.ok(peer.seen[0].buffered > 0, 'the call was already there when initialize was read')
  assert.deepEqual(await link.call({ op: 'get', task_id: 'x' }, { timeoutMs: 5000 }), { ok: true, echo: { op: 'get', task_id: 'x' } })
  assert.equal(peer.streams, 1, 'one MCP stream for both calls')
  assert.equal(peer.seen.length, 3)
})

test('a blocking first call gets its own pipelined session', async (t) => {
  const peer = await scriptedMcpPeer(t)
  const { link } = await client(t, peer.node)
  assert.deepEqual(await link.call({ op: 'wait', task_id: 'x' }, { timeoutMs: 5000, exclusive: true }), { ok: true, echo: { op: 'wait', task_id: 'x' } })
  assert.deepEqual(peer.seen.map((s) => s.method), ['initialize', 'tools/call'])
})

test('a peer that refuses the MCP protocol is tried with the next one; with none left it is protocol_not_supported', async (t) => {
  const node = await createTaskQueueNode({ listen: LISTEN })
  t.after(async () => { await node.stop() })
  const legacyRequests: string[] = []
  await node.handle(LEGACY_PROTOCOL, (stream: Stream) => {
    void (async () => {
      const line = await new StreamReader(stream).readLine(1 << 20)
      legacyRequests.push(Buffer.from(line ?? new Uint8Array()).toString())
      stream.send(encodeLine(Buffer.from(JSON.stringify({ ok: true, via: 'legacy' }))))
      await stream.close()
    })()
  })
  const both = await client(t, node, ['mcp', 'legacy'])
  assert.deepEqual(await both.link.call({ op: 'status' }, { timeoutMs: 5000 }), { ok: true, via: 'legacy' })
  assert.deepEqual(legacyRequests, ['{"op":"status"}'], 'the MCP bytes sent behind the refused proposal were never handled')
  const mcpOnly = await client(t, node, ['mcp'])
  await assert.rejects(mcpOnly.link.call({ op: 'status' }, { timeoutMs: 5000 }), ProtocolNotSupportedError)
})

test('a failed initialize is the error reported, not the pipelined call behind it', async (t) => {
  const peer = await scriptedMcpPeer(t, (req) => req.method === 'initialize'
    ? { error: { code: -32099, message: 'init refused' } }
    : { error: { code: -32000, message: 'init_required' } })
  const { link } = await client(t, peer.node)
  await assert.rejects(link.call({ op: 'status' }, { timeoutMs: 5000 }), (err: Error) => {
    assert.ok(err instanceof ProtocolError)
    assert.match(err.message, /-32099: init refused/)
    return true
  })
})

test('identify of the peer waits while the first calls are in flight, then runs', async (t) => {
  let replied = 0
  const peer = await scriptedMcpPeer(t, async (req) => {
    if (req.method === 'tools/call') {
      await new Promise((resolve) => setTimeout(resolve, 150))
      replied = performance.now()
    }
    return okReply(req)
  })
  const { node, link } = await client(t, peer.node)
  const identified = new Promise<number>((resolve) => {
    node.addEventListener('peer:identify', (evt) => {
      if (evt.detail.peerId.equals(peer.node.peerId)) resolve(performance.now())
    })
  })
  // As RemoteQueue does after a discovery probe: the real request right after the status.
  await link.call({ op: 'status' }, { timeoutMs: 5000 })
  await link.call({ op: 'get', task_id: 'x' }, { timeoutMs: 5000 })
  const at = await identified
  assert.ok(at >= replied, 'identify completed only after the second reply was sent')
  assert.ok((await node.peerStore.get(peer.node.peerId)).protocols.includes(MCP_PROTOCOL), 'and it recorded the peer\'s protocols')
})

test('a link that stays busy still has its peer identified, after at most IDENTIFY_HOLD_MAX_MS', async (t) => {
  const peer = await scriptedMcpPeer(t, async (req) => {
    if (req.method === 'tools/call') await new Promise((resolve) => setTimeout(resolve, IDENTIFY_HOLD_MAX_MS + 1000))
    return okReply(req)
  })
  const { node, link } = await client(t, peer.node)
  const started = performance.now()
  const identified = new Promise<number>((resolve) => {
    node.addEventListener('peer:identify', (evt) => {
      if (evt.detail.peerId.equals(peer.node.peerId)) resolve(performance.now())
    })
  })
  const call = link.call({ op: 'wait', task_id: 'x' }, { timeoutMs: 10_000, exclusive: true })
  const at = await identified
  assert.ok(at - started >= IDENTIFY_HOLD_MAX_MS - 50 && at - started < IDENTIFY_HOLD_MAX_MS + 900, `identified after ${Math.round(at - started)} ms, while the call was still in flight`)
  await call
})

// ---- optimistic-select on a scripted stream ------------------------------------------

class FakeStream extends EventTarget {
  protocol = ''
  status = 'open'
  sent: Uint8Array[] = []
  aborted: Error | null = null
  send (data: Uint8Array | Uint8ArrayList): boolean {
    this.sent.push(data.subarray())
    return true
  }

  abort (err: Error): void {
    this.aborted = err
    this.status = 'aborted'
    this.dispatchEvent(Object.assign(new Event('close'), { error: err }))
  }

  deliver (bytes: Uint8Array): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data: new Uint8ArrayList(bytes) }))
  }
}

async function fakeOpen (): Promise<{ stream: FakeStream, negotiated: Promise<void>, received: number[] }> {
  const stream = new FakeStream()
  const conn = { status: 'open', muxer: { status: 'open', createStream: async () => stream } }
  const opened = await openOptimisticStream(conn as never, MCP_PROTOCOL)
  assert.ok(opened !== null)
  const received: number[] = []
  // The session's reader, registered after the negotiation's listener.
  stream.addEventListener('message', (evt) => { received.push(...(evt as Event & { data: Uint8ArrayList }).data.subarray()) })
  opened.negotiated.catch(() => {})
  return { stream, negotiated: opened.negotiated, received }
}

const line = (text: string): Uint8Array => Uint8Array.from([text.length + 1, ...Buffer.from(`${text}\n`)])

test('optimistic select sends header and protocol at once and strips the echo, however it is split', async () => {
  const { stream, negotiated, received } = await fakeOpen()
  assert.equal(stream.protocol, MCP_PROTOCOL)
  assert.deepEqual(Buffer.concat(stream.sent), Buffer.concat([line('/multistream/1.0.0'), line(MCP_PROTOCOL)]))
  const echo = Buffer.concat([line('/multistream/1.0.0'), line(MCP_PROTOCOL), Buffer.from([0, 0, 0, 2, 0x7b, 0x7d])])
  for (let i = 0; i < echo.length - 6; i++) stream.deliver(echo.subarray(i, i + 1))
  stream.deliver(echo.subarray(echo.length - 6))
  await negotiated
  assert.deepEqual(received, [0, 0, 0, 2, 0x7b, 0x7d], 'only what follows the echo reaches the session')
  stream.deliver(Uint8Array.from([1, 2]))
  assert.deepEqual(received.slice(-2), [1, 2], 'later data passes untouched')
})

test('optimistic select: a refusal rejects and aborts; so do garbage and an early close', async () => {
  const refused = await fakeOpen()
  refused.stream.deliver(Buffer.concat([line('/multistream/1.0.0'), line('na')]))
  await assert.rejects(refused.negotiated, UnsupportedProtocolError)
  assert.ok(refused.stream.aborted !== null)
  assert.deepEqual(refused.received, [])

  const garbage = await fakeOpen()
  garbage.stream.deliver(Uint8Array.from([0, 0, 0, 2]))
  await assert.rejects(garbage.negotiated, NegotiationError)

  const closed = await fakeOpen()
  closed.stream.abort(new Error('reset'))
  await assert.rejects(closed.negotiated, NegotiationError)
})
