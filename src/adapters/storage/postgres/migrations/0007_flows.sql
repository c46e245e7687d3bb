-- 0007_flows: jobs that wait for other jobs (flows and continuations).
--
-- Input:  :QML_SCHEMA is replaced by the quoted schema name (validated
--         configuration, never user input) before this runs.
-- Output: the state 'awaiting' accepted by jobs' CHECK, jobs.flow (nullable,
--         added in the catalog only: existing rows are not rewritten), the
--         edges table, and a partial index of awaiting jobs.

-- The check gains 'awaiting'. NOT VALID: every existing row passed the old
-- check, a subset of this one, so a validating scan of the whole table
-- under the migration's exclusive lock would prove nothing; new and
-- updated rows are checked as before.
ALTER TABLE :QML_SCHEMA.jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE :QML_SCHEMA.jobs ADD CONSTRAINT jobs_state_check
  CHECK (state IN ('scheduled', 'enqueued', 'processing', 'succeeded', 'failed', 'awaiting_retry', 'deleted', 'awaiting')) NOT VALID;

-- What an awaiting job waits for (FlowSpec: dependsOn, on, otherwise), as
-- given; kept after the job is released, for it to read its dependencies.
-- json, not jsonb: read back as written, as args.
ALTER TABLE :QML_SCHEMA.jobs ADD COLUMN flow json;

-- One row per (dependency, waiter): written by the insert of an awaiting
-- job, deleted by the transition that takes the waiter out of awaiting.
-- Apart from jobs so that the claim never reads it: the statements that
-- finish jobs probe it by dependency (the primary key) to flag completions
-- others wait for, and the pruning leaves the jobs it names. A dependency
-- may be a job that does not exist (any more); no foreign key.
CREATE TABLE :QML_SCHEMA.edges (
  dep    text NOT NULL,
  waiter text NOT NULL,
  PRIMARY KEY (dep, waiter)
);
CREATE INDEX edges_waiter_idx ON :QML_SCHEMA.edges (waiter);

-- The maintenance beat pages through awaiting jobs by creation (keyset:
-- created_at, id): this index holds only them, so the sweep reads a page,
-- not the table.
CREATE INDEX jobs_awaiting_idx ON :QML_SCHEMA.jobs (created_at, id COLLATE "C") WHERE state = 'awaiting';

-- When the pruning last found a finished job past the TTL that others wait
-- for (an edge names it) and kept it: its age for the TTL counts from then,
-- so a waiter released since still finds it when it runs. Internal: not
-- part of the record.
ALTER TABLE :QML_SCHEMA.jobs ADD COLUMN kept_at bigint;
