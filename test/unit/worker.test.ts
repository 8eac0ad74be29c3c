import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { openDatabase, QueueStore, type ClaimedTask, type JsonObject, type Task } from '../../src/store/index.js'
import {
  BackendError, FinalError, LocalBackend, Worker, LeaseLostError, WorkerShutdownError,
  type BackendClaimOptions, type BackendCompleteOptions, type BackendHeartbeatOptions, type HandlerMap, type QueueBackend, type WorkerOptions
} from '../../src/worker/index.js'

interface Fixture {
  path: string
  db: DatabaseSync
  /** The "serve" side: its own connection to the file. */
  store: QueueStore
  /** The worker side: a second connection, as `worker --queue` opens it. */
  backend: LocalBackend
  submit: (taskType: string, payload?: JsonObject) => string
  get: (id: string) => Task
  close: () => Promise<void>
}

function fixture (): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'tq-worker-'))
  const path = join(dir, 'queue.sqlite3')
  const db = openDatabase(path)
  const store = new QueueStore({ db, leaseS: 300, peerTimeoutS: 300, stealAfterS: 30, deterministic: false })
  const backend = LocalBackend.open(path, { minLeaseS: 1 })
  return {
    path,
    db,
    store,
    backend,
    submit: (taskType, payload = {}) => store.submit({
      task_type: taskType, model_name: '', payload, priority: 5, max_attempts: 3, next_attempt_at: 0, idempotency_key: null
    }).task_id,
    get: (id) => {
      const t = store.get(id)
      assert.ok(t !== null, `task ${id} exists`)
      return t
    },
    close: async () => {
      await backend.close()
      db.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

async function until (cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function worker (backend: QueueBackend, handlers: HandlerMap, over: Partial<WorkerOptions> = {}): Worker {
  return new Worker({ backend, workerId: 'w1', handlers, leaseS: 30, waitS: 5, ...over })
}

const delay = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Records claim sizes around a real backend. */
class RecordingBackend implements QueueBackend {
  readonly kind = 'recording'
  readonly claims: number[] = []
  constructor (readonly inner: QueueBackend) {}
  async claim (opts: BackendClaimOptions): Promise<ClaimedTask[]> {
    this.claims.push(opts.maxTasks)
    return await this.inner.claim(opts)
  }

  complete = async (o: BackendCompleteOptions): Promise<{ replayed: boolean }> => await this.inner.complete(o)
  release: QueueBackend['release'] = async (o) => { await this.inner.release(o) }
  heartbeat: QueueBackend['heartbeat'] = async (o) => await this.inner.heartbeat(o)
  close = async (): Promise<void> => {}
}

test('runs many tasks in parallel, never above the concurrency', async () => {
  const f = fixture()
  let inflight = 0
  let peak = 0
  const w = worker(f.backend, {
    work: async (task) => {
      inflight++
      peak = Math.max(peak, inflight)
      await delay(40)
      inflight--
      return { doubled: Number(task.payload.n) * 2 }
    }
  }, { concurrency: 3, batch: 3 })
  try {
    const ids = Array.from({ length: 12 }, (_, n) => f.submit('work', { n }))
    await w.start()
    await until(() => ids.every((id) => f.get(id).status === 'completed'), 10_000, 'all completed')
    ids.forEach((id, n) => {
      const t = f.get(id)
      assert.deepEqual(t.result, { doubled: n * 2 })
      assert.equal(t.assigned_worker, 'w1')
    })
    assert.ok(peak <= 3, `peak ${peak} ≤ 3`)
    assert.ok(peak >= 2, `ran in parallel (peak ${peak})`)
    assert.equal(w.stats.completed, 12)
    assert.equal(w.stats.claimed, 12)
  } finally {
    await w.stop()
    await f.close()
  }
})

test('a thrown FinalError completes the task as failed with its message; plain values are wrapped', async () => {
  const f = fixture()
  const w = worker(f.backend, {
    boom: () => { throw new FinalError('boom 42') },
    num: () => 7,
    nothing: () => undefined
  }, { concurrency: 2 })
  try {
    const a = f.submit('boom')
    const b = f.submit('num')
    const c = f.submit('nothing')
    await w.start()
    await until(() => [a, b, c].every((id) => f.get(id).status !== 'queued' && f.get(id).status !== 'running'))
    assert.equal(f.get(a).status, 'failed')
    assert.equal(f.get(a).error, 'boom 42')
    assert.equal(f.get(b).status, 'completed')
    assert.deepEqual(f.get(b).result, { result: 7 })
    assert.equal(f.get(c).status, 'completed')
    assert.equal(w.stats.failed, 1)
    assert.equal(w.stats.completed, 2)
  } finally {
    await w.stop()
    await f.close()
  }
})

test('lease renewal keeps a task longer than its lease from being reclaimed', async () => {
  const f = fixture()
  const w = worker(f.backend, { long: async () => { await delay(2500); return { done: true } } }, { leaseS: 1 })
  try {
    const id = f.submit('long')
    await w.start()
    await until(() => f.get(id).status === 'running')
    const firstBeat = f.get(id).heartbeat_at ?? 0
    let stolen = 0
    while (f.get(id).status === 'running') {
      // Another worker claiming from the serve side expires stale leases first.
      stolen += f.store.claim({
        worker_id: 'thief', peer_key: 'thief', session: '', task_types: null, lease_s: 60, max_tasks: 1,
        same_task_type: false, transport_peer_id: '', peer_hint: ''
      }).length
      await delay(100)
    }
    const t = f.get(id)
    assert.equal(stolen, 0)
    assert.equal(t.status, 'completed')
    assert.equal(t.attempt, 1)
    assert.equal(t.assigned_worker, 'w1')
    assert.ok((t.heartbeat_at ?? 0) > firstBeat + 1, 'lease was renewed')
  } finally {
    await w.stop()
    await f.close()
  }
})

test('a refused renewal aborts the handler and its result is dropped', async () => {
  const f = fixture()
  let reason: unknown
  const w = worker(f.backend, {
    stuck: async (_task, ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))
      reason = ctx.signal.reason
      return { late: true }
    }
  }, { leaseS: 1 })
  try {
    const id = f.submit('stuck')
    await w.start()
    await until(() => f.get(id).status === 'running')
    // Someone else finishes the task (an operator, or an expired lease re-run elsewhere).
    f.store.complete({ task_id: id, status: 'failed', result: null, error: 'taken away', worker_id: '' })
    await until(() => w.stats.lost === 1, 3000, 'lease loss')
    await until(() => w.stats.running === 0)
    assert.ok(reason instanceof LeaseLostError)
    const t = f.get(id)
    assert.equal(t.status, 'failed')
    assert.equal(t.error, 'taken away')
    assert.equal(w.stats.completed, 0)
  } finally {
    await w.stop()
    await f.close()
  }
})

test('stop() lets quick handlers finish and releases the rest for immediate reclaim', async () => {
  const f = fixture()
  const reasons: unknown[] = []
  const w = worker(f.backend, {
    forever: async (_task, ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))
      reasons.push(ctx.signal.reason)
      throw new Error('aborted')
    },
    quick: async () => { await delay(50); return { ok: 1 } }
  }, { concurrency: 3, batch: 3 })
  try {
    const slow = [f.submit('forever'), f.submit('forever')]
    const fast = f.submit('quick')
    await w.start()
    await until(() => w.stats.running === 3 || f.get(fast).status === 'completed')
    await until(() => slow.every((id) => f.get(id).status === 'running'))
    const t0 = Date.now()
    await w.stop({ graceMs: 300 })
    assert.ok(Date.now() - t0 < 2000, 'stop is bounded by the grace period')
    assert.equal(f.get(fast).status, 'completed')
    for (const id of slow) {
      const t = f.get(id)
      assert.equal(t.status, 'queued')
      assert.equal(t.assigned_worker, null)
      assert.equal(t.attempt, 0, 'release gives the attempt back')
      const progress = (t.result as JsonObject).progress as JsonObject
      assert.equal(progress.last_release_reason, 'worker_shutdown')
    }
    assert.equal(w.stats.released, 2)
    assert.equal(w.stats.failed, 0, 'abandoned handlers do not complete')
    assert.equal(reasons.length, 2)
    assert.ok(reasons.every((r) => r instanceof WorkerShutdownError))
    assert.equal(w.isStarted(), false)
    // Immediately claimable again.
    const again = f.store.claim({
      worker_id: 'w2', peer_key: 'w2', session: '', task_types: null, lease_s: 60, max_tasks: 5,
      same_task_type: false, transport_peer_id: '', peer_hint: ''
    })
    assert.equal(again.length, 2)
  } finally {
    await w.stop()
    await f.close()
  }
})

