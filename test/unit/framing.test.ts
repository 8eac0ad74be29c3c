/**
 * FrameWriter (frames of one turn share one stream.send) and StreamReader's event
 * path over a libp2p-like stream: same bytes, same order, same end-of-stream and
 * error semantics as reading through the stream's async iterator.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { FrameTooLargeError, FrameWriter, StreamReader, TruncatedFrameError, encodeFrame } from '../../src/protocol/framing.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

/** The parts of a libp2p v3 stream FrameWriter and StreamReader use. */
class FakeStream extends EventTarget {
  readStatus = 'readable'
  sent: Uint8Array[] = []
  full = false
  drainWaiters: Array<() => void> = []

  send (data: Uint8Array | Uint8ArrayList): boolean {
    this.sent.push(data instanceof Uint8Array ? data : data.subarray())
    return !this.full
  }

  async onDrain (): Promise<void> {
    if (!this.full) return
    await new Promise<void>((resolve) => { this.drainWaiters.push(resolve) })
  }

  drain (): void {
    this.full = false
    for (const w of this.drainWaiters.splice(0)) w()
  }

  message (bytes: Uint8Array): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data: bytes }))
  }

  closeWith (error?: Error): void {
    this.dispatchEvent(Object.assign(new Event('close'), { error }))
  }
}

const asStream = (s: FakeStream): Stream => s as unknown as Stream

test('FrameWriter sends the frames of one turn as one chunk with the bytes of separate frames', async () => {
  const s = new FakeStream()
  const w = new FrameWriter(asStream(s))
  const bodies = ['{"a":1}', '{"b":"ü"}', '{}']
  await Promise.all(bodies.map(async (b) => { await w.writeJson(b) }))
  assert.equal(s.sent.length, 1)
  const expected = Buffer.concat(bodies.map((b) => encodeFrame(enc.encode(b))))
  assert.deepEqual(Buffer.from(s.sent[0]), expected)
  await w.writeJson('{"later":true}')
  assert.equal(s.sent.length, 2, 'a later turn is a new chunk')
})

test('FrameWriter resolves only after a full stream drained', async () => {
  const s = new FakeStream()
  s.full = true
  const w = new FrameWriter(asStream(s))
  let done = false
  const p = w.writeJson('{"x":1}').then(() => { done = true })
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(s.sent.length, 1)
  assert.equal(done, false)
  s.drain()
  await p
  assert.equal(done, true)
})

test('StreamReader over stream events: frames split and joined across messages, then end', async () => {
  const s = new FakeStream()
  const r = new StreamReader(asStream(s) as unknown as AsyncIterable<Uint8Array>)
  const f1 = encodeFrame(enc.encode('{"n":1}'))
  const f2 = encodeFrame(enc.encode('{"n":2}'))
  const joined = Buffer.concat([f1, f2])
  s.message(joined.subarray(0, 3))
  const first = r.readFrame(1024)
  s.message(joined.subarray(3, 13))
  s.message(joined.subarray(13))
  assert.equal(dec.decode((await first)!), '{"n":1}')
  assert.equal(dec.decode((await r.readFrame(1024))!), '{"n":2}')
  const end = r.readFrame(1024)
  s.dispatchEvent(new Event('remoteCloseWrite'))
  assert.equal(await end, null)
})

test('StreamReader over stream events: data that arrives with the close is still read; a close error follows it', async () => {
  const s = new FakeStream()
  const r = new StreamReader(asStream(s) as unknown as AsyncIterable<Uint8Array>)
  const pending = r.readFrame(1024)
  s.message(encodeFrame(enc.encode('{"last":true}')))
  s.closeWith(new Error('reset'))
  assert.equal(dec.decode((await pending)!), '{"last":true}')
  await assert.rejects(r.readFrame(1024), /reset/)
  assert.equal(await r.readFrame(1024), null, 'the error is reported once, then end of stream')
})

test('StreamReader over a stream that is no longer readable ends at once', async () => {
  const s = new FakeStream()
  s.readStatus = 'closed'
  const r = new StreamReader(asStream(s) as unknown as AsyncIterable<Uint8Array>)
  assert.equal(await r.readFrame(1024), null)
})

test('StreamReader.takeFrame takes only whole frames, checks the limit on the header, and readFrame reports truncation', async () => {
  const s = new FakeStream()
  const r = new StreamReader(asStream(s) as unknown as AsyncIterable<Uint8Array>)
  const f1 = encodeFrame(enc.encode('{"n":1}'))
  const f2 = encodeFrame(enc.encode('{"n":2}'))
  assert.equal(r.takeFrame(1024), undefined, 'empty buffer')
  s.message(Buffer.concat([f1, f2.subarray(0, 6)]))
  assert.equal(dec.decode(r.takeFrame(1024)!), '{"n":1}')
  assert.equal(r.takeFrame(1024), undefined, 'a partial frame stays buffered')
  assert.equal(r.buffered, 6)
  s.message(f2.subarray(6))
  assert.equal(dec.decode(r.takeFrame(1024)!), '{"n":2}')
  s.message(encodeFrame(enc.encode('x'.repeat(100))).subarray(0, 4))
  assert.throws(() => r.takeFrame(50), FrameTooLargeError, 'refused on the header, before the body arrives')
  const s2 = new FakeStream()
  const r2 = new StreamReader(asStream(s2) as unknown as AsyncIterable<Uint8Array>)
  const pending = r2.readFrame(1024)
  s2.message(f1.subarray(0, 5))
  s2.dispatchEvent(new Event('remoteCloseWrite'))
  await assert.rejects(pending, TruncatedFrameError)
})
