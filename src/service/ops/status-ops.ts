/** The status reply (wire-protocol.md §8). */
import { truthy } from '../../protocol/coerce.js'
import type { Envelope } from '../../protocol/coerce.js'
import { SERVER_FEATURES } from '../../protocol/ids.js'
import { canonicalTaskType } from '../../store/aliases.js'
import { SCHEDULER_CLOCK } from '../../store/scheduler.js'
import { IMPL_NAME, VERSION } from '../../version.js'
import type { Reply, ServiceContext } from '../context.js'

/** Most entries of `scheduler.known_peers` / `known_workers` in a status detail reply. */
export const KNOWN_PEERS_IN_STATUS = 256

const DOCKER_TYPES = new Set(['docker.execute', 'docker.execute_docker_container', 'docker.github'])

export async function status (env: Envelope, ctx: ServiceContext): Promise<Reply> {
  const now = Date.now() / 1000
  const peers = ctx.store.registry.live(now)
  const liveTypes = new Set<string>()
  // Bounded like the peer lists: hello-only ids cannot grow every status reply.
  for (const p of peers) {
    for (const t of p.supported_task_types) liveTypes.add(canonicalTaskType(t))
    if (liveTypes.size >= KNOWN_PEERS_IN_STATUS) break
  }
  const reply: Reply = {
    ok: true,
    peer_id: ctx.peerId(),
    session: ctx.options.session,
    capabilities: {
      task_types: [...liveTypes].sort(),
      models: [],
      endpoints_by_model: {},
      endpoint_types_by_model: {},
      hwtest: {},
      resource_keys: []
    },
    nat: ctx.nat(),
    multiaddrs: ctx.multiaddrs(),
    server: { impl: IMPL_NAME, version: VERSION, namespace: ctx.options.namespace, features: [...SERVER_FEATURES] },
    // ★ The queue's store, and the other coordinators serving it (clients fail over to them).
    ...ctx.coordination(),
    // ★ Which access controls are on (never a secret), and how many calls each refused.
    security: { ...ctx.access.describe(), private_network: ctx.options.privateNetwork === true, refusals: { ...ctx.access.refusals } }
  }
  if (!truthy(env.detail)) return reply

  // ★ Counts cover every live peer; the lists only the most recently seen (bounded reply).
  const knownPeers = peers.map((p) => ({
    peer_id: p.peer_id,
    last_seen: p.last_seen,
    worker_id: p.worker_id,
    supported_task_types: p.supported_task_types,
    transport_peer_id: p.transport_peer_id,
    peer_hint: p.peer_hint,
    session_id: p.session_id
  }))
  const workers = knownPeers.filter((p) => p.worker_id !== '')
  const local = ctx.localWorker()
  const log = ctx.store.events
  reply.queue = {
    ...await ctx.store.counts(),
    // ★ README "Protocol additions": pause state, retention and the event log.
    paused: await ctx.store.paused(),
    pruned: await ctx.store.prunedTotal(),
    events: { enabled: log.enabled, newest: await log.newest(), max: log.max },
    // ★ Which store holds the queue: the embedded SQLite file or PostgreSQL (shared by coordinators).
    backend: ctx.store.backend
  }
  reply.scheduler = {
    clock: SCHEDULER_CLOCK,
    known_peers: knownPeers.slice(-KNOWN_PEERS_IN_STATUS),
    known_workers: workers.slice(-KNOWN_PEERS_IN_STATUS),
    counts: {
      peers: knownPeers.length,
      workers: workers.length,
      docker_workers: workers.filter((w) => w.supported_task_types.some((t) => DOCKER_TYPES.has(t))).length,
      docker_workers_configured: local.supportedTaskTypes.some((t) => t.startsWith('docker.')) ? 1 : 0
    }
  }
  reply.local_worker = {
    enabled: local.enabled,
    docker_enabled: local.supportedTaskTypes.some((t) => t.startsWith('docker.')),
    supported_task_types: local.supportedTaskTypes
  }
  reply.transport = { mcp_p2p: { stats: ctx.stats.snapshot() } }
  return reply
}
