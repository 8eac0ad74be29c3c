/**
 * The discovery chain (discovery.md §1, §8). Mechanisms run concurrently, each under
 * its own step timeout and one overall deadline; the winner is the success with the
 * lowest preference number, declared only once every mechanism before it has finished.
 */
import type { ConnectionKind } from '../nat/connection-kind.js'
import type { AttemptRecord, Discoverer, FoundLink, FoundPeer, DiscoveryMethod, DiscoveryScope, DiscoveryTrace, ProbeResult, ProbeSuccess } from './types.js'
import { peerIdOf, withPeerId } from '../node/addresses.js'

export type ProbeOutcome<L extends FoundLink = FoundLink> =
  | { ok: true, link: L, peerId: string, multiaddr: string, response: Record<string, unknown>, connection?: ConnectionKind }
  | { ok: false, error: string, peerId: string, multiaddr: string, response?: Record<string, unknown> | null }

/** Dials `addrs` and asks for status; must honour `signal` promptly. */
export type ProbeFn<L extends FoundLink = FoundLink> = (addrs: string[], signal: AbortSignal) => Promise<ProbeOutcome<L>>

export interface ChainOptions {
  discoverers: Discoverer[]
  probe: ProbeFn
  /** Per-mechanism timeouts in ms. */
  stepTimeoutsMs: Partial<Record<DiscoveryMethod, number>>
  deadlineMs: number
  peerIdFilter: string | null
  selfPeerId: string
  /** Include cancelled mechanisms in the trace. */
  detail?: boolean
  /** Let every mechanism run to the end and list every peer found (`discover --all`). */
  all?: boolean
}

export interface ChainResult {
  trace: DiscoveryTrace
  winner: ProbeSuccess | null
}

const elapsedSince = (t: number): number => Math.max(0, Math.round(performance.now() - t))


