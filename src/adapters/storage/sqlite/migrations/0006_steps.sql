-- 0006_steps: durable steps (ctx.step) and the event-waiter index.
--
-- Input:  a database at version 5.
-- Output: qml_jobs.steps (nullable; ADD COLUMN rewrites no row) and
--         qml_waiters with its expiry index.
--
-- A job's steps are the JSON text of its StepRecord[], as the last
-- saveSteps wrote them (null: none ever saved), written only by saveSteps
-- under the job's lease and left as they are by every other statement, so
-- they outlive retries, suspensions, requeues and deletes until the job is
-- pruned.
--
-- qml_waiters notes who may be waiting for an event (waitForEvent): one row
-- per (event, job) until expires_at (epoch ms from the caller's clock). An
-- index of whom to look at: the core checks each job's steps before it
-- delivers. Apart from qml_jobs, so that no job statement reads it. Each
-- addWaiter batch deletes up to 100 expired rows first, found through the
-- index on expires_at; `waiters` skips the expired rows of its event.

ALTER TABLE qml_jobs ADD COLUMN steps TEXT;

CREATE TABLE qml_waiters (
  event      TEXT NOT NULL,
  job_id     TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (event, job_id)
) WITHOUT ROWID;

CREATE INDEX qml_waiters_expires_at ON qml_waiters (expires_at);
