/**
 * Coalesces a RemoteQueue's concurrent submits into ★ `submit_many` requests, the way
 * ioredis auto-pipelining lets BullMQ's concurrent adds share a write, but one step
 * further: the submits called in one event-loop turn (16 awaited submitters whose
 * previous submits were answered together, say) leave as one request, are parsed,
 * dispatched and committed on the service as one op, and come back as one reply,
 * instead of one of each per task. Each caller still gets its own outcome (its task
 * id, or a RemoteError with its own code), and each item keeps the idempotency key it
 * was given, so a retried request replays instead of duplicating.
 *
 * A submit alone in its turn goes as a plain `submit`, exactly as before (no added
 * latency for a sequential caller). A service that answers `unknown_op` (the original)
 * turns coalescing off for this client, and the batch is resent one submit at a time.
 */
import { RemoteError } from './errors.js'
import { TurnBatch } from './turn-batch.js'
import { submitManyChunks, submitManyResults } from './submit-batch.js'

/** RemoteQueue's `request`, with the submit retry policy applied by the caller. */
export type SubmitTransport = (op: string, fields: Record<string, unknown>) => Promise<Record<string, unknown>>

interface Pending {
  fields: Record<string, unknown>
  resolve: (reply: Record<string, unknown>) => void
  reject: (err: unknown) => void
}

export class SubmitCoalescer {
  private readonly turn = new TurnBatch<Pending>((all) => { this.flush(all) })
  /** False once the service answered `submit_many` with `unknown_op`. */
  private supported = true

  constructor (private readonly transport: SubmitTransport) {}

  /**
   * Queues one submit (its wire fields) for the end of this turn; resolves with a
   * reply shaped like `submit`'s (`{ok: true, task_id, replayed}`), rejects with
   * RemoteError for an item the service refused, or with the transport's error.
   */
  async submit (fields: Record<string, unknown>): Promise<Record<string, unknown>> {
    return await new Promise((resolve, reject) => { this.turn.add({ fields, resolve, reject }) })
  }

  private flush (all: Pending[]): void {
    if (all.length === 1 || !this.supported) {
      for (const p of all) void this.sendOne(p)
      return
    }
    const chunks = submitManyChunks(all.map((p) => p.fields))
    let at = 0
    for (const chunk of chunks) {
      void this.sendMany(all.slice(at, at + chunk.length))
      at += chunk.length
    }
  }

  private async sendOne (p: Pending): Promise<void> {
    try {
      const reply = await this.transport('submit', p.fields)
      if (reply.ok === true) p.resolve(reply)
      else p.reject(new RemoteError(reply))
    } catch (err) {
      p.reject(err)
    }
  }

  private async sendMany (batch: Pending[]): Promise<void> {
    if (batch.length === 1) {
      await this.sendOne(batch[0])
      return
    }
    let results
    try {
      const reply = await this.transport('submit_many', { items: batch.map((p) => p.fields) })
      if (reply.ok !== true && reply.error === 'unknown_op') {
        this.supported = false
        await Promise.all(batch.map(async (p) => { await this.sendOne(p) }))
        return
      }
      if (reply.ok !== true) {
        for (const p of batch) p.reject(new RemoteError(reply))
        return
      }
      results = submitManyResults(reply, batch.length)
    } catch (err) {
      for (const p of batch) p.reject(err)
      return
    }
    for (let i = 0; i < batch.length; i++) {
      const r = results[i]
      if (r.ok) batch[i].resolve({ ok: true, task_id: r.task_id, replayed: r.replayed })
      // A retryable refusal of one item (a per-peer bound such as PEER_MAX_TASKS, or
      // busy) is resent alone, so it gets the same backoff and retries as a lone submit;
      // its idempotency key makes the resend safe.
      else if (r.retryable) void this.sendOne(batch[i])
      else batch[i].reject(new RemoteError({ ...r }))
    }
  }
}
