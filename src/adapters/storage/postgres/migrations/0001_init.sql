-- 0001_init: the job table, its indexes, recurring definitions and throughput counters.
--
-- Input:  :QML_SCHEMA is replaced by the quoted schema name (validated
--         configuration, never user input) before this runs.
-- Output: the objects below, created inside the migration transaction that
--         `migrate()` holds under an advisory lock.
--
-- Times are bigint epoch milliseconds passed in by the caller (the core's
-- clock), never the database's now(): leases and tests run on one clock.

CREATE TABLE :QML_SCHEMA.jobs (
  -- Insertion order: the last tie-breaker of the claim order, so that jobs
  -- enqueued within one millisecond still run FIFO.
  seq          bigint GENERATED ALWAYS AS IDENTITY,
  id           text PRIMARY KEY,
  name         text NOT NULL,
  queue        text NOT NULL,
  priority     integer NOT NULL DEFAULT 0,
  state        text NOT NULL CHECK (state IN ('scheduled', 'enqueued', 'processing', 'succeeded', 'failed', 'awaiting_retry', 'deleted')),
  attempts     integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL,
  retry        jsonb,
  timeout_ms   integer,
  unique_key   text,
  metadata     jsonb,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  run_at       bigint NOT NULL,
  lease_owner  text,
  lease_until  bigint,
  lease_token  bigint NOT NULL DEFAULT 0,
  finished_at  bigint,
  -- json, not jsonb: arguments and results read back byte for byte as written
  -- (key order included), as on the other backends.
  args         json NOT NULL,
  result       json,
  error        jsonb,
  progress     json,
  -- The last 50 transitions (HISTORY_LIMIT), trimmed by append_history in the
  -- statement that appends.
  history      jsonb NOT NULL DEFAULT '[]'
);

-- The claim walks this index in order and stops after `limit` rows: its cost
-- depends on the ready backlog of the asked queues, not on how many finished
-- jobs the table holds (they are not in the index at all).
CREATE INDEX jobs_ready_idx ON :QML_SCHEMA.jobs (queue, priority DESC, run_at, seq) WHERE state = 'enqueued';

-- Only jobs that ask for a key are deduplicated. Partial, so that the many
-- jobs without one add nothing to this index on each of their updates.
CREATE UNIQUE INDEX jobs_unique_key_idx ON :QML_SCHEMA.jobs (unique_key) WHERE unique_key IS NOT NULL;

-- Delayed jobs: due ones are claimed per queue (first index) and promoted
-- globally by run_at (second index).
CREATE INDEX jobs_delayed_queue_idx ON :QML_SCHEMA.jobs (queue, run_at) WHERE state IN ('scheduled', 'awaiting_retry');
CREATE INDEX jobs_delayed_idx ON :QML_SCHEMA.jobs (run_at) WHERE state IN ('scheduled', 'awaiting_retry');

-- Expired leases, for reclaimExpired.
CREATE INDEX jobs_processing_idx ON :QML_SCHEMA.jobs (lease_until) WHERE state = 'processing';

-- Finished jobs by age, for pruning by TTL and by count.
CREATE INDEX jobs_finished_idx ON :QML_SCHEMA.jobs (finished_at) WHERE state IN ('succeeded', 'failed', 'deleted');

-- Appends history entries and keeps the last 50. A single expression, so the
-- planner inlines it into the calling statement.
CREATE FUNCTION :QML_SCHEMA.append_history(history jsonb, entries jsonb) RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $fn$ SELECT jsonb_path_query_array(history || entries, '$[last - 49 to last]') $fn$;

CREATE TABLE :QML_SCHEMA.recurring (
  id         text PRIMARY KEY,
  cron       text NOT NULL,
  timezone   text,
  name       text NOT NULL,
  args       json NOT NULL,
  options    jsonb NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  last_slot  bigint
);

-- Succeeded/failed counts per bucket (size_ms = 60000 per minute, 3600000 per
-- hour), upserted by the statements that finish jobs. Kept apart from the
-- jobs so that pruning finished jobs does not erase the throughput history;
-- old buckets are pruned with finished jobs.
CREATE TABLE :QML_SCHEMA.throughput (
  size_ms   integer NOT NULL,
  bucket    bigint NOT NULL,
  succeeded bigint NOT NULL DEFAULT 0,
  failed    bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (size_ms, bucket)
);
