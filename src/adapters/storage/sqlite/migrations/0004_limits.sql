-- 0004_limits: concurrency and rate limits per key, enforced by the claim.
--
-- Input:  a database at version 3.
-- Output: the jobs' limit columns (nullable: existing rows are not
--         rewritten), an index of running jobs by concurrency key, the rate
--         keys' next starts, and the table a claim keeps its pick in.

-- A job's limits as enqueued (JobOptions.concurrency, JobOptions.rateLimit),
-- and the rate window whose start the claim reserved for it.
ALTER TABLE qml_jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE qml_jobs ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE qml_jobs ADD COLUMN rate_key TEXT;
ALTER TABLE qml_jobs ADD COLUMN rate_limit INTEGER;
ALTER TABLE qml_jobs ADD COLUMN rate_interval INTEGER;
ALTER TABLE qml_jobs ADD COLUMN rate_window INTEGER;

-- The running jobs of a key, counted by the claim. Under SQLite's single
-- writer the count is exact, so no counter is kept that a path out of
-- processing could forget to give back.
CREATE INDEX qml_jobs_running_key ON qml_jobs (concurrency_key) WHERE state = 'processing' AND concurrency_key IS NOT NULL;

-- Each rate key's next start, numbered window * lim + starts given in that
-- window. A row whose starts are all in past windows is removed by the
-- housekeeping that rides on reclaimExpired.
CREATE TABLE qml_rate_starts (
  key  TEXT PRIMARY KEY,
  next INTEGER NOT NULL,
  lim  INTEGER NOT NULL,
  iv   INTEGER NOT NULL
) WITHOUT ROWID;

-- The jobs a claim picked, with what its limits decide for each: the
-- statements after the pick change what it read, so they read the pick
-- here. The claim's batch empties it before it commits.
CREATE TABLE qml_claim_pick (
  seq   INTEGER PRIMARY KEY,
  ord   INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  ckey  TEXT,
  clim  INTEGER,
  rkey  TEXT,
  rlim  INTEGER,
  riv   INTEGER,
  rwin  INTEGER,
  cur   INTEGER,
  win   INTEGER
);
