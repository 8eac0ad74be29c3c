/**
 * RemoteQueue's submit coalescing (client/submit-coalescer.ts): submits of one turn
 * share a `submit_many`, each caller gets its own outcome; a lone submit stays a plain
 * `submit`; an original service (`unknown_op`) gets one submit per task from then on.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SubmitCoalescer } from '../../src/client/submit-coalescer.js'
import { DialError, RemoteError } from '../../src/client/errors.js'

type Fields = Record<string, unknown>
interface Sent { op: string, fields: Fields }

function transport (answer: (op: string, fields: Fields) => Fields | Error): { sent: Sent[], send: (op: string, fields: Fields) => Promise<Fields> } {
  const sent: Sent[] = []
  return {
    sent,
    send: async (op, fields) => {
      sent.push({ op, fields })
      await new Promise((resolve) => setImmediate(resolve))
      const r = answer(op, fields)
      if (r instanceof Error) throw r
      return r
    }
  }
}

const item = (n: number): Fields => ({ task_type: 't', model_name: '', payload: { n, idempotency_key: `k${n}` } })
const keyOf = (f: Fields): string => String((f.payload as Fields).idempotency_key)

test('submits of one turn leave as one submit_many, in order, each with its own outcome', async () => {
  const t = transport((op, fields) => {
    assert.equal(op, 'submit_many')
    return { ok: true, results: (fields.items as Fields[]).map((f) => keyOf(f) === 'k2' ? { ok: false, task_id: '', error: 'idempotency_conflict', retryable: false } : { ok: true, task_id: `id-${keyOf(f)}`, replayed: false }) }
  })
  const c = new SubmitCoalescer(t.send)
  const calls = [0, 1, 2, 3, 4].map(async (n) => await c.submit(item(n)))
  const settled = await Promise.allSettled(calls)
  assert.equal(t.sent.length, 1)
  assert.deepEqual((t.sent[0].fields.items as Fields[]).map(keyOf), ['k0', 'k1', 'k2', 'k3', 'k4'])
  assert.deepEqual(settled.map((s) => s.status === 'fulfilled' ? s.value.task_id : (s.reason as RemoteError).code),
    ['id-k0', 'id-k1', 'idempotency_conflict', 'id-k3', 'id-k4'])
  assert.ok(settled[2].status === 'rejected' && settled[2].reason instanceof RemoteError)

  // Callers resumed by that reply submit again in one turn: one request again.
  await Promise.all([5, 6, 7].map(async (n) => await c.submit(item(n))))
  assert.equal(t.sent.length, 2)
})

test('an item refused as retryable (a per-peer bound) is resent alone, with the retries of a lone submit', async () => {
  let refusals = 0
  const t = transport((op, fields) => {
    if (op === 'submit_many') {
      return { ok: true, results: (fields.items as Fields[]).map((f) => keyOf(f) === 'k1' ? { ok: false, task_id: '', error: 'rate_limited', limit: 'PEER_MAX_TASKS', retryable: true } : { ok: true, task_id: `id-${keyOf(f)}`, replayed: false }) }
    }
    // The lone resend: refused once more (the caller's transport retries are not ours), then taken.
    if (keyOf(fields) === 'k1' && refusals++ === 0) return { ok: false, error: 'rate_limited', limit: 'PEER_MAX_TASKS', retryable: true }
    return { ok: true, task_id: `id-${keyOf(fields)}`, replayed: false }
  })
  const c = new SubmitCoalescer(t.send)
  const settled = await Promise.allSettled([0, 1, 2].map(async (n) => await c.submit(item(n))))
  assert.deepEqual(t.sent.map((s) => s.op), ['submit_many', 'submit'])
  assert.equal(keyOf(t.sent[1].fields), 'k1', 'resent with its own idempotency key')
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled'])
  const err = (settled[1] as PromiseRejectedResult).reason as RemoteError
  assert.equal(err.code, 'rate_limited')
  assert.equal(err.reply.limit, 'PEER_MAX_TASKS', 'the refusal names the bound')
  assert.equal((await c.submit(item(1))).task_id, 'id-k1')
})

test('a lone submit is a plain submit; a refused one rejects with its code', async () => {
  const t = transport((op, fields) => keyOf(fields) === 'k9' ? { ok: false, error: 'unauthorized' } : { ok: true, task_id: 'x', replayed: true })
  const c = new SubmitCoalescer(t.send)
  assert.deepEqual(await c.submit(item(1)), { ok: true, task_id: 'x', replayed: true })
  await assert.rejects(c.submit(item(9)), (err: unknown) => err instanceof RemoteError && err.code === 'unauthorized')
  assert.deepEqual(t.sent.map((s) => s.op), ['submit', 'submit'])
})

test('unknown_op (an original service): the batch is resent one by one, and coalescing stays off', async () => {
  const t = transport((op, fields) => op === 'submit_many' ? { ok: false, error: 'unknown_op' } : { ok: true, task_id: `id-${keyOf(fields)}`, replayed: false })
  const c = new SubmitCoalescer(t.send)
  const first = await Promise.all([1, 2].map(async (n) => await c.submit(item(n))))
  assert.deepEqual(first.map((r) => r.task_id), ['id-k1', 'id-k2'])
  await Promise.all([3, 4].map(async (n) => await c.submit(item(n))))
  assert.deepEqual(t.sent.map((s) => s.op), ['submit_many', 'submit', 'submit', 'submit', 'submit'])
})

test('a request that fails as a whole fails every submit in it', async () => {
  const t = transport(() => new DialError('connection lost', { sent: true }))
  const c = new SubmitCoalescer(t.send)
  const settled = await Promise.allSettled([1, 2, 3].map(async (n) => await c.submit(item(n))))
  assert.ok(settled.every((s) => s.status === 'rejected' && s.reason instanceof DialError))
  const busy = new SubmitCoalescer(transport(() => ({ ok: false, error: 'busy', retryable: true })).send)
  const both = await Promise.allSettled([1, 2].map(async (n) => await busy.submit(item(n))))
  assert.ok(both.every((s) => s.status === 'rejected' && (s.reason as RemoteError).code === 'busy'))
})
