/**
 * Change notifications between coordinators on one database: every write transaction
 * sends `pg_notify(CHANNEL, …)` with the changes it made (delivered at COMMIT, in
 * commit order, to every listening session), and each store keeps one dedicated
 * connection that LISTENs. A `complete` handled by coordinator B thereby wakes a
 * `wait` or a parked claimer on coordinator A.
 *
 * A notification carries at most 8000 bytes, so changes are packed into as many
 * notifications as needed, each a JSON `{o: origin, c: [[task_id, status, task_type,
 * kind, next_attempt_at|null], …]}`; details stay in the event log. When the listening
 * connection drops, changes may have been missed: `onGap` is called once it is back,
 * and the store wakes every waiter to look again.
 */
import pg from 'pg'
import type { TaskEventKind, TaskStatus } from '../../protocol/types.js'
import type { TaskChange } from '../types.js'

export const CHANNEL = 'taskqueue_changes'
/** Below PostgreSQL's 8000-byte payload limit, with room for the wrapper. */
const MAX_PAYLOAD = 7600

type Packed = [string, string, string, string, number | null]

/** The notification payloads for `changes` sent by `origin`. */
export function packChanges (origin: string, changes: readonly TaskChange[], resumed = false): string[] {
  const out: string[] = []
  const head = `{"o":${JSON.stringify(origin)}${resumed ? ',"r":1' : ''},"c":[`
  let body: string[] = []
  let size = head.length + 2
  for (const c of changes) {
    const item = JSON.stringify([c.task_id, c.status, c.task_type, c.kind, c.next_attempt_at ?? null] satisfies Packed)
    if (body.length > 0 && size + item.length + 1 > MAX_PAYLOAD) {
      out.push(`${head}${body.join(',')}]}`)
      body = []
      size = head.length + 2
    }
    body.push(item)
    size += item.length + 1
  }
  if (body.length > 0 || resumed) out.push(`${head}${body.join(',')}]}`)
  return out
}

export interface Notified {
  origin: string
  resumed: boolean
  changes: TaskChange[]
}

export function unpackChanges (payload: string): Notified | null {
  try {
    const v = JSON.parse(payload) as { o?: unknown, r?: unknown, c?: unknown }
    if (typeof v.o !== 'string' || !Array.isArray(v.c)) return null
    const changes: TaskChange[] = []
    for (const item of v.c as unknown[]) {
      if (!Array.isArray(item) || item.length < 4) continue
      const [taskId, status, taskType, kind, at] = item as Packed
      const change: TaskChange = { task_id: String(taskId), status: String(status) as TaskStatus, task_type: String(taskType), kind: String(kind) as TaskEventKind }
      if (typeof at === 'number') change.next_attempt_at = at
      changes.push(change)
    }
    return { origin: v.o, resumed: v.r === 1, changes }
  } catch {
    return null
  }
}

export interface ChangeListenerOptions {
  connectionString: string
  onNotify: (n: Notified) => void
  /** The connection was (re)established after a loss: changes may have been missed. */
  onGap: () => void
  onError?: (err: Error) => void
}

export class ChangeListener {
  private client: pg.Client | null = null
  private stopped = false
  private retryMs = 100
  private timer: NodeJS.Timeout | undefined
  private readonly opts: ChangeListenerOptions

  constructor (opts: ChangeListenerOptions) {
    this.opts = opts
  }

  /** Resolves once LISTEN is in place (the first time; reconnects happen in the background). */
  async start (): Promise<void> {
    this.stopped = false
    await this.connect(false)
  }

  private async connect (gap: boolean): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.connectionString })
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL || msg.payload === undefined) return
      const n = unpackChanges(msg.payload)
      if (n !== null) this.opts.onNotify(n)
    })
    client.on('error', (err) => { this.lost(client, err) })
    client.on('end', () => { this.lost(client, new Error('listening connection ended')) })
    await client.connect()
    await client.query(`LISTEN ${CHANNEL}`)
    if (this.stopped) {
      await client.end().catch(() => {})
      return
    }
    this.client = client
    this.retryMs = 100
    if (gap) this.opts.onGap()
  }

  private lost (client: pg.Client, err: Error): void {
    if (this.client !== client || this.stopped) return
    this.client = null
    this.opts.onError?.(err)
    client.end().catch(() => {})
    this.reconnectLater()
  }

  private reconnectLater (): void {
    if (this.stopped || this.timer !== undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.connect(true).catch((err: Error) => {
        this.opts.onError?.(err)
        this.retryMs = Math.min(5000, this.retryMs * 2)
        this.reconnectLater()
      })
    }, this.retryMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const c = this.client
    this.client = null
    if (c !== null) await c.end().catch(() => {})
  }
}
