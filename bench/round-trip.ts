/** The submit → completed round trip that run.ts and ab.ts time. */
import type { RemoteQueue } from '../src/client/remote-queue.js'
import type { Task } from '../src/protocol/types.js'

/**
 * How the caller learns the outcome: `submit+wait` is the original protocol's two
 * requests (submit, then wait on the id it returned); `submit(wait_s)` is one submit
 * that answers once the task is terminal (★, RemoteQueue.submitAndWait).
 */
export const ROUND_TRIP_MODES = ['submit+wait', 'submit(wait_s)'] as const
export type RoundTripMode = typeof ROUND_TRIP_MODES[number]

export function isMode (s: string): s is RoundTripMode {
  return (ROUND_TRIP_MODES as readonly string[]).includes(s)
}

/**
 * `n` submit -> completed round trips of a no-op task, one after another; sorted
 * durations in ms. Each must end completed.
 */
export async function roundTrips (rq: Pick<RemoteQueue, 'submit' | 'wait' | 'submitAndWait'>, n: number, mode: RoundTripMode = 'submit+wait'): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    let task: Task | null
    if (mode === 'submit+wait') {
      const { task_id: id } = await rq.submit({ task_type: 'echo', payload: { i } })
      task = (await rq.wait(id, 30)).task
    } else {
      task = (await rq.submitAndWait({ task_type: 'echo', payload: { i } }, 30)).task
    }
    if (task?.status !== 'completed') throw new Error(`round trip ${i} (${mode}) ended ${String(task?.status)}`)
    out.push(performance.now() - t)
  }
  return out.sort((a, b) => a - b)
}

/**
 * Both modes in alternating blocks of `block`, `n` each, so a drift in the machine's
 * speed (this kind of VM swings ~2x between minutes) falls on both alike.
 */
export async function interleavedRoundTrips (rq: Pick<RemoteQueue, 'submit' | 'wait' | 'submitAndWait'>, n: number, block = 100): Promise<Record<RoundTripMode, number[]>> {
  const out: Record<RoundTripMode, number[]> = { 'submit+wait': [], 'submit(wait_s)': [] }
  for (let done = 0; done < n; done += block) {
    const size = Math.min(block, n - done)
    for (const mode of ROUND_TRIP_MODES) out[mode].push(...await roundTrips(rq, size, mode))
  }
  for (const list of Object.values(out)) list.sort((a, b) => a - b)
  return out
}
