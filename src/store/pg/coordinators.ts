/**
 * The coordinators of one PostgreSQL queue (★ issue 20): one row per `serve` on the
 * database, written by that coordinator every few seconds (service/coordinator-directory.ts
 * drives it; this is the table's SQL). Times come from the database's clock, so
 * coordinators on machines whose clocks differ still agree on who is live.
 */
import type pg from 'pg'

/** One coordinator's row (epoch seconds, database clock). */
export interface PgCoordinatorRow {
  peer_id: string
  multiaddrs: string[]
  started_at: number
  seen_at: number
}

/** Rows not written for this long are deleted by the next write (a killed coordinator's). */
const FORGET_AFTER_S = 86400

const NOW = 'extract(epoch from clock_timestamp())::double precision'

export class PgCoordinatorTable {
  constructor (private readonly pool: pg.Pool) {}

  /** Writes this coordinator's row; returns the database's now. */
  async upsert (row: { peer_id: string, multiaddrs: string[], started_at: number }): Promise<number> {
    const r = await this.pool.query<{ now: number }>(`
      WITH gone AS (DELETE FROM tq_coordinators WHERE seen_at < ${NOW} - $4)
      INSERT INTO tq_coordinators (peer_id, multiaddrs, started_at, seen_at) VALUES ($1, $2, $3, ${NOW})
      ON CONFLICT (peer_id) DO UPDATE SET multiaddrs = EXCLUDED.multiaddrs, started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at
      RETURNING seen_at AS now`, [row.peer_id, JSON.stringify(row.multiaddrs), row.started_at, FORGET_AFTER_S])
    return Number(r.rows[0].now)
  }

  async list (sinceS: number): Promise<PgCoordinatorRow[]> {
    const r = await this.pool.query<{ peer_id: string, multiaddrs: string, started_at: number, seen_at: number }>(
      'SELECT peer_id, multiaddrs, started_at, seen_at FROM tq_coordinators WHERE seen_at >= $1 ORDER BY started_at', [sinceS])
    return r.rows.map((x) => ({ peer_id: x.peer_id, multiaddrs: parseAddrs(x.multiaddrs), started_at: Number(x.started_at), seen_at: Number(x.seen_at) }))
  }

  async remove (peerId: string): Promise<void> {
    await this.pool.query('DELETE FROM tq_coordinators WHERE peer_id = $1', [peerId])
  }
}

function parseAddrs (text: string): string[] {
  try {
    const v: unknown = JSON.parse(text)
    return Array.isArray(v) ? v.filter((a): a is string => typeof a === 'string') : []
  } catch {
    return []
  }
}