test('batch claims never ask for more than the free slots', async () => {
  const f = fixture()
  const rec = new RecordingBackend(f.backend)
  let inflight = 0
  let peak = 0
  const w = worker(rec, {
    job: async () => {
      inflight++
      peak = Math.max(peak, inflight)
      await delay(30)
      inflight--
      return null
    }
  }, { concurrency: 2, batch: 8 })
  try {
    const ids = Array.from({ length: 7 }, () => f.submit('job'))
    await w.start()
    await until(() => ids.every((id) => f.get(id).status === 'completed'))
    assert.ok(rec.claims.length > 0)
    assert.ok(rec.claims.every((n) => n >= 1 && n <= 2), `claim sizes ${rec.claims.join(',')}`)
    assert.ok(rec.claims.includes(2), 'uses the batch when slots allow')
    assert.ok(peak <= 2)
  } finally {
    await w.stop()
    await f.close()
  }
})

test('an idle worker picks up new work within milliseconds, and stop() ends the wait at once', async () => {
  const f = fixture()
  const w = worker(f.backend, { ping: () => ({ pong: true }) }, { waitS: 30 })
  try {
    await w.start()
    await delay(200)
    const t0 = Date.now()
    const id = f.submit('ping')
    await until(() => f.get(id).status === 'completed', 3000)
    assert.ok(Date.now() - t0 < 1000, `picked up after ${Date.now() - t0} ms`)
    const t1 = Date.now()
    await w.stop()
    assert.ok(Date.now() - t1 < 500, 'stop does not wait out the long-poll')
  } finally {
    await w.stop()
    await f.close()
  }
})

