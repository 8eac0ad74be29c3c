/** Test helpers for the ★ events stream: a follower that survives restarts, grouping by task, a free port. */
import { createServer } from 'node:net'
import { RemoteQueue } from '../../src/client/remote-queue.js'
import { loadSettings } from '../../src/config/index.js'
import type { TaskEvent } from '../../src/protocol/types.js'
import type { Env } from './procs.js'

export async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

export function client (env: Env, multiaddr: string): RemoteQueue {
  return new RemoteQueue({ multiaddr, settings: loadSettings(env, {}, () => {}, { role: 'client' }), addressBookPath: null })
}

/** Follows the stream from cursor 0 until `done` says so; survives the service going away. */
export class Follower {
  readonly events: TaskEvent[] = []
  cursor = 0
  gaps = 0
  private stopped = false
  readonly finished: Promise<void>

  constructor (private readonly q: RemoteQueue, private readonly done: (f: Follower) => boolean) {
    this.finished = this.run()
  }

  stop (): void { this.stopped = true }

  private async run (): Promise<void> {
    while (!this.stopped && !this.done(this)) {
      try {
        const page = await this.q.events({ cursor: this.cursor, limit: 1000, wait_s: 2 }, { timeoutMs: 20_000 })
        if (page.gap) this.gaps++
        this.events.push(...page.events)
        this.cursor = page.cursor
      } catch {
        // The service is restarting: ask again from the same cursor.
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }
}

export function byTask (events: TaskEvent[]): Map<string, TaskEvent[]> {
  const out = new Map<string, TaskEvent[]>()
  for (const e of events) {
    const list = out.get(e.task_id) ?? []
    list.push(e)
    out.set(e.task_id, list)
  }
  return out
}

