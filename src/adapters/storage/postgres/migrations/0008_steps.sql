-- 0008_steps: durable steps (ctx.step) and the event-waiter index.
--
-- Input:  :QML_SCHEMA is replaced by the quoted schema name (validated
--         configuration, never user input) before this runs.
-- Output: jobs.steps (nullable, added in the catalog only: existing rows
--         are not rewritten) and the waiters table with its index.

-- A job's durable steps (StepRecord[]), as the last saveSteps wrote them;
-- null for a job that never saved any. json, not jsonb: read back as
-- written (key order, U+0000 escapes), as args and flow. Written only by
-- saveSteps, fenced by the lease; every other statement leaves it as it
-- is, so the steps outlive retries, suspensions, requeues and deletes
-- until the job is pruned. Not indexed: read with the row.
ALTER TABLE :QML_SCHEMA.jobs ADD COLUMN steps json;

-- Who may be waiting for an event (waitForEvent): one row per (event,
-- job), until expires_at (epoch ms from the caller's clock). An index of
-- whom to look at, not a record of who waits: the core checks the job's
-- steps before it delivers. Apart from jobs, so that no job statement
-- reads it; no foreign key (a job pruned leaves its rows to expire).
-- `waiters` reads an event's rows through the primary key and deletes the
-- expired ones it passes; each addWaiter deletes up to 100 expired rows
-- of any event, found through the index on expires_at.
CREATE TABLE :QML_SCHEMA.waiters (
  event      text NOT NULL,
  job_id     text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (event, job_id)
);

CREATE INDEX waiters_expires_at_idx ON :QML_SCHEMA.waiters (expires_at);
