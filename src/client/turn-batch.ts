/**
 * Collects what is queued during one event-loop turn and hands it over together once
 * that turn's microtasks are done (process.nextTick): every caller resumed by the same
 * reply has queued its next item by then, so they can share one request.
 */
export class TurnBatch<T> {
  private pending: T[] = []
  private scheduled = false

  constructor (private readonly flush: (items: T[]) => void) {}

  add (item: T): void {
    this.pending.push(item)
    if (!this.scheduled) {
      this.scheduled = true
      process.nextTick(this.run)
    }
  }

  private readonly run = (): void => {
    this.scheduled = false
    const items = this.pending
    this.pending = []
    this.flush(items)
  }
}
