/**
 * The PostgreSQL schema of the queue, created and migrated by the service. Versioned
 * migrations, append only (a shipped one is never edited), applied under a
 * transaction-level advisory lock: two coordinators starting at once on an empty
 * database serialize there, and the second finds the schema current.
 *
 * Times are epoch seconds (double precision) from the store's clock, as in the
 * SQLite file, so both backends compute leases, delays and retention alike.
 */
import type pg from 'pg'

/** pg_advisory_xact_lock key of the migration (any constant; "tq-migrate" in ASCII). */
const MIGRATE_LOCK = 0x74712d6d
/** pg_advisory_xact_lock key that orders event-log appends by commit (pg/queue.ts). */
export const EVENTS_LOCK = 0x74712d65

const MIGRATIONS: readonly string[] = [
  // 0 → 1: tasks, pauses, counters, the event log, the cache.
  `
  CREATE TABLE tq_tasks (
    -- Insertion order: claim order is (priority DESC, seq), list order is seq.
    seq              bigserial PRIMARY KEY,
    task_id          text NOT NULL UNIQUE,
    task_type        text NOT NULL,
    type_norm        text NOT NULL,
    model_name       text NOT NULL DEFAULT '',
    payload          text NOT NULL DEFAULT '{}',  -- JSON text as submitted (jsonb would reorder keys)
    status           text NOT NULL,
    assigned_worker  text,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    result           text,
    error            text,
    priority         integer NOT NULL DEFAULT 5,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 3,
    next_attempt_at  double precision NOT NULL DEFAULT 0,
    lease_until      double precision,
    heartbeat_at     double precision,
    idempotency_key  text,
    req_session      text NOT NULL DEFAULT '',
    sticky_worker    text NOT NULL DEFAULT '',
    errors           text,
    backoff          text,
    keep_s           double precision,
    expires_at       double precision
  );
  CREATE INDEX tq_tasks_claim ON tq_tasks (priority DESC, seq) WHERE status = 'queued';
  CREATE INDEX tq_tasks_claim_type ON tq_tasks (type_norm, priority DESC, seq) WHERE status = 'queued';
  CREATE INDEX tq_tasks_next_attempt ON tq_tasks (next_attempt_at) WHERE status = 'queued' AND next_attempt_at > created_at;
  CREATE INDEX tq_tasks_lease ON tq_tasks (lease_until) WHERE status = 'running';
  CREATE INDEX tq_tasks_exhausted ON tq_tasks (seq) WHERE status = 'queued' AND max_attempts > 0 AND attempt >= max_attempts;
  CREATE INDEX tq_tasks_done ON tq_tasks (status, seq) WHERE status <> 'queued' AND status <> 'running';
  CREATE UNIQUE INDEX tq_tasks_idempotency ON tq_tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
  CREATE INDEX tq_tasks_expires ON tq_tasks (expires_at) WHERE expires_at IS NOT NULL;
  CREATE TABLE tq_pauses (type_norm text PRIMARY KEY, paused_at double precision NOT NULL);
  CREATE TABLE tq_meta (key text PRIMARY KEY, value double precision NOT NULL);
  CREATE TABLE tq_events (
    seq        bigserial PRIMARY KEY,
    at         double precision NOT NULL,
    task_id    text NOT NULL,
    kind       text NOT NULL,
    status     text NOT NULL,
    task_type  text NOT NULL,
    data       text
  );
  `,
  // 1 → 2: ★ the coordinators sharing the queue (pg/coordinators.ts).
  `
  CREATE TABLE tq_coordinators (
    peer_id     text PRIMARY KEY,
    multiaddrs  text NOT NULL,  -- JSON list
    started_at  double precision NOT NULL,
    seen_at     double precision NOT NULL
  );
  `
]

export const PG_SCHEMA_VERSION = MIGRATIONS.length

/** Brings the database to PG_SCHEMA_VERSION; safe when several coordinators run it at once. */
export async function migratePg (pool: pg.Pool): Promise<void> {
  const c = await pool.connect()
  try {
    await c.query('BEGIN')
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK])
    await c.query('CREATE TABLE IF NOT EXISTS tq_schema (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL)')
    const r = await c.query<{ version: number }>('SELECT version FROM tq_schema WHERE id = 1')
    const current = r.rows[0]?.version ?? 0
    if (current > PG_SCHEMA_VERSION) {
      throw new Error(`database schema version ${current} is newer than this build supports (${PG_SCHEMA_VERSION})`)
    }
    for (let v = current; v < PG_SCHEMA_VERSION; v++) await c.query(MIGRATIONS[v])
    await c.query(`INSERT INTO tq_schema (id, version) VALUES (1, $1)
      ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version`, [PG_SCHEMA_VERSION])
    await c.query('COMMIT')
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    c.release()
  }
}
