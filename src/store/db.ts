/**
 * Opening the embedded SQLite file and keeping its schema current. One file can hold
 * both the queue and the cache; `serve` and local workers may share it across
 * processes, which is why every write path uses `BEGIN IMMEDIATE` (see queue.ts).
 */
import { mkdirSync, openSync, readSync, closeSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import { TaskQueueError } from '../protocol/errors.js'

const SQLITE_MAGIC = 'SQLite format 3\u0000'

export interface OpenDatabaseOptions {
  /** How long SQLite itself retries a locked file before reporting SQLITE_BUSY. */
  busyTimeoutMs?: number
  /**
   * WAL size (pages) at which a committing connection checkpoints inline. SQLite's
   * default is 1000; raise it (e.g. 16384) when a `Checkpointer` does the work.
   */
  walAutocheckpointPages?: number
}

/**
 * Opens (creating if needed) the database at `path`, or an in-memory one for
 * `':memory:'`, and migrates it to the current schema.
 *
 * Durability: WAL with `synchronous=NORMAL`. A committed transaction is in the WAL
 * (handed to the OS) before `COMMIT` returns, so it survives the process being killed
 * (kill -9, crash, OOM). On power loss or an OS crash the most recent transactions may
 * roll back, but the file stays consistent. `FULL` would fsync every commit: measured
 * on a VM disk, 375 µs instead of 28 µs per small commit, an order of magnitude off
 * claim/complete throughput, for a guarantee that clients retrying with idempotency
 * keys (B8) mostly get anyway.
 */
export function openDatabase (path: string, opts: OpenDatabaseOptions = {}): DatabaseSync {
  // An empty path is a configuration mistake, not a request for a throwaway queue.
  if (path.trim() === '') throw new Error('database path is empty')
  const memory = path === ':memory:'
  const file = memory ? ':memory:' : resolve(path)
  if (!memory) {
    mkdirSync(dirname(file), { recursive: true })
    assertSqliteOrAbsent(file)
  }
  let db: DatabaseSync
  try {
    db = new DatabaseSync(file)
  } catch (err) {
    throw new Error(`cannot open database ${file}: ${(err as Error).message}`)
  }
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`)
    if (!memory) db.exec('PRAGMA journal_mode = WAL')
    db.exec('PRAGMA synchronous = NORMAL')
    db.exec(`PRAGMA wal_autocheckpoint = ${Math.max(0, Math.trunc(opts.walAutocheckpointPages ?? 1000))}`)
    // After a checkpoint resets the WAL, truncate it back: a load burst must not leave
    // a huge file behind.
    db.exec('PRAGMA journal_size_limit = 67108864')
    // Larger page cache and in-memory temp b-trees: sorting/grouping never touches disk.
    db.exec('PRAGMA cache_size = -16384')
    db.exec('PRAGMA temp_store = MEMORY')
    migrate(db)
  } catch (err) {
    try { db.close() } catch { /* already failing */ }
    const msg = (err as Error).message
    if (/not a database|file is encrypted/i.test(msg)) {
      throw new Error(`${file} exists but is not a SQLite database`)
    }
    throw new Error(`cannot open database ${file}: ${msg}`)
  }
  return db
}

/** Refuses to turn someone's unrelated file into a database (config.md §3.1). */
function assertSqliteOrAbsent (file: string): void {
  let size: number
  try {
    const st = statSync(file)
    if (!st.isFile()) throw new Error(`${file} exists but is not a regular file`)
    size = st.size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  // An empty file is what SQLite itself creates before the first write.
  if (size === 0) return
  const buf = Buffer.alloc(16)
  const fd = openSync(file, 'r')
  let n: number
  try {
    n = readSync(fd, buf, 0, 16, 0)
  } finally {
    closeSync(fd)
  }
  if (n < 16 || buf.toString('latin1') !== SQLITE_MAGIC) {
    throw new Error(`${file} exists but is not a SQLite database`)
  }
}

/**
 * Ordered migrations; entry i upgrades `user_version` i → i+1. Append only: a
 * shipped migration is never edited, since files in the field already ran it.
 */
const MIGRATIONS: ReadonlyArray<string> = [
  // 0 → 1: tasks and cache.
  `
  CREATE TABLE IF NOT EXISTS tasks (
    -- Insertion order. created_at is made strictly increasing with seq (queue.ts
    -- nextCreatedAt), so seq order IS the spec's (created_at, task_id) order and
    -- indexes need no created_at/task_id columns. An explicit INTEGER PRIMARY KEY
    -- also keeps the values stable across VACUUM.
    seq              INTEGER PRIMARY KEY,
    task_id          TEXT NOT NULL UNIQUE,
    task_type        TEXT NOT NULL,
    type_norm        TEXT NOT NULL,              -- trim+lower(task_type), what filters match
    model_name       TEXT NOT NULL DEFAULT '',
    payload          TEXT NOT NULL DEFAULT '{}', -- JSON object
    status           TEXT NOT NULL,
    assigned_worker  TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    result           TEXT,                       -- JSON or NULL
    error            TEXT,
    priority         INTEGER NOT NULL DEFAULT 5,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    next_attempt_at  REAL NOT NULL DEFAULT 0,
    lease_until      REAL,
    heartbeat_at     REAL,
    idempotency_key  TEXT,
    req_session      TEXT NOT NULL DEFAULT '',   -- from payload session_id|session|p2p_session
    sticky_worker    TEXT NOT NULL DEFAULT ''    -- from payload sticky_worker_id|sticky_worker
  );
  -- Every index below is one more b-tree page written per commit (~10 µs each on a
  -- typical VM disk), so they are few, narrow and mostly partial.
  -- Claim order (priority DESC, then seq); partial so finished tasks cost claims nothing.
  CREATE INDEX IF NOT EXISTS idx_tasks_claim ON tasks (priority DESC) WHERE status = 'queued';
  -- Same order per type, merged in JS when a claimer filters by type.
  CREATE INDEX IF NOT EXISTS idx_tasks_claim_type
    ON tasks (type_norm, priority DESC) WHERE status = 'queued';
  -- Only delayed tasks (backoff, scheduled): an ordinary submit never touches it.
  CREATE INDEX IF NOT EXISTS idx_tasks_next_attempt
    ON tasks (next_attempt_at) WHERE status = 'queued' AND next_attempt_at > created_at;
  CREATE INDEX IF NOT EXISTS idx_tasks_lease ON tasks (lease_until) WHERE status = 'running';
  -- Normally empty: lets the sweeper find zombie tasks without scanning the queue.
  CREATE INDEX IF NOT EXISTS idx_tasks_exhausted
    ON tasks (max_attempts) WHERE status = 'queued' AND max_attempts > 0 AND attempt >= max_attempts;
  -- Finished tasks by status, in seq order, for list. Queued and running tasks are
  -- listed through the claim and lease indexes instead, so a task's way through
  -- queued → running → finished moves no entry inside this index (2 pages saved).
  CREATE INDEX IF NOT EXISTS idx_tasks_done
    ON tasks (status) WHERE status IN ('completed', 'failed', 'cancelled');
  CREATE UNIQUE INDEX IF NOT EXISTS idx_tasks_idempotency
    ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;

  CREATE TABLE IF NOT EXISTS cache (
    key         TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,      -- JSON
    size        INTEGER NOT NULL,   -- UTF-8 bytes of key + value, for the byte bound
    expires_at  REAL,
    lru         INTEGER NOT NULL    -- global access sequence; smallest = least recently used
  );
  CREATE INDEX IF NOT EXISTS idx_cache_lru ON cache (lru);
  CREATE INDEX IF NOT EXISTS idx_cache_expires ON cache (expires_at) WHERE expires_at IS NOT NULL;
  -- Totals kept by triggers: count(*)/sum() would scan the table on every set.
  CREATE TABLE IF NOT EXISTS cache_stats (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    entries  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
  );
  INSERT OR IGNORE INTO cache_stats (id, entries, bytes) VALUES (1, 0, 0);
  CREATE TRIGGER IF NOT EXISTS trg_cache_ins AFTER INSERT ON cache BEGIN
    UPDATE cache_stats SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1;
  END;
  CREATE TRIGGER IF NOT EXISTS trg_cache_del AFTER DELETE ON cache BEGIN
    UPDATE cache_stats SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1;
  END;
  CREATE TRIGGER IF NOT EXISTS trg_cache_upd AFTER UPDATE OF size ON cache BEGIN
    UPDATE cache_stats SET bytes = bytes - OLD.size + NEW.size WHERE id = 1;
  END;
  `,
  // 1 → 2: the finished-tasks index without an IN list. SQLite evaluates a partial
  // index's condition for the old and new row of every write to the table, and an
  // IN list of three constants is evaluated by building a temporary b-tree each
  // time: measured 8.2 µs per UPDATE of a task row, 1.7 µs with this form. Same rows
  // (the five statuses are fixed), so queue-sql.ts listSql repeats this condition.
  `
  DROP INDEX IF EXISTS idx_tasks_done;
  CREATE INDEX idx_tasks_done ON tasks (status) WHERE status <> 'queued' AND status <> 'running';
  `,
  // 2 → 3: operating the queue (retries, retention, pause, events; README "Protocol additions").
  `
  -- Per-attempt failures, JSON [{attempt, at, error, worker_id}], oldest first, bounded.
  ALTER TABLE tasks ADD COLUMN errors TEXT;
  -- Retry backoff of this task, JSON {type, delay_s}; NULL = the service's default.
  ALTER TABLE tasks ADD COLUMN backoff TEXT;
  -- Seconds a finished task is kept; NULL = the service's retention for its status.
  ALTER TABLE tasks ADD COLUMN keep_s REAL;
  -- When a finished task may be pruned (set as it finishes); NULL = kept.
  ALTER TABLE tasks ADD COLUMN expires_at REAL;
  -- Only finished tasks with a retention: the pruner reads it oldest first.
  CREATE INDEX idx_tasks_expires ON tasks (expires_at) WHERE expires_at IS NOT NULL;
  -- Paused task types ('*' = the whole queue); survives restarts.
  CREATE TABLE queue_pauses (type_norm TEXT PRIMARY KEY NOT NULL, paused_at REAL NOT NULL) WITHOUT ROWID;
  -- Counters that outlive the process (e.g. pruned).
  CREATE TABLE queue_meta (key TEXT PRIMARY KEY NOT NULL, value REAL NOT NULL) WITHOUT ROWID;
  -- The bounded, persistent stream of task state changes (★ op events); seq is the cursor.
  CREATE TABLE task_events (
    seq        INTEGER PRIMARY KEY,
    at         REAL NOT NULL,
    task_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL,
    task_type  TEXT NOT NULL,
    data       TEXT                -- JSON object of the kind's details, or NULL
  );
  `,
  // 3 → 4: ★ who submitted a task, and what each remote submitter keeps unfinished
  // (README "Security", PEER_MAX_TASKS / PEER_MAX_TASK_BYTES). Local submits (the
  // library, the dashboard) leave submitter NULL and cost the triggers nothing.
  `
  -- The remote peer id that submitted the task; NULL = local (exempt from the bounds).
  ALTER TABLE tasks ADD COLUMN submitter TEXT;
  -- UTF-8 bytes of payload as stored, set with submitter (the triggers never read payload).
  ALTER TABLE tasks ADD COLUMN payload_bytes INTEGER;
  -- Unfinished (queued + running) tasks and their payload bytes per submitter, kept by
  -- the triggers below so a submit reads one row instead of counting the queue. A row
  -- goes when its submitter has nothing unfinished left.
  CREATE TABLE submitter_usage (
    submitter  TEXT PRIMARY KEY NOT NULL,
    tasks      INTEGER NOT NULL,
    bytes      INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- Conditions spelled without IN lists (see migration 1 → 2).
  CREATE TRIGGER trg_usage_ins AFTER INSERT ON tasks
  WHEN NEW.submitter IS NOT NULL AND (NEW.status = 'queued' OR NEW.status = 'running') BEGIN
    INSERT INTO submitter_usage (submitter, tasks, bytes) VALUES (NEW.submitter, 1, coalesce(NEW.payload_bytes, 0))
    ON CONFLICT (submitter) DO UPDATE SET tasks = tasks + 1, bytes = bytes + excluded.bytes;
  END;
  CREATE TRIGGER trg_usage_reopen AFTER UPDATE OF status ON tasks
  WHEN NEW.submitter IS NOT NULL AND OLD.status <> 'queued' AND OLD.status <> 'running'
    AND (NEW.status = 'queued' OR NEW.status = 'running') BEGIN
    INSERT INTO submitter_usage (submitter, tasks, bytes) VALUES (NEW.submitter, 1, coalesce(NEW.payload_bytes, 0))
    ON CONFLICT (submitter) DO UPDATE SET tasks = tasks + 1, bytes = bytes + excluded.bytes;
  END;
  CREATE TRIGGER trg_usage_finish AFTER UPDATE OF status ON tasks
  WHEN OLD.submitter IS NOT NULL AND (OLD.status = 'queued' OR OLD.status = 'running')
    AND NEW.status <> 'queued' AND NEW.status <> 'running' BEGIN
    UPDATE submitter_usage SET tasks = tasks - 1, bytes = bytes - coalesce(OLD.payload_bytes, 0) WHERE submitter = OLD.submitter;
    DELETE FROM submitter_usage WHERE submitter = OLD.submitter AND tasks <= 0;
  END;
  CREATE TRIGGER trg_usage_del AFTER DELETE ON tasks
  WHEN OLD.submitter IS NOT NULL AND (OLD.status = 'queued' OR OLD.status = 'running') BEGIN
    UPDATE submitter_usage SET tasks = tasks - 1, bytes = bytes - coalesce(OLD.payload_bytes, 0) WHERE submitter = OLD.submitter;
    DELETE FROM submitter_usage WHERE submitter = OLD.submitter AND tasks <= 0;
  END;
  `,
  // 4 → 5: ★ who wrote each cache entry, and the bytes each remote writer keeps
  // (PEER_MAX_CACHE_BYTES). Local writes leave owner NULL and cost the triggers nothing.
  `
  -- The remote peer id whose write the entry holds; NULL = local (exempt).
  ALTER TABLE cache ADD COLUMN owner TEXT;
  CREATE TABLE cache_owner_usage (
    owner  TEXT PRIMARY KEY NOT NULL,
    bytes  INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TRIGGER trg_cache_owner_ins AFTER INSERT ON cache WHEN NEW.owner IS NOT NULL BEGIN
    INSERT INTO cache_owner_usage (owner, bytes) VALUES (NEW.owner, NEW.size)
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes;
  END;
  CREATE TRIGGER trg_cache_owner_del AFTER DELETE ON cache WHEN OLD.owner IS NOT NULL BEGIN
    UPDATE cache_owner_usage SET bytes = bytes - OLD.size WHERE owner = OLD.owner;
    DELETE FROM cache_owner_usage WHERE owner = OLD.owner AND bytes <= 0;
  END;
  -- A rewrite moves the entry's bytes from its previous writer to its new one.
  CREATE TRIGGER trg_cache_owner_upd_old AFTER UPDATE OF size, owner ON cache WHEN OLD.owner IS NOT NULL BEGIN
    UPDATE cache_owner_usage SET bytes = bytes - OLD.size WHERE owner = OLD.owner;
    DELETE FROM cache_owner_usage WHERE owner = OLD.owner AND bytes <= 0;
  END;
  CREATE TRIGGER trg_cache_owner_upd_new AFTER UPDATE OF size, owner ON cache WHEN NEW.owner IS NOT NULL BEGIN
    INSERT INTO cache_owner_usage (owner, bytes) VALUES (NEW.owner, NEW.size)
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes;
  END;
  `,
  // 5 → 6: tasks per type and status, kept by triggers, so status detail, /metrics and
  // the dashboard (which asks after every burst of events) read a few rows instead of
  // counting the table: ~1.7 µs per task counted, 0.5–1.2 s of a blocked service at
  // 300,000 tasks. One row per type that ever had a task (made by its first insert, or
  // here), a column per status, so every move is one UPDATE of one row; rows stay, at
  // 0, once their tasks are gone. The price, counted by callgrind on the store alone
  // (groups of 8 submits, a claim of 8, 8 completes): +15 % instructions per task
  // (~43k on ~276k); counting only queued tasks cost +6 % but left /metrics scanning.
  `
  CREATE TABLE task_counts (
    task_type  TEXT PRIMARY KEY NOT NULL,
    queued     INTEGER NOT NULL DEFAULT 0,
    running    INTEGER NOT NULL DEFAULT 0,
    completed  INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    cancelled  INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  INSERT INTO task_counts (task_type, queued, running, completed, failed, cancelled)
    SELECT task_type, sum(status = 'queued'), sum(status = 'running'), sum(status = 'completed'),
      sum(status = 'failed'), sum(status = 'cancelled')
    FROM tasks GROUP BY task_type;
  CREATE TRIGGER trg_counts_ins AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (task_type, queued, running, completed, failed, cancelled)
    VALUES (NEW.task_type, NEW.status = 'queued', NEW.status = 'running', NEW.status = 'completed',
      NEW.status = 'failed', NEW.status = 'cancelled')
    ON CONFLICT (task_type) DO UPDATE SET queued = queued + excluded.queued, running = running + excluded.running,
      completed = completed + excluded.completed, failed = failed + excluded.failed, cancelled = cancelled + excluded.cancelled;
  END;
  CREATE TRIGGER trg_counts_move AFTER UPDATE OF status ON tasks WHEN OLD.status <> NEW.status BEGIN
    UPDATE task_counts SET
      queued = queued + (NEW.status = 'queued') - (OLD.status = 'queued'),
      running = running + (NEW.status = 'running') - (OLD.status = 'running'),
      completed = completed + (NEW.status = 'completed') - (OLD.status = 'completed'),
      failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed'),
      cancelled = cancelled + (NEW.status = 'cancelled') - (OLD.status = 'cancelled')
    WHERE task_type = NEW.task_type;
  END;
  CREATE TRIGGER trg_counts_del AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET
      queued = queued - (OLD.status = 'queued'), running = running - (OLD.status = 'running'),
      completed = completed - (OLD.status = 'completed'), failed = failed - (OLD.status = 'failed'),
      cancelled = cancelled - (OLD.status = 'cancelled')
    WHERE task_type = OLD.task_type;
  END;
  `
]

export const SCHEMA_VERSION = MIGRATIONS.length

function userVersion (db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get()
  return Number(row?.user_version ?? 0)
}

/**
 * Brings the schema to SCHEMA_VERSION. Idempotent and safe against another process
 * migrating the same file concurrently: the version is re-read under the write lock.
 */
export function migrate (db: DatabaseSync): void {
  if (userVersion(db) === SCHEMA_VERSION) return
  db.exec('BEGIN IMMEDIATE')
  try {
    const current = userVersion(db)
    if (current > SCHEMA_VERSION) {
      throw new Error(`database schema version ${current} is newer than this build supports (${SCHEMA_VERSION})`)
    }
    for (let v = current; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v])
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
    db.exec('COMMIT')
  } catch (err) {
    try { db.exec('ROLLBACK') } catch { /* no transaction left */ }
    throw err
  }
}

/** True for SQLITE_BUSY / SQLITE_LOCKED (including their extended codes). */
export function isBusyError (err: unknown): boolean {
  const code = (err as { errcode?: unknown } | null)?.errcode
  if (typeof code !== 'number') return false
  const primary = code & 0xff
  return primary === 5 || primary === 6
}

export interface TxStatements {
  begin: StatementSync
  commit: StatementSync
  rollback: StatementSync
}

export function prepareTx (db: DatabaseSync): TxStatements {
  return { begin: db.prepare('BEGIN IMMEDIATE'), commit: db.prepare('COMMIT'), rollback: db.prepare('ROLLBACK') }
}

const BUSY_RETRIES = 3

/**
 * Runs `fn` in a `BEGIN IMMEDIATE` transaction. The write lock is taken before any
 * read, so read-decide-write sequences (claims, idempotent submits, LRU eviction)
 * cannot interleave with another connection. busy_timeout already makes SQLite wait
 * for the lock; only a BUSY that came back without that wait (WAL recovery in another
 * process) is retried here, so the thread is never blocked much past busy_timeout.
 * Lasting contention is reported as the retryable `busy` code.
 */
export function immediate<T> (tx: TxStatements, fn: () => T): T {
  for (let i = 0; ; i++) {
    const started = performance.now()
    try {
      tx.begin.run()
      break
    } catch (err) {
      if (!isBusyError(err)) throw err
      const waited = performance.now() - started > 50
      if (waited || i >= BUSY_RETRIES) throw new TaskQueueError('busy', 'database is locked by another connection')
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 * (i + 1))
    }
  }
  try {
    const out = fn()
    tx.commit.run()
    return out
  } catch (err) {
    try { tx.rollback.run() } catch { /* SQLite may have rolled back already */ }
    if (isBusyError(err)) throw new TaskQueueError('busy', 'database is locked by another connection')
    throw err
  }
}

/**
 * Rows as arrays in column order: node:sqlite builds an object per row property by
 * property, which measured 17 µs against 9 µs for a three-row walk. (22.16+; an older
 * Node 22 gets the same arrays from the objects.)
 */
export function returnArrays (st: StatementSync): StatementSync {
  if (typeof st.setReturnArrays === 'function') {
    st.setReturnArrays(true)
    return st
  }
  const get = (...a: SQLInputValue[]): unknown => { const r = st.get(...a); return r === undefined ? undefined : Object.values(r) }
  const all = (...a: SQLInputValue[]): unknown => st.all(...a).map((r) => Object.values(r))
  return new Proxy(st, {
    get (target, prop) {
      if (prop === 'get') return get
      if (prop === 'all') return all
      const v: unknown = Reflect.get(target, prop)
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    }
  })
}
