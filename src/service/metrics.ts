/**
 * The service's Prometheus metrics (issue 22), on a prom-client registry of its own
 * (never the global one, so two services in one process do not collide). libp2p's own
 * metrics (@libp2p/prometheus-metrics) register on the same registry: one /metrics.
 *
 * Counters move with the work (store change events, requests as the dispatcher answers
 * them); gauges that are a query (tasks by status, oldest waiting task, connections) are
 * read when Prometheus scrapes, so an idle service does no metrics work at all.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { ConnectionManager } from '@libp2p/interface-internal'
import { lookupOp } from '../protocol/ops.js'
import type { TaskChange } from '../store/types.js'
import type { TaskQueueService, RequestObserver } from './service.js'
import type { NatReport } from '../nat/report.js'
import { isRelayedConnection } from '../nat/addrs.js'
import type { DiscoveryAttempts } from '../discovery/attempts.js'

/** Buckets for request and commit latency: 50 µs .. 10 s. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

export interface ServiceMetricsInit {
  registry: Registry
  service: TaskQueueService
  connections: Pick<ConnectionManager, 'getConnections'>
  nat: () => NatReport
  /** The service's own discovery work (bootstrap dials, rendezvous registrations, DHT provides). */
  discoveryAttempts?: DiscoveryAttempts
}

export interface ServiceMetrics {
  readonly registry: Registry
  /** Unsubscribes from the service and takes these metrics off the registry (they may be created again). */
  stop: () => void
}

/**
 * `taskqueue_discovery_attempts_total{mechanism, action, outcome}`, read from `attempts`
 * at scrape time: a service's dials, registrations and provides, or a worker's lookups.
 */
export function discoveryAttemptsMetric (registry: Registry, attempts: DiscoveryAttempts): void {
  new Counter({
    name: 'taskqueue_discovery_attempts_total',
    help: 'Discovery attempts by mechanism (bootstrap, rendezvous, dht, announce-file, mdns, explicit), action (dial, register, provide: a service keeping itself findable; find: a client looking) and outcome (ok or the error code)',
    labelNames: ['mechanism', 'action', 'outcome'],
    registers: [registry],
    collect () {
      this.reset()
      for (const c of attempts.snapshot()) this.inc({ mechanism: c.mechanism, action: c.action, outcome: c.outcome }, c.count)
    }
  })
}

