/**
 * bootstrap (discovery.md §4): BOOTSTRAP_PEERS dialled directly as TaskQueue endpoints,
 * only when the user configured them. Relay or DHT-only nodes answer
 * `protocol_not_supported`, which is normal.
 */
import type { Discoverer, DiscoveryScope, ProbeSuccess } from './types.js'

export interface BootstrapDiscovererInit {
  peers: readonly string[]
  dial: boolean
  maxAttempts: number
  /** Address that last succeeded in this process (tried first when recent). */
  lastGood?: () => string | null
}

export function bootstrapDiscoverer (init: BootstrapDiscovererInit): Discoverer {
  return {
    method: 'bootstrap',
    skipReason: () => init.peers.length === 0 ? 'not_explicitly_configured' : !init.dial ? 'disabled' : null,
    run: async (scope: DiscoveryScope): Promise<ProbeSuccess | null> => {
      const last = init.lastGood?.() ?? null
      const ordered = last !== null && init.peers.includes(last) ? [last, ...init.peers.filter((p) => p !== last)] : [...init.peers]
      const tried = ordered.slice(0, init.maxAttempts)
      for (const addr of ordered.slice(init.maxAttempts)) scope.fail('attempt_limit', { source: addr, multiaddr: addr })
      // Dialled concurrently; the first ok:true wins and the others are abandoned.
      return await new Promise<ProbeSuccess | null>((resolve) => {
        let pending = tried.length
        let first: ProbeSuccess | null = null
        if (pending === 0) resolve(null)
        const settle = (result: ProbeSuccess | null): void => {
          pending--
          if (result !== null) first ??= result
          // In --all mode every peer is heard out; otherwise the first ok:true wins.
          if (scope.all !== true && result !== null) resolve(result)
          else if (pending === 0) resolve(first)
        }
        for (const addr of tried) {
          scope.probe([addr], addr).then((r) => { settle(r.ok ? r : null) }, () => { settle(null) })
        }
      })
    }
  }
}
