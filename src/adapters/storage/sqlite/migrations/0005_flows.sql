-- 0005_flows: flows and continuations (core/flows.ts): the state
-- 'awaiting', the job's flow, and the dependency edges.
--
-- Input:  a database at version 4.
-- Output: qml_jobs rebuilt with 'awaiting' in its state CHECK and the
--         columns flow and waited_until (every row kept, with its seq, so
--         claim order and FIFO ties survive), every index of 0001..0004 made again on it, and
--         qml_job_deps with its waiter index.
--
-- SQLite cannot change a CHECK constraint in place, and D1 allows neither
-- PRAGMA writable_schema nor a PRAGMA inside its batch: the table is
-- rebuilt the documented way (new table, copy, drop, rename, indexes),
-- which runs in the migration's batch, one transaction. No trigger or view
-- names qml_jobs, and no foreign key points at it. The copy costs a write
-- of every job once (about a second per 500,000 jobs on a laptop).

CREATE TABLE qml_jobs_new (
  seq               INTEGER PRIMARY KEY,
  id                TEXT NOT NULL UNIQUE,
  name              TEXT NOT NULL,
  queue             TEXT NOT NULL,
  priority          INTEGER NOT NULL DEFAULT 0,
  state             TEXT NOT NULL CHECK (state IN ('scheduled', 'enqueued', 'processing', 'succeeded', 'failed', 'awaiting_retry', 'deleted', 'awaiting')),
  attempts          INTEGER NOT NULL DEFAULT 0,
  max_attempts      INTEGER NOT NULL,
  retry             TEXT,
  timeout_ms        INTEGER,
  unique_key        TEXT,
  metadata          TEXT,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  run_at            INTEGER NOT NULL,
  lease_owner       TEXT,
  lease_until       INTEGER,
  lease_token       INTEGER NOT NULL DEFAULT 0,
  finished_at       INTEGER,
  args              TEXT NOT NULL,
  result            TEXT,
  error             TEXT,
  progress          TEXT,
  history           TEXT NOT NULL DEFAULT '',
  hn                INTEGER NOT NULL DEFAULT 0,
  unique_until      INTEGER,
  concurrency_key   TEXT,
  concurrency_limit INTEGER,
  rate_key          TEXT,
  rate_limit        INTEGER,
  rate_interval     INTEGER,
  rate_window       INTEGER,
  -- What an awaiting job waits for (FlowSpec) as JSON.stringify wrote it;
  -- kept after the job is released (its handler reads its dependencies
  -- through it). Null for other jobs.
  flow              TEXT,
  -- When a job that waited for this one was last released (epoch ms; null:
  -- never). The retention counts a dependency's age from the later of this
  -- and finished_at, so that a child that finished long before its parent
  -- was released is still there when the parent runs and reads it.
  waited_until      INTEGER
);

INSERT INTO qml_jobs_new (seq, id, name, queue, priority, state, attempts, max_attempts, retry, timeout_ms, unique_key, metadata,
                          created_at, updated_at, run_at, lease_owner, lease_until, lease_token, finished_at, args, result, error,
                          progress, history, hn, unique_until, concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval,
                          rate_window)
SELECT seq, id, name, queue, priority, state, attempts, max_attempts, retry, timeout_ms, unique_key, metadata,
       created_at, updated_at, run_at, lease_owner, lease_until, lease_token, finished_at, args, result, error,
       progress, history, hn, unique_until, concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval,
       rate_window
FROM qml_jobs ORDER BY seq;

DROP TABLE qml_jobs;

ALTER TABLE qml_jobs_new RENAME TO qml_jobs;

-- The indexes of 0001, 0002 and 0004, as they were (see those files for why each exists).
CREATE INDEX qml_jobs_ready ON qml_jobs (queue, priority DESC, run_at, seq) WHERE state = 'enqueued';
CREATE UNIQUE INDEX qml_jobs_unique_key ON qml_jobs (unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX qml_jobs_delayed_queue ON qml_jobs (queue, run_at) WHERE state IN ('scheduled', 'awaiting_retry');
CREATE INDEX qml_jobs_delayed ON qml_jobs (run_at) WHERE state IN ('scheduled', 'awaiting_retry');
CREATE INDEX qml_jobs_processing ON qml_jobs (lease_until) WHERE state = 'processing';
CREATE INDEX qml_jobs_finished ON qml_jobs (finished_at) WHERE state IN ('succeeded', 'failed', 'deleted');
CREATE INDEX qml_jobs_running_key ON qml_jobs (concurrency_key) WHERE state = 'processing' AND concurrency_key IS NOT NULL;

-- Awaiting jobs in the order the maintenance sweep pages through them
-- (Storage.sweepAwaiting: state awaiting, by created_at then id), so that
-- the sweep every beat makes reads the awaiting jobs, not the table.
CREATE INDEX qml_jobs_awaiting ON qml_jobs (created_at, id) WHERE state = 'awaiting';

-- Dependency edges: `waiter` (an awaiting job) waits for `dep`. Written by
-- the insert of the waiter (only when it creates it), deleted by the
-- transition that takes the waiter out of awaiting. `dep` may name a job
-- that does not exist (any more). Read by dependent lookups, by complete
-- and transition (whether a job that finished has waiters), and by the
-- retention prune, which keeps a finished job an edge names.
CREATE TABLE qml_job_deps (
  dep    TEXT NOT NULL,
  waiter TEXT NOT NULL,
  PRIMARY KEY (dep, waiter)
) WITHOUT ROWID;

CREATE INDEX qml_job_deps_waiter ON qml_job_deps (waiter);