export function createServiceMetrics (init: ServiceMetricsInit): ServiceMetrics {
  const { registry, service, connections } = init
  const ctx = service.context
  const store = ctx.store
  const registers = [registry]
  const existing = new Set(registry.getMetricsAsArray().map((m) => m.name))

  // ---- counters that move with the work -------------------------------------------
  const transitions = new Counter({
    name: 'taskqueue_task_transitions_total',
    help: 'Tasks entering a status, by status and task type (queued: submits, retries and requeues; running: claims; completed/failed/cancelled: outcomes)',
    labelNames: ['status', 'task_type'],
    registers
  })
  const ops = new Counter({ name: 'taskqueue_requests_total', help: 'Requests answered, by op and outcome (ok or the error code)', labelNames: ['op', 'outcome'], registers })
  const opLatency = new Histogram({ name: 'taskqueue_request_duration_seconds', help: 'Time from a decoded request to its reply, by op', labelNames: ['op'], buckets: LATENCY_BUCKETS, registers })
  const cacheLookups = new Counter({ name: 'taskqueue_cache_lookups_total', help: 'cache.get and cache.has lookups, by result (hit or miss)', labelNames: ['result'], registers })

  const onChange = (c: TaskChange): void => { transitions.inc({ status: c.status, task_type: c.task_type }) }
  store.on('change', onChange)
  const onRequest: RequestObserver = (op, seconds, reply) => {
    const name = lookupOp(op)?.name ?? 'unknown'
    ops.inc({ op: name, outcome: reply.ok ? 'ok' : String(reply.error ?? 'error') })
    opLatency.observe({ op: name }, seconds)
    if (reply.ok && (name === 'cache.get' || name === 'cache.has')) cacheLookups.inc({ result: reply.hit === true ? 'hit' : 'miss' })
  }
  const unobserve = service.observeRequests(onRequest)
  const commitLatency = new Histogram({ name: 'taskqueue_store_commit_duration_seconds', help: 'Duration of each queue write transaction (one group commit)', buckets: LATENCY_BUCKETS, registers })
  const unobserveCommits = store.observeCommits((seconds) => commitLatency.observe(seconds))

  // ---- read at scrape time -----------------------------------------------------------
  new Gauge({
    name: 'taskqueue_tasks',
    help: 'Tasks in the queue now, by status and task type',
    labelNames: ['status', 'task_type'],
    registers,
    async collect () {
      const rows = await store.statusTypeCounts()
      this.reset()
      for (const row of rows) this.set({ status: row.status, task_type: row.task_type }, row.count)
    }
  })
  new Gauge({
    name: 'taskqueue_oldest_queued_task_age_seconds',
    help: 'Age of the oldest task waiting to be claimed (0 when none waits)',
    registers,
    async collect () { this.set(await store.oldestQueuedAgeS()) }
  })
  new Counter({
    name: 'taskqueue_lease_expiries_total',
    help: 'Leases that ran out before the worker completed or renewed them (the task was requeued or failed)',
    registers,
    collect () { this.reset(); this.inc(store.leaseExpiries) }
  })
  new Gauge({
    name: 'taskqueue_connected_peers',
    help: 'Peers connected now, by connection kind (direct or relayed)',
    labelNames: ['connection'],
    registers,
    collect () {
      let direct = 0
      let relayed = 0
      for (const c of connections.getConnections()) {
        if (isRelayedConnection(c)) relayed++
        else direct++
      }
      this.set({ connection: 'direct' }, direct)
      this.set({ connection: 'relayed' }, relayed)
    }
  })
  new Gauge({
    name: 'taskqueue_relay_reservations',
    help: 'Circuit relay reservations: held by this node on relays (held), and granted to others when it is a relay (serving)',
    labelNames: ['side'],
    registers,
    collect () {
      const relay = init.nat().relay as { reservations?: unknown[], serving?: { reservations?: number } } | undefined
      this.set({ side: 'held' }, relay?.reservations?.length ?? 0)
      this.set({ side: 'serving' }, relay?.serving?.reservations ?? 0)
    }
  })
  new Counter({
    name: 'taskqueue_relay_bytes_total',
    help: 'Bytes this node relayed for others as a circuit relay',
    registers,
    collect () {
      const relay = init.nat().relay as { serving?: { bytes_relayed?: number } } | undefined
      this.reset()
      this.inc(relay?.serving?.bytes_relayed ?? 0)
    }
  })
  if (init.discoveryAttempts !== undefined) discoveryAttemptsMetric(registry, init.discoveryAttempts)
  new Counter({
    name: 'taskqueue_refusals_total',
    help: 'Calls, streams and connections refused by access control or a per-peer limit, by reason (README "Security")',
    labelNames: ['reason'],
    registers,
    collect () {
      this.reset()
      for (const [reason, n] of Object.entries(ctx.access.refusals)) this.inc({ reason }, n)
    }
  })
  if (ctx.cache !== null) {
    const cache = ctx.cache
    new Gauge({ name: 'taskqueue_cache_entries', help: 'Entries in the cache', registers, async collect () { this.set((await cache.stats()).entries) } })
    new Gauge({ name: 'taskqueue_cache_bytes', help: 'Bytes of values in the cache', registers, async collect () { this.set((await cache.stats()).bytes) } })
    new Counter({ name: 'taskqueue_cache_evictions_total', help: 'Entries evicted to stay within CACHE_MAX_ENTRIES / CACHE_MAX_BYTES', registers, collect () { this.reset(); this.inc(cache.evictions) } })
  }
  // Ours are what this call added (libp2p's own metrics share the registry).
  const ours = registry.getMetricsAsArray().map((m) => m.name).filter((name) => !existing.has(name))
  return {
    registry,
    stop: () => {
      store.off('change', onChange)
      unobserve()
      unobserveCommits()
      for (const name of ours) registry.removeSingleMetric(name)
    }
  }
}
