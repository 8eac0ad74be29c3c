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
  `,
  // 2 → 3: ★ who submitted a task, and what each remote submitter keeps unfinished
  // (README "Security", PEER_MAX_TASKS / PEER_MAX_TASK_BYTES); see submitter-usage.ts.
  `
  ALTER TABLE tq_tasks ADD COLUMN submitter text;          -- remote peer id; NULL = local (exempt)
  ALTER TABLE tq_tasks ADD COLUMN payload_bytes bigint;    -- UTF-8 bytes of payload, set with submitter
  -- One row per (submitter, backend): a trigger only ever writes the row of its own
  -- server process (pg_backend_pid()), so transactions never wait on, or deadlock over,
  -- each other's counters; a submitter's usage is the sum of its rows (a row may be
  -- negative when one backend finished what another submitted). Rows of submitters
  -- left with nothing are folded away by the sweep (foldSubmitterUsage).
  CREATE TABLE tq_submitter_usage (
    submitter  text NOT NULL,
    backend    integer NOT NULL,
    tasks      bigint NOT NULL,
    bytes      bigint NOT NULL,
    PRIMARY KEY (submitter, backend)
  );
  CREATE FUNCTION tq_submitter_usage_add(who text, n bigint, b bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO tq_submitter_usage AS u (submitter, backend, tasks, bytes) VALUES (who, pg_backend_pid(), n, b)
    ON CONFLICT (submitter, backend) DO UPDATE SET tasks = u.tasks + EXCLUDED.tasks, bytes = u.bytes + EXCLUDED.bytes
  $$;
  CREATE FUNCTION tq_submitter_usage_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    was boolean := TG_OP <> 'INSERT' AND OLD.status IN ('queued', 'running');
    now_open boolean := TG_OP <> 'DELETE' AND NEW.status IN ('queued', 'running');
  BEGIN
    IF now_open AND NOT was THEN
      PERFORM tq_submitter_usage_add(NEW.submitter, 1, coalesce(NEW.payload_bytes, 0));
    ELSIF was AND NOT now_open THEN
      PERFORM tq_submitter_usage_add(OLD.submitter, -1, -coalesce(OLD.payload_bytes, 0));
    END IF;
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER tq_usage_ins AFTER INSERT ON tq_tasks FOR EACH ROW
    WHEN (NEW.submitter IS NOT NULL) EXECUTE FUNCTION tq_submitter_usage_trigger();
  CREATE TRIGGER tq_usage_upd AFTER UPDATE OF status ON tq_tasks FOR EACH ROW
    WHEN (NEW.submitter IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION tq_submitter_usage_trigger();
  CREATE TRIGGER tq_usage_del AFTER DELETE ON tq_tasks FOR EACH ROW
    WHEN (OLD.submitter IS NOT NULL) EXECUTE FUNCTION tq_submitter_usage_trigger();
  `,
  // 3 → 4: ★ the TTL cache, shared by every coordinator of the database (pg/cache.ts).
  // Totals kept by a trigger in one row: count(*)/sum() would scan on every set, and
  // the row's lock is what serializes cache writers (pg/cache.ts takes it first).
  `
  CREATE TABLE tq_cache (
    key         text PRIMARY KEY,
    value       text NOT NULL,             -- JSON text as given
    size        bigint NOT NULL,           -- UTF-8 key + value bytes
    expires_at  double precision,
    lru         bigint NOT NULL            -- recency: larger = used later
  );
  CREATE INDEX tq_cache_lru ON tq_cache (lru);
  CREATE INDEX tq_cache_expires ON tq_cache (expires_at) WHERE expires_at IS NOT NULL;
  CREATE SEQUENCE tq_cache_lru_seq;
  CREATE TABLE tq_cache_stats (
    id       integer PRIMARY KEY CHECK (id = 1),
    entries  bigint NOT NULL,
    bytes    bigint NOT NULL
  );
  INSERT INTO tq_cache_stats (id, entries, bytes) VALUES (1, 0, 0);
  CREATE FUNCTION tq_cache_count () RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      UPDATE tq_cache_stats SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1;
    ELSIF TG_OP = 'DELETE' THEN
      UPDATE tq_cache_stats SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1;
    ELSIF NEW.size <> OLD.size THEN
      UPDATE tq_cache_stats SET bytes = bytes - OLD.size + NEW.size WHERE id = 1;
    END IF;
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER tq_cache_count AFTER INSERT OR DELETE OR UPDATE OF size ON tq_cache
    FOR EACH ROW EXECUTE FUNCTION tq_cache_count();
  `,
  // 4 → 5: ★ who wrote each cache entry, and the bytes each remote writer keeps
  // (PEER_MAX_CACHE_BYTES). Every cache write holds the totals row's lock (pg/cache.ts),
  // so these rows are only ever changed by one transaction at a time.
  `
  ALTER TABLE tq_cache ADD COLUMN owner text;   -- remote peer id; NULL = local (exempt)
  CREATE TABLE tq_cache_owner_usage (
    owner  text PRIMARY KEY,
    bytes  bigint NOT NULL
  );
  CREATE FUNCTION tq_cache_owner_count () RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP <> 'INSERT' AND OLD.owner IS NOT NULL THEN
      UPDATE tq_cache_owner_usage SET bytes = bytes - OLD.size WHERE owner = OLD.owner;
      DELETE FROM tq_cache_owner_usage WHERE owner = OLD.owner AND bytes <= 0;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.owner IS NOT NULL THEN
      INSERT INTO tq_cache_owner_usage AS u (owner, bytes) VALUES (NEW.owner, NEW.size)
      ON CONFLICT (owner) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes;
    END IF;
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER tq_cache_owner_ins AFTER INSERT ON tq_cache
    FOR EACH ROW WHEN (NEW.owner IS NOT NULL) EXECUTE FUNCTION tq_cache_owner_count();
  CREATE TRIGGER tq_cache_owner_del AFTER DELETE ON tq_cache
    FOR EACH ROW WHEN (OLD.owner IS NOT NULL) EXECUTE FUNCTION tq_cache_owner_count();
  CREATE TRIGGER tq_cache_owner_upd AFTER UPDATE OF size, owner ON tq_cache
    FOR EACH ROW WHEN (OLD.owner IS NOT NULL OR NEW.owner IS NOT NULL) EXECUTE FUNCTION tq_cache_owner_count();
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
