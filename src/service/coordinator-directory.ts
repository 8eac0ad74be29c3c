/**
 * Which other coordinators serve the same queue (★ issue 20). Several `serve`s on one
 * PostgreSQL database are one queue; each writes a row about itself (peer id, the
 * addresses it announces, when it started, when it last wrote) into a table of that
 * database every `intervalMs`, reads the others' rows back, and counts as live those
 * written within three intervals. `status` lists them (`coordinators`), so a client or
 * worker knows where to fail over when its coordinator dies (client/coordinators.ts),
 * and an operator sees the fleet from any member. Finding coordinators in the first
 * place is discovery's (they register under the same rendezvous namespace and DHT key);
 * this list is what the database — the one thing they share — says.
 *
 * A libp2p service (`coordinatorDirectory(init)` in the service node's services),
 * present only when the store is shared (a `CoordinatorTable`); the embedded SQLite
 * store has one coordinator and no table.
 */
import type { PeerId, Startable } from '@libp2p/interface'
import type { AddressManager } from '@libp2p/interface-internal'
import type { Logger } from '../logger.js'
import { withPeerId } from '../node/addresses.js'

/** One coordinator's row. Times in epoch seconds, from the database's clock. */
export interface CoordinatorRecord {
  peer_id: string
  multiaddrs: string[]
  started_at: number
  seen_at: number
}

/** What a shared store offers for this (store side: the PostgreSQL backend). */
export interface CoordinatorTable {
  /** Writes this coordinator's row (insert or replace); returns the database's now. */
  upsert: (row: { peer_id: string, multiaddrs: string[], started_at: number }) => Promise<number>
  /** Every row written since `sinceS` (epoch seconds, database clock). */
  list: (sinceS: number) => Promise<CoordinatorRecord[]>
  /** Removes a row (a clean stop; a killed coordinator's row just ages out). */
  remove: (peerId: string) => Promise<void>
}

/** What `status` shows: the backend, and the other live coordinators of its queue. */
export interface CoordinationInfo {
  backend: Record<string, string | number | boolean>
  coordinators: CoordinatorRecord[]
}

export interface CoordinatorDirectoryInit {
  table: CoordinatorTable
  /** `status.backend` (kind and what an operator may see, never a password). */
  backend: Record<string, string | number | boolean>
  /** How often each coordinator writes its row and reads the others (default 2000). */
  intervalMs?: number
  logger: Logger
}

export interface CoordinatorDirectoryComponents {
  peerId: PeerId
  addressManager: Pick<AddressManager, 'getAddresses'>
}

/** At most this many others are listed (a status reply stays bounded). */
const MAX_LISTED = 64

export class CoordinatorDirectory implements Startable {
  private readonly init: CoordinatorDirectoryInit
  private readonly components: CoordinatorDirectoryComponents
  private readonly intervalMs: number
  private timer: NodeJS.Timeout | null = null
  private others: CoordinatorRecord[] = []
  private startedAt = 0
  private running: Promise<void> | null = null

  constructor (init: CoordinatorDirectoryInit, components: CoordinatorDirectoryComponents) {
    this.init = init
    this.components = components
    this.intervalMs = init.intervalMs ?? 2000
  }

  readonly [Symbol.toStringTag] = 'taskqueue/coordinator-directory'

  async start (): Promise<void> {
    this.startedAt = Date.now() / 1000
  }

  /** The first row is written once the node listens (its addresses exist then); never delays start-up. */
  afterStart (): void {
    this.tick()
  }

  async stop (): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const last = this.running
    this.running = null
    await last
    await this.init.table.remove(this.self()).catch((err: unknown) => { this.init.logger.warn({ err }, 'coordinator directory: removing our row failed') })
    this.others = []
  }

  /** For `status`. */
  info (): CoordinationInfo {
    return { backend: this.init.backend, coordinators: this.others }
  }

  private self (): string {
    return this.components.peerId.toString()
  }

  private tick (): void {
    this.timer = null
    this.running = this.refresh().finally(() => {
      if (this.running === null) return
      this.running = null
      this.timer = setTimeout(() => { this.tick() }, this.intervalMs)
      this.timer.unref()
    })
  }

  private async refresh (): Promise<void> {
    const self = this.self()
    try {
      const addrs = this.components.addressManager.getAddresses().map((a) => withPeerId(a, self))
      const now = await this.init.table.upsert({ peer_id: self, multiaddrs: addrs, started_at: this.startedAt })
      const rows = await this.init.table.list(now - 3 * this.intervalMs / 1000)
      this.others = rows.filter((r) => r.peer_id !== self).sort((a, b) => a.started_at - b.started_at).slice(0, MAX_LISTED)
    } catch (err) {
      // The database is shared by every part of the service; its outage shows elsewhere.
      this.init.logger.warn({ err }, 'coordinator directory: refresh failed')
    }
  }
}

export function coordinatorDirectory (init: CoordinatorDirectoryInit): (components: CoordinatorDirectoryComponents) => CoordinatorDirectory {
  return (components) => new CoordinatorDirectory(init, components)
}
