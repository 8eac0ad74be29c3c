/**
 * Batches a remote worker's completes into ★ `complete_many` requests.
 *
 * One request per finished task made the reply path the worker's (and the
 * service's) main cost: a frame each way, an MCP frame-budget slot, a commit. Here
 * completes that finish in the same event-loop turn leave as one frame and commit in
 * one transaction on the service, while each caller still gets its own outcome, so
 * completeWithRetry and the lease-lost handling work per task exactly as before.
 *
 * Only used when the service lists the `complete_many` feature (status
 * `server.features`); an `unknown_op` reply (a service swapped for an older one)
 * turns batching off and the batch is resent one task at a time.
 */
import type { JsonValue } from '../protocol/types.js'
import { SERVER_FEATURE_COMPLETE_MANY } from '../protocol/ids.js'
import { ProtocolError } from '../client/errors.js'
import { TurnBatch } from '../client/turn-batch.js'

export interface CompleteItem {
  task_id: string
  worker_id: string
  status: string
  result?: JsonValue
  error?: string
  /** ★ On a failure: ask the service to retry with backoff (README). */
  retry?: boolean
}

/** What the batcher needs from the client (RemoteQueue's `request` and `status`). */
export interface CompleteManyTransport {
  status: () => Promise<Record<string, unknown>>
  request: (op: string, fields: Record<string, unknown>) => Promise<Record<string, unknown>>
}

export type ItemOutcome = { ok: true, replayed: boolean } | { ok: false, code: string, message: string, retryable: boolean }

interface Pending {
  item: CompleteItem
  size: number
  resolve: (outcome: ItemOutcome) => void
  reject: (err: unknown) => void
}

/** Under the service's 1 MiB inbound frame with room for the envelope; larger results go alone. */
const MAX_BATCH_BYTES = 256 * 1024
/** Well under the service's MAX_BATCH_ITEMS (1024). */
const MAX_BATCH_ITEMS = 256

export class CompleteBatcher {
  /** null until the feature probe answered. */
  private supported: boolean | null = null
  private probing: Promise<void> | null = null
  // Once this turn's microtasks are done: every task that finished in it shares the
  // frame, and it leaves in the same TCP write as the worker's next long-poll claim
  // (issued in the same turn), so the service wakes once for both.
  private readonly turn = new TurnBatch<Pending>((all) => { this.flush(all) })

  constructor (private readonly transport: CompleteManyTransport) {}

  /** Starts the one feature probe (cheap; called on the first claim so it is ready before completes). */
  probe (): void {
    if (this.supported !== null || this.probing !== null) return
    this.probing = this.transport.status().then((reply) => {
      const server = reply.server
      const features = typeof server === 'object' && server !== null ? (server as Record<string, unknown>).features : undefined
      this.supported = Array.isArray(features) && features.includes(SERVER_FEATURE_COMPLETE_MANY)
    }, () => {
      // Unknown for now: the next claim probes again.
    }).finally(() => { this.probing = null })
  }

  /** True when complete() should go through `submit`. */
  get enabled (): boolean {
    return this.supported === true
  }

  /**
   * Queues one complete for the next batch. Resolves with the item's own outcome;
   * rejects with the transport error when the batch could not be delivered (every
   * item of it then retries on its own schedule, and the service replays
   * completions that did land).
   */
  async submit (item: CompleteItem): Promise<ItemOutcome> {
    const size = estimateSize(item)
    return await new Promise<ItemOutcome>((resolve, reject) => { this.turn.add({ item, size, resolve, reject }) })
  }

  private flush (all: Pending[]): void {
    let batch: Pending[] = []
    let bytes = 0
    for (const p of all) {
      if (batch.length > 0 && (batch.length >= MAX_BATCH_ITEMS || bytes + p.size > MAX_BATCH_BYTES)) {
        void this.send(batch)
        batch = []
        bytes = 0
      }
      batch.push(p)
      bytes += p.size
    }
    if (batch.length > 0) void this.send(batch)
  }

  private async send (batch: Pending[]): Promise<void> {
    if (batch.length === 1 && batch[0].size > MAX_BATCH_BYTES) {
      await this.sendOne(batch[0])
      return
    }
    let reply: Record<string, unknown>
    try {
      reply = await this.transport.request('complete_many', { items: batch.map((p) => p.item) })
    } catch (err) {
      for (const p of batch) p.reject(err)
      return
    }
    if (reply.ok !== true) {
      if (reply.error === 'unknown_op') {
        this.supported = false
        await Promise.all(batch.map(async (p) => { await this.sendOne(p) }))
        return
      }
      for (const p of batch) p.resolve(failure(reply))
      return
    }
    const results = reply.results
    if (!Array.isArray(results) || results.length !== batch.length) {
      for (const p of batch) p.reject(new ProtocolError('complete_many reply does not match the request'))
      return
    }
    for (let i = 0; i < batch.length; i++) {
      const r: unknown = results[i]
      if (typeof r !== 'object' || r === null) batch[i].reject(new ProtocolError('complete_many reply item is not an object'))
      else if ((r as Record<string, unknown>).ok === true) batch[i].resolve({ ok: true, replayed: (r as Record<string, unknown>).replayed === true })
      else batch[i].resolve(failure(r as Record<string, unknown>))
    }
  }

  private async sendOne (p: Pending): Promise<void> {
    try {
      const reply = await this.transport.request('complete', { ...p.item })
      p.resolve(reply.ok === true ? { ok: true, replayed: reply.replayed === true } : failure(reply))
    } catch (err) {
      p.reject(err)
    }
  }
}

function failure (reply: Record<string, unknown>): ItemOutcome {
  const code = typeof reply.error === 'string' ? reply.error : 'remote_error'
  const detail = typeof reply.detail === 'string' ? `: ${reply.detail}` : ''
  return { ok: false, code, message: `service replied ${code}${detail}`, retryable: reply.retryable === true }
}

/** Rough JSON size of an item, for cutting batches under the frame limit. */
function estimateSize (item: CompleteItem): number {
  let n = 110 + item.task_id.length + item.worker_id.length + (item.error?.length ?? 0)
  if (item.result !== undefined && item.result !== null) {
    // UTF-16 length: at most 3 UTF-8 bytes each, so a full batch stays under 768 KiB.
    n += typeof item.result === 'string' ? item.result.length : (JSON.stringify(item.result)?.length ?? 4)
  }
  return n
}
