/**
 * McpSession (client side of one MCP++ stream): pipelined calls answered in order,
 * and the per-session deadline timer — one timer for every pending call, firing for
 * the earliest deadline, failing the session as a per-call timer did.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { McpSession } from '../../src/client/mcp-session.js'
import { DeadlineError } from '../../src/client/errors.js'
import { FakeFrameStream, type Obj } from '../helpers/fake-frame-stream.js'

/** A stream whose requests the test answers by hand. */
class FakeStream extends FakeFrameStream {
  get requests (): Obj[] { return this.sent }

  reply (id: number, result: unknown): void {
    this.deliver({ jsonrpc: '2.0', id, result })
  }

  override async close (): Promise<void> { this.abort() }
}

const opts = { token: null, maxOutboundFrameBytes: 1 << 20, maxInboundFrameBytes: 1 << 20 }
const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

async function open (s: FakeStream): Promise<McpSession> {
  const opening = McpSession.open(s as unknown as Stream, opts, 1000)
  await tick()
  s.reply(s.requests[0].id, { ok: true, limits: { max_frames: 128, rate_capacity: 128, rate_refill_per_sec: 128 } })
  return await opening
}

test('pipelined calls are answered in order and leave in one send', async () => {
  const s = new FakeStream()
  const session = await open(s)
  const a = session.call({ op: 'a' }, 1000)
  const b = session.call({ op: 'b' }, 1000)
  await tick()
  assert.deepEqual(s.requests.slice(1).map((r) => r.params.arguments.op), ['a', 'b'])
  s.reply(s.requests[1].id, { content: { ok: true, n: 1 } })
  s.reply(s.requests[2].id, { content: { ok: true, n: 2 } })
  assert.deepEqual(await a, { ok: true, n: 1 })
  assert.deepEqual(await b, { ok: true, n: 2 })
  session.close()
})

test('the earliest deadline fires even behind a later one, and fails the session', async () => {
  const s = new FakeStream()
  const session = await open(s)
  const long = session.call({ op: 'long' }, 5000)
  const short = session.call({ op: 'short' }, 30)
  const started = performance.now()
  await assert.rejects(short, DeadlineError)
  assert.ok(performance.now() - started < 2000, 'fired for the short deadline')
  await assert.rejects(long, DeadlineError, 'a timed-out stream is poisoned: every pending call fails')
  assert.equal(session.usable, false)
})

test('answered calls leave no deadline behind', async () => {
  const s = new FakeStream()
  const session = await open(s)
  const p = session.call({ op: 'quick' }, 40)
  await tick()
  s.reply(s.requests[1].id, { content: { ok: true } })
  await p
  await new Promise((resolve) => setTimeout(resolve, 80))
  assert.equal(session.usable, true, 'no timeout once the reply arrived')
  const q = session.call({ op: 'next' }, 1000)
  await tick()
  s.reply(s.requests[2].id, { content: { ok: true } })
  assert.deepEqual(await q, { ok: true })
  session.close()
})
