/**
 * The deterministic scheduler's per-claim ownership test (wire-protocol.md §7.4),
 * with a cache: a task's owner depends only on the task and the candidates'
 * profiles, while claims re-walk the same tasks owned by other workers again and
 * again and would otherwise re-hash them every time.
 */
import { pickOwner } from './scheduler.js'
import type { Candidates } from './peers.js'

/** The task fields ownership depends on. */
export interface OwnedTask {
  task_id: string
  type_norm: string
  req_session: string
  sticky_worker: string
  created_at: number
  next_attempt_at: number
}

export interface OwnerTest {
  /** Whether the requester may claim `task` now (owner, or the task is neglected). */
  mine: (task: OwnedTask) => boolean
  /** Live workers considered, at least 1: how many tasks a claim walks per one it keeps. */
  peers: number
}

/** Bound on cached owners (about 100 bytes each). */
const OWNER_CACHE_MAX = 100_000

export class OwnerCache {
  private readonly stealAfterS: number
  /** task_id → owner, valid for one version of the registry's candidates. */
  private version = -1
  private owners = new Map<string, string>()

  constructor (stealAfterS: number) {
    this.stealAfterS = stealAfterS
  }

  /**
   * The test for requester `self` given the registry's candidates (peers with a
   * worker_id that claimed recently; self included). Status pollers, CLI heartbeats
   * and ids that only said hello never claim, so letting them own tasks would only
   * delay work by the steal window: they are no candidates, and they cost nothing here.
   */
  forClaim (self: string, current: Candidates, now: number): OwnerTest {
    const workers = current.peers
    if (current.version !== this.version) {
      this.version = current.version
      this.owners = new Map()
    }
    const owners = this.owners
    const peers = workers.map(p => ({
      key: p.peer_id,
      worker: p.worker_id,
      session: p.session_id,
      types: p.supported_task_types.length > 0 ? new Set(p.supported_task_types) : null
    }))
    const candidates = new Map<string, string[]>()
    const stealAfterS = this.stealAfterS
    const mine = (t: OwnedTask): boolean => {
      if (stealAfterS > 0 && now - Math.max(t.created_at, t.next_attempt_at) > stealAfterS) return true
      let owner = owners.get(t.task_id)
      if (owner === undefined) {
        const k = `${t.type_norm}\u0000${t.req_session}\u0000${t.sticky_worker}`
        let keys = candidates.get(k)
        if (keys === undefined) {
          keys = peers.filter(p =>
            (p.types === null || p.types.has(t.type_norm)) &&
            (t.req_session === '' || p.session === t.req_session) &&
            (t.sticky_worker === '' || p.worker === t.sticky_worker)).map(p => p.key)
          candidates.set(k, keys)
        }
        owner = pickOwner(t.task_id, keys) ?? self
        if (owners.size >= OWNER_CACHE_MAX) owners.clear()
        owners.set(t.task_id, owner)
      }
      return owner === self
    }
    return { mine, peers: Math.max(1, peers.length) }
  }
}