test('task types: aliases are claimed and dispatched; an allowlist narrows the handler types', async () => {
  const f = fixture()
  const w = worker(f.backend, { text_generation: (t) => ({ got: t.task_type }), other: () => null }, { taskTypes: ['text-generation', 'nope'] })
  try {
    assert.ok(w.taskTypes.includes('generation'))
    assert.ok(!w.taskTypes.includes('other'))
    assert.throws(() => worker(f.backend, { a: () => null }, { taskTypes: ['b'] }), RangeError)
    const gen = f.submit('Generation')
    const other = f.submit('other')
    await w.start()
    await until(() => f.get(gen).status === 'completed')
    assert.deepEqual(f.get(gen).result, { got: 'Generation' })
    await delay(100)
    assert.equal(f.get(other).status, 'queued', 'types outside the allowlist stay queued')
  } finally {
    await w.stop()
    await f.close()
  }
})

test('once runs a single batch, then resolves done', async () => {
  const f = fixture()
  const w = worker(f.backend, { job: () => ({ ok: true }) }, { once: true, batch: 2, concurrency: 2 })
  try {
    const ids = [f.submit('job'), f.submit('job'), f.submit('job')]
    await w.start()
    const r = await w.done
    assert.deepEqual(r, { reachable: true, claimed: 2, error: null })
    assert.equal(ids.filter((id) => f.get(id).status === 'completed').length, 2)
    assert.equal(ids.filter((id) => f.get(id).status === 'queued').length, 1)
    assert.equal(w.isStarted(), false)
  } finally {
    await f.close()
  }
})

/** A scripted backend: hands out the given tasks once, records completes. */
class ScriptedBackend implements QueueBackend {
  readonly kind = 'scripted'
  readonly completes: BackendCompleteOptions[] = []
  constructor (private tasks: ClaimedTask[], private readonly claimError: BackendError | null = null) {}
  async claim (opts: BackendClaimOptions): Promise<ClaimedTask[]> {
    if (this.claimError !== null) throw this.claimError
    const out = this.tasks.splice(0, opts.maxTasks)
    if (out.length === 0 && opts.waitS > 0) await new Promise((resolve) => opts.signal?.addEventListener('abort', resolve, { once: true }))
    return out
  }

  async complete (o: BackendCompleteOptions): Promise<{ replayed: boolean }> { this.completes.push(o); return { replayed: false } }
  async release (): Promise<void> {}
  async heartbeat (_o: BackendHeartbeatOptions): Promise<{ lease_until: number }> { return { lease_until: Date.now() / 1000 + 30 } }
  async close (): Promise<void> {}
}

function claimed (taskType: string): ClaimedTask {
  return {
    task_id: 'a'.repeat(32), task_type: taskType, model_name: '', payload: {}, created_at: 0, status: 'running',
    assigned_worker: 'w1', lease_until: 0, attempt: 1, max_attempts: 3, priority: 5
  }
}

