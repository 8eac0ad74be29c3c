/** The submit → completed round trip that run.ts and ab.ts time. */
import type { RemoteQueue } from '../src/client/remote-queue.js'

/**
 * `n` submit -> wait round trips of a no-op task, one after another; sorted
 * durations in ms. Each must end completed.
 */
export async function roundTrips (rq: Pick<RemoteQueue, 'submit' | 'wait'>, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    const { task_id: id } = await rq.submit({ task_type: 'echo', payload: { i } })
    const r = await rq.wait(id, 30)
    if (r.task?.status !== 'completed') throw new Error(`task ${id} ended ${String(r.task?.status)}`)
    out.push(performance.now() - t)
  }
  return out.sort((a, b) => a - b)
}
