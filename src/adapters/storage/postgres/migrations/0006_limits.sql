-- 0006_limits: concurrency and rate limits per key, enforced by the claim.
--
-- Input:  :QML_SCHEMA is replaced by the quoted schema name (validated
--         configuration, never user input) before this runs.
-- Output: the jobs' limit columns (nullable, added in the catalog only:
--         existing rows are not rewritten) and the two counter tables.

-- A job's limits as enqueued (JobOptions.concurrency, JobOptions.rateLimit),
-- and the rate window whose start the claim reserved for it.
ALTER TABLE :QML_SCHEMA.jobs
  ADD COLUMN concurrency_key text,
  ADD COLUMN concurrency_limit integer,
  ADD COLUMN rate_key text,
  ADD COLUMN rate_limit integer,
  ADD COLUMN rate_interval bigint,
  ADD COLUMN rate_window bigint;

-- Jobs of each key in processing. The claim upserts a key's row to take
-- slots (the row lock orders concurrent claims of one key, and the count
-- is read from the row's newest version, never a snapshot); every
-- statement that moves a job out of processing gives its slot back. A row
-- at 0 is removed by reclaimExpired's housekeeping. `granted` is the last
-- claim's grant, written so the claim can read it back (RETURNING sees the
-- new row only); `lim` the last limit asked.
CREATE TABLE :QML_SCHEMA.concurrency_slots (
  key     text PRIMARY KEY,
  active  integer NOT NULL,
  lim     integer NOT NULL,
  granted integer NOT NULL
);

-- Each rate key's next start, numbered window * lim + starts given in that
-- window; `base` is where the last claim began (read back as `granted` is).
-- A row whose starts are all in past windows is removed by housekeeping.
CREATE TABLE :QML_SCHEMA.rate_starts (
  key  text PRIMARY KEY,
  next bigint NOT NULL,
  base bigint NOT NULL,
  lim  integer NOT NULL,
  iv   bigint NOT NULL
);