test('a task of a type without handler completes as failed, with worker_id', async () => {
  const b = new ScriptedBackend([claimed('mystery')])
  const w = worker(b, { echo: (t) => t.payload })
  try {
    await w.start()
    await until(() => b.completes.length === 1)
    const c = b.completes[0]
    assert.equal(c.status, 'failed')
    assert.equal(c.workerId, 'w1')
    assert.match(c.error ?? '', /no handler for task type "mystery"/)
  } finally {
    await w.stop()
  }
})

test('a thrown error asks for a retry (retry: true); a FinalError or an error with retry:false does not', async () => {
  const final = Object.assign(new Error('plain but final'), { retry: false })
  const b = new ScriptedBackend([claimed('boom'), { ...claimed('fin'), task_id: 'b'.repeat(32) }, { ...claimed('dup'), task_id: 'c'.repeat(32) }])
  const w = worker(b, { boom: () => { throw new Error('try again') }, fin: () => { throw new FinalError('never') }, dup: () => { throw final } }, { concurrency: 3, batch: 3 })
  try {
    await w.start()
    await until(() => b.completes.length === 3)
    const byType = (id: string): BackendCompleteOptions | undefined => b.completes.find((c) => c.taskId === id)
    assert.equal(byType('a'.repeat(32))?.retry, true)
    assert.equal(byType('b'.repeat(32))?.retry, false)
    assert.equal(byType('c'.repeat(32))?.retry, false)
  } finally {
    await w.stop()
  }
})

test('the worker renews on the lease the service granted, not the one it asked for', async () => {
  const b = new ScriptedBackend([{ ...claimed('slow'), lease_s: 0.3 }])
  const leases: number[] = []
  b.heartbeat = async (o) => { leases.push(o.leaseS); return { lease_until: Date.now() / 1000 + 1 } }
  const w = worker(b, { slow: async () => { await delay(600); return {} } }, { leaseS: 30 })
  try {
    await w.start()
    await until(() => b.completes.length === 1)
    assert.ok(leases.length >= 1, 'renewed within the granted 0.3 s lease, not after 10 s')
    assert.ok(leases.every((l) => l === 0.3), JSON.stringify(leases))
  } finally {
    await w.stop()
  }
})

test('once against an unreachable queue reports reachable:false', async () => {
  const b = new ScriptedBackend([], new BackendError('dial_failed', 'connection refused', { transient: true, unreachable: true }))
  const w = worker(b, { echo: (t) => t.payload }, { once: true })
  await w.start()
  const r = await w.done
  assert.equal(r.reachable, false)
  assert.equal(r.claimed, 0)
  assert.match(r.error ?? '', /connection refused/)
})

test('transport errors in the claim loop are retried with backoff', async () => {
  let calls = 0
  const inner = new ScriptedBackend([claimed('echo')])
  const flaky: QueueBackend = {
    kind: 'flaky',
    claim: async (o) => {
      if (++calls <= 2) throw new BackendError('dial_failed', 'down', { transient: true, unreachable: true })
      return await inner.claim(o)
    },
    complete: async (o) => await inner.complete(o),
    release: async (o) => { await inner.release() },
    heartbeat: async (o) => await inner.heartbeat(o),
    close: async () => {}
  }
  const w = worker(flaky, { echo: () => ({ ok: true }) })
  try {
    await w.start()
    await until(() => inner.completes.length === 1, 5000)
    assert.equal(w.stats.claimErrors, 2)
    assert.equal(inner.completes[0].status, 'completed')
  } finally {
    await w.stop()
  }
})

test('progress reports are coalesced into result.progress and kept after completion', async () => {
  const f = fixture()
  let seenWhileRunning: unknown = null
  let id = ''
  const w = worker(f.backend, {
    steps: async (_task, ctx) => {
      ctx.progress({ step: 1 })
      ctx.progress({ pct: 50 })
      await delay(200)
      seenWhileRunning = (f.get(id).result as JsonObject | null)?.progress ?? null
      ctx.progress({ pct: 100 })
      return { ok: true }
    }
  }, { progressFlushMs: 20 })
  try {
    id = f.submit('steps')
    await w.start()
    await until(() => f.get(id).status === 'completed')
    assert.deepEqual(seenWhileRunning, { step: 1, pct: 50 })
    assert.deepEqual(f.get(id).result, { progress: { step: 1, pct: 100 }, ok: true })
  } finally {
    await w.stop()
    await f.close()
  }
})
