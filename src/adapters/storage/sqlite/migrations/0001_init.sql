-- 0001_init: the job table, its indexes, recurring definitions, throughput
-- counters and duration estimates.
--
-- Input:  nothing. Every object is named qml_*, so that qml's tables can
--         share a database with an application's own (a D1 database, say).
-- Output: the objects below. The backend runs this file's statements, split
--         by scripts/embed-sql.ts, as one batch with the version's row in
--         qml_migrations: all of it applies, or none.
--
-- Times are integer epoch milliseconds passed in by the caller (the core's
-- clock), never SQLite's own: leases and tests run on one clock. JSON is
-- kept as text (JSON.stringify's output, read back byte for byte).

CREATE TABLE qml_jobs (
  -- The rowid: insertion order, the last tie-breaker of the claim order, so
  -- that jobs enqueued within one millisecond still run FIFO, and a released
  -- job keeps its place. Never reused while a newer job exists.
  seq          INTEGER PRIMARY KEY,
  id           TEXT NOT NULL UNIQUE,
  name         TEXT NOT NULL,
  queue        TEXT NOT NULL,
  priority     INTEGER NOT NULL DEFAULT 0,
  state        TEXT NOT NULL CHECK (state IN ('scheduled', 'enqueued', 'processing', 'succeeded', 'failed', 'awaiting_retry', 'deleted')),
  attempts     INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  retry        TEXT,
  timeout_ms   INTEGER,
  unique_key   TEXT,
  metadata     TEXT,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  run_at       INTEGER NOT NULL,
  lease_owner  TEXT,
  lease_until  INTEGER,
  lease_token  INTEGER NOT NULL DEFAULT 0,
  finished_at  INTEGER,
  args         TEXT NOT NULL,
  result       TEXT,
  error        TEXT,
  progress     TEXT,
  -- The last 50 transitions (HISTORY_LIMIT): each entry's JSON, oldest
  -- first, one per line ('' when none), and how many there are. Appending
  -- is a concatenation (statements/fragments.ts), as on Redis and PostgreSQL.
  history      TEXT NOT NULL DEFAULT '',
  hn           INTEGER NOT NULL DEFAULT 0
);

-- The claim reads this index per asked queue, in claim order, and stops
-- after `limit` entries: its cost follows the ready backlog of the asked
-- queues, not the finished jobs (which are not in it).
CREATE INDEX qml_jobs_ready ON qml_jobs (queue, priority DESC, run_at, seq) WHERE state = 'enqueued';

-- Only jobs that ask for a key are deduplicated.
CREATE UNIQUE INDEX qml_jobs_unique_key ON qml_jobs (unique_key) WHERE unique_key IS NOT NULL;

-- Delayed jobs: due ones are claimed per queue (first index) and promoted
-- by run_at (second index).
CREATE INDEX qml_jobs_delayed_queue ON qml_jobs (queue, run_at) WHERE state IN ('scheduled', 'awaiting_retry');
CREATE INDEX qml_jobs_delayed ON qml_jobs (run_at) WHERE state IN ('scheduled', 'awaiting_retry');

-- Expired leases, for reclaimExpired.
CREATE INDEX qml_jobs_processing ON qml_jobs (lease_until) WHERE state = 'processing';

-- Finished jobs by age, for pruning by TTL and by count.
CREATE INDEX qml_jobs_finished ON qml_jobs (finished_at) WHERE state IN ('succeeded', 'failed', 'deleted');

CREATE TABLE qml_recurring (
  id         TEXT PRIMARY KEY,
  cron       TEXT NOT NULL,
  timezone   TEXT,
  name       TEXT NOT NULL,
  args       TEXT NOT NULL,
  options    TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_slot  INTEGER
);

-- Succeeded/failed counts per bucket (size_ms = 60000 per minute, 3600000
-- per hour), added to by the statements that finish jobs. Apart from the
-- jobs, so that pruning finished jobs keeps the throughput history; old
-- buckets are pruned with finished jobs.
CREATE TABLE qml_throughput (
  size_ms   INTEGER NOT NULL,
  bucket    INTEGER NOT NULL,
  succeeded INTEGER NOT NULL DEFAULT 0,
  failed    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (size_ms, bucket)
) WITHOUT ROWID;

-- Expected run time per job name, for short-lived invocations: a cold
-- isolate plans its deadline with what earlier ones measured.
CREATE TABLE qml_estimates (
  name       TEXT PRIMARY KEY,
  ms         INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
