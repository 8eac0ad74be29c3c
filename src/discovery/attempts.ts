/**
 * Discovery attempts by mechanism and outcome (issue 22), counted where they happen and
 * read by `/metrics`: a service's own discovery work (bootstrap dials, rendezvous
 * registrations, DHT provides) and a client's lookups (each attempt of its discovery
 * chain). Plain counts with no metrics library, so the client side loads nothing more;
 * the service's metrics (service/metrics.ts) turn a snapshot into a Prometheus counter.
 */
import type { DiscoveryTrace } from './types.js'

/** What the attempt tried: a client's `find`, or a service's `dial`, `register`, `provide`. */
export type DiscoveryAction = 'find' | 'dial' | 'register' | 'provide'

export interface DiscoveryAttemptCount {
  mechanism: string
  action: DiscoveryAction
  /** `ok`, or the attempt's error code (a small fixed set per mechanism). */
  outcome: string
  count: number
}

/** Chain records that say a mechanism did not run at all: not attempts. */
const NOT_RUN = new Set(['disabled', 'not_explicitly_configured', 'no_rendezvous_point', 'cancelled'])

export class DiscoveryAttempts {
  private readonly counts = new Map<string, DiscoveryAttemptCount>()

  record (mechanism: string, action: DiscoveryAction, outcome: string): void {
    const key = `${mechanism}\0${action}\0${outcome}`
    const c = this.counts.get(key)
    if (c !== undefined) c.count++
    else this.counts.set(key, { mechanism, action, outcome, count: 1 })
  }

  /** Every attempt of one run of the discovery chain, as `find`s. */
  recordTrace (trace: DiscoveryTrace): void {
    for (const a of trace.attempts) {
      if (!a.ok && NOT_RUN.has(a.error)) continue
      this.record(a.method, 'find', a.ok ? 'ok' : a.error !== '' ? a.error : 'failed')
    }
  }

  snapshot (): DiscoveryAttemptCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }))
  }
}
