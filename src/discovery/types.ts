/**
 * The discovery chain's vocabulary (discovery.md §1, §8). A Discoverer is one mechanism;
 * it finds candidates and validates each through `probe`, which dials and asks for
 * `status` — only an `ok:true` status counts as success.
 */
import type { ConnectionKind } from '../nat/connection-kind.js'

/**
 * What discovery needs of a connection a probe opened: its addresses (remembered for the
 * winner) and a way to let it go (the losers'). The client's PeerLink is one; discovery
 * never calls through it, so it does not depend on the client.
 */
export interface FoundLink {
  readonly addrs: ReadonlyArray<{ toString: () => string }>
  close: () => void
}

export type DiscoveryMethod = 'explicit' | 'announce-file' | 'bootstrap' | 'rendezvous' | 'dht' | 'mdns'

/** One line of the `discover` trace. */
export interface AttemptRecord {
  method: DiscoveryMethod
  ok: boolean
  peer_id: string
  multiaddr: string
  error: string
  response: Record<string, unknown> | null
  elapsed_ms: number
  source?: string
  /** Successful attempts: whether the connection is direct or relayed. */
  connection?: ConnectionKind
}

export interface ProbeSuccess {
  ok: true
  record: AttemptRecord
  link: FoundLink
}

export interface ProbeFailure {
  ok: false
  record: AttemptRecord
}

export type ProbeResult = ProbeSuccess | ProbeFailure

/** What a mechanism may use while it runs. */
export interface DiscoveryScope {
  readonly method: DiscoveryMethod
  readonly signal: AbortSignal
  /** Accept only this peer (--peer-id), or null. */
  readonly peerIdFilter: string | null
  /**
   * `discover --all`: keep probing after a success, so every TaskQueue peer the
   * mechanism can find is recorded; still return the first success.
   */
  readonly all?: boolean
  /**
   * Dials the addresses, asks for status and records the attempt. Addresses without
   * `/p2p/` get `expectedPeerId` (or the filter) appended so the handshake verifies it.
   */
  probe: (addrs: string[], source?: string, expectedPeerId?: string) => Promise<ProbeResult>
  /** Records an attempt that never reached a probe (invalid file, limit reached, …). */
  fail: (error: string, details?: { source?: string, peer_id?: string, multiaddr?: string, startedAt?: number }) => AttemptRecord
}

export interface Discoverer {
  readonly method: DiscoveryMethod
  /** A skip error when the mechanism must not run (`disabled`, `not_explicitly_configured`, …). */
  skipReason: () => string | null
  /** Runs until a probe succeeds (returned) or candidates run out (null). */
  run: (scope: DiscoveryScope) => Promise<ProbeSuccess | null>
}

/** The `discover` output (discovery.md §8). */
export interface DiscoveryTrace {
  ok: boolean
  result: Record<string, unknown> | null
  nat: unknown
  method: DiscoveryMethod | ''
  elapsed_ms: number
  attempts: AttemptRecord[]
  /** `discover --all`: every TaskQueue peer found, per mechanism. */
  peers?: FoundPeer[]
}

export interface FoundPeer {
  method: DiscoveryMethod
  peer_id: string
  multiaddr: string
}