export async function runDiscoveryChain (opts: ChainOptions): Promise<ChainResult> {
  const started = performance.now()
  const overall = new AbortController()
  const deadlineTimer = setTimeout(() => overall.abort(), Math.max(0, opts.deadlineMs))
  const records = opts.discoverers.map(() => [] as AttemptRecord[])
  const finished = opts.discoverers.map(() => false)
  const controllers = opts.discoverers.map(() => new AbortController())
  // Every link a probe opened; all but the winner's are closed at the end.
  const successLinks: FoundLink[] = []

  const runs = opts.discoverers.map(async (d, i): Promise<ProbeSuccess | null> => {
    const skip = d.skipReason()
    const mechStart = performance.now()
    const base = { method: d.method, ok: false, peer_id: '', multiaddr: '', response: null }
    if (skip !== null) {
      records[i].push({ ...base, error: skip, elapsed_ms: 0 })
      return null
    }
    const stepMs = opts.stepTimeoutsMs[d.method] ?? 5000
    const stepTimer = setTimeout(() => controllers[i].abort(new Error('timeout')), stepMs)
    const signal = AbortSignal.any([overall.signal, controllers[i].signal])
    const scope: DiscoveryScope = {
      method: d.method,
      signal,
      peerIdFilter: opts.peerIdFilter,
      all: opts.all === true,
      fail: (error, details = {}) => {
        const rec: AttemptRecord = {
          ...base,
          error,
          peer_id: details.peer_id ?? '',
          multiaddr: details.multiaddr ?? '',
          elapsed_ms: elapsedSince(details.startedAt ?? mechStart)
        }
        if (details.source !== undefined) rec.source = details.source
        records[i].push(rec)
        return rec
      },
      probe: async (addrs, source, expectedPeerId): Promise<ProbeResult> => {
        const t = performance.now()
        const want = opts.peerIdFilter ?? expectedPeerId
        const targets = addrs.map((a) => withPeerId(a, want ?? ''))
        const named = peerIdOf(targets[0] ?? '')
        const rec = (r: Partial<AttemptRecord>): AttemptRecord => {
          const out: AttemptRecord = { ...base, peer_id: named, multiaddr: targets[0] ?? '', error: '', ...r, elapsed_ms: elapsedSince(t) }
          if (source !== undefined) out.source = source
          records[i].push(out)
          return out
        }
        if (named !== '' && opts.peerIdFilter !== null && named !== opts.peerIdFilter) {
          return { ok: false, record: rec({ error: 'peer_id_mismatch' }) }
        }
        if (named !== '' && named === opts.selfPeerId) return { ok: false, record: rec({ error: 'self' }) }
        if (signal.aborted) return { ok: false, record: rec({ error: overall.signal.aborted ? 'deadline_exceeded' : 'timeout' }) }
        const outcome = await opts.probe(targets, signal)
        if (!outcome.ok) {
          const error = signal.aborted && (outcome.error === 'timeout' || outcome.error === 'dial_failed')
            ? (overall.signal.aborted ? 'deadline_exceeded' : 'timeout')
            : outcome.error
          return { ok: false, record: rec({ error, peer_id: outcome.peerId || named, multiaddr: outcome.multiaddr || (targets[0] ?? ''), response: outcome.response ?? null }) }
        }
        if (opts.peerIdFilter !== null && outcome.peerId !== opts.peerIdFilter) {
          outcome.link.close()
          return { ok: false, record: rec({ error: 'peer_id_mismatch', peer_id: outcome.peerId, multiaddr: outcome.multiaddr }) }
        }
        successLinks.push(outcome.link)
        const record = rec({ ok: true, peer_id: outcome.peerId, multiaddr: outcome.multiaddr, response: outcome.response })
        if (outcome.connection !== undefined) record.connection = outcome.connection
        return { ok: true, link: outcome.link, record }
      }
    }
    try {
      const result = await Promise.race([
        d.run(scope),
        new Promise<null>((resolve) => signal.addEventListener('abort', () => resolve(null), { once: true }))
      ])
      if (result === null && records[i].every((r) => !r.ok)) {
        const why = overall.signal.aborted ? 'deadline_exceeded' : controllers[i].signal.aborted ? 'timeout' : null
        if (why !== null && (records[i].length === 0 || records[i][records[i].length - 1].error !== why)) scope.fail(why)
      }
      return result
    } catch (err) {
      scope.fail(`error: ${(err as Error).message}`)
      return null
    } finally {
      clearTimeout(stepTimer)
      finished[i] = true
    }
  })

  // Walk in preference order: a success is final only when everything before it finished.
  let winner: ProbeSuccess | null = null
  let winnerIndex = -1
  for (let i = 0; i < runs.length; i++) {
    const result = await runs[i]
    if (result !== null) {
      winner = result
      winnerIndex = i
      break
    }
  }
  if (opts.all === true) await Promise.allSettled(runs)
  clearTimeout(deadlineTimer)
  for (let i = winnerIndex + 1; winnerIndex >= 0 && i < runs.length; i++) {
    if (!finished[i]) {
      controllers[i].abort(new Error('cancelled'))
      if (opts.detail === true) {
        records[i].push({ method: opts.discoverers[i].method, ok: false, peer_id: '', multiaddr: '', error: 'cancelled', response: null, elapsed_ms: elapsedSince(started) })
      }
    }
  }
  // Links found by mechanisms that did not win are not needed.
  void Promise.allSettled(runs).then(() => {
    for (const link of successLinks) if (link !== winner?.link) link.close()
  })

  const attempts = records.flat()
  const response = winner?.record.response ?? null
  const trace: ChainResult['trace'] = {
    ok: winner !== null,
    result: response,
    nat: response?.nat ?? null,
    method: winner?.record.method ?? '',
    elapsed_ms: elapsedSince(started),
    attempts
  }
  if (opts.all === true) trace.peers = foundPeers(attempts)
  return { winner, trace }
}

/** One entry per (mechanism, peer): the first address that answered. */
function foundPeers (attempts: AttemptRecord[]): FoundPeer[] {
  const seen = new Set<string>()
  const peers: FoundPeer[] = []
  for (const a of attempts) {
    const key = `${a.method} ${a.peer_id}`
    if (!a.ok || seen.has(key)) continue
    seen.add(key)
    peers.push({ method: a.method, peer_id: a.peer_id, multiaddr: a.multiaddr })
  }
  return peers
}
