-- 0002_pause_and_unique_window: paused queues, a unique key that holds for
-- a window, and the table an insert keeps its plan in.
--
-- Input:  a database at version 1.
-- Output: qml_jobs.unique_until (nullable; null: the key holds while the
--         job is kept, as every key did under 0001), qml_paused_queues and
--         qml_insert_plan. Existing rows are not rewritten (ADD COLUMN of a
--         nullable column without a default changes the schema only).

-- Epoch ms when unique_key stops deduplicating (uniqueTtl). An insert that
-- finds its key held past this time takes the key: the holder keeps its row
-- and loses unique_key and unique_until. Not indexed: it is read only on
-- the row qml_jobs_unique_key found.
ALTER TABLE qml_jobs ADD COLUMN unique_until INTEGER;

-- A queue listed here accepts jobs and gives none to a claim: the claim
-- leaves it out in the same statement. A handful of rows at most, read by
-- every claim.
CREATE TABLE qml_paused_queues (
  queue     TEXT PRIMARY KEY,
  paused_at INTEGER NOT NULL
) WITHOUT ROWID;

-- What an insert batch does with each group of records sharing a unique
-- key, decided once on the jobs as the batch found them (statements/insert.ts):
-- the statements after the decision change what it read (a holder that
-- loses its key looks like no holder), so they read the decision here. The
-- batch empties it before it commits: it is empty outside a batch.
CREATE TABLE qml_insert_plan (
  g    INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  hid  TEXT
);
