/**
 * What a failed discovery chain tells its user (issue 22): each mechanism's reason, and
 * one hint for the commonest cause. A service that answered but refused our token is not
 * "no peer found": it is `unauthorized`, whichever mechanism reached it.
 */
import type { AttemptRecord, DiscoveryMethod, DiscoveryTrace } from './types.js'

export interface DiscoveryFailureSummary {
  /** `unauthorized` when a TaskQueue service was reached but refused the token; else `no_peer_found`. */
  code: 'unauthorized' | 'no_peer_found'
  /** The last reason each mechanism gave, in preference order. */
  reasons: Partial<Record<DiscoveryMethod, string>>
  hint: string
  /** One line: what failed, every mechanism's reason, the hint. */
  message: string
  /** For `unauthorized`: the service that refused. */
  refusedBy?: { peer_id: string, multiaddr: string }
}

/** Reasons that mean "not configured here", as opposed to "tried and failed". */
const NOT_CONFIGURED = new Set(['disabled', 'not_explicitly_configured', 'no_rendezvous_point', 'no_routing_peers'])

const VAGUE = new Set(['timeout', 'deadline_exceeded', 'cancelled'])

function lastReasons (attempts: AttemptRecord[]): Partial<Record<DiscoveryMethod, string>> {
  const reasons: Partial<Record<DiscoveryMethod, string>> = {}
  // A probe's own failure (dial_failed, unauthorized, …) says more than the mechanism's later timeout.
  for (const a of attempts) {
    if (a.ok) continue
    const prev = reasons[a.method]
    if (prev === undefined || (VAGUE.has(prev) && !VAGUE.has(a.error))) reasons[a.method] = a.error
  }
  return reasons
}

function hintFor (reasons: Partial<Record<DiscoveryMethod, string>>, attempts: AttemptRecord[]): string {
  const file = attempts.find((a) => a.method === 'announce-file' && a.source !== undefined && a.multiaddr !== '')
  if (reasons.explicit !== undefined) {
    return 'check that a service runs at the --multiaddr given (taskqueue-p2p serve prints its multiaddr=)'
  }
  if (file !== undefined && ['dial_failed', 'timeout', 'deadline_exceeded'].includes(reasons['announce-file'] ?? '')) {
    return `the announce file ${file.source ?? ''} names a service that does not answer (stale: the service stopped or crashed); start it again (taskqueue-p2p serve) or delete the file`
  }
  if (reasons['announce-file'] === 'invalid_announce') return 'the announce file is not valid; delete it and restart the service'
  if (reasons.bootstrap !== undefined && !NOT_CONFIGURED.has(reasons.bootstrap)) {
    return 'no BOOTSTRAP_PEERS address answered as a TaskQueue service; check the addresses and that the service there runs'
  }
  const onlyLocal = (['bootstrap', 'rendezvous', 'dht'] as const).every((m) => reasons[m] === undefined || NOT_CONFIGURED.has(reasons[m]))
  if (onlyLocal && (reasons.mdns === undefined || reasons.mdns === 'disabled' || reasons.mdns === 'timeout' || reasons.mdns === 'no_responders')) {
    return 'no service runs on this host and nothing else is configured: start one with `taskqueue-p2p serve`, or pass --multiaddr, or set BOOTSTRAP_PEERS to a service or relay'
  }
  return 'run `p2p-rpc discover --detail` for every attempt, or `p2p-rpc doctor` for a verdict'
}

export function summarizeDiscoveryFailure (trace: DiscoveryTrace): DiscoveryFailureSummary {
  const attempts = trace.attempts
  const reasons = lastReasons(attempts)
  const refused = attempts.find((a) => !a.ok && a.error === 'unauthorized')
  const list = Object.entries(reasons).map(([m, r]) => `${m}: ${r}`).join(', ')
  if (refused !== undefined) {
    const refusedBy = { peer_id: refused.peer_id, multiaddr: refused.multiaddr }
    const hint = 'set TOKEN (IPFS_ACCELERATE_PY_TASK_P2P_TOKEN) to the service\'s token'
    return {
      code: 'unauthorized',
      reasons,
      hint,
      refusedBy,
      message: `the service ${refused.multiaddr !== '' ? refused.multiaddr : refused.peer_id} (found by ${refused.method}) refused our token: ${hint}`
    }
  }
  const hint = hintFor(reasons, attempts)
  return { code: 'no_peer_found', reasons, hint, message: `no TaskQueue peer found${list !== '' ? ` (${list})` : ''}; hint: ${hint}` }
}
