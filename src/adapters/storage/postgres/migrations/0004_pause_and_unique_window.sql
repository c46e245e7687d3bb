-- 0004_pause_and_unique_window: paused queues, and a unique key that holds for a window.
--
-- Input:  :QML_SCHEMA is replaced by the quoted schema name (validated
--         configuration, never user input) before this runs.
-- Output: jobs.unique_until (nullable; null: the key holds while the job is
--         kept, as every key did under 0003) and the paused_queues table.
--         Existing rows are not rewritten: a nullable column without a
--         default is added in the catalog only.

-- Epoch ms when unique_key stops deduplicating (uniqueTtl). An insert that
-- finds its key held past this time takes the key: the holder keeps its row
-- and loses unique_key and unique_until. Not indexed: it is read only on
-- the row the unique index found.
ALTER TABLE :QML_SCHEMA.jobs ADD COLUMN unique_until bigint;

-- A queue listed here accepts jobs and gives none to a claim: the claim
-- leaves these queues out of the ones it was asked for, in the same
-- statement. A handful of rows at most, read by every claim.
CREATE TABLE :QML_SCHEMA.paused_queues (
  queue     text PRIMARY KEY,
  paused_at bigint NOT NULL
);
