-- 0003_kv: a small key-value table beside the jobs (StorageDriver.kv*).
--
-- Input:  a database at version 2.
-- Output: qml_kv and its expiry index. Jobs are not touched.
--
-- What the dashboard shares between its servers: revoked sessions, the
-- session epoch and secret, and fixed-window counters of failed logins.
-- expires_at is epoch ms from the caller's clock (null: no expiry); a row
-- at or past it is never read back, and each write's batch deletes up to
-- 100 such rows first (statements/kv.ts), found through the partial index.

CREATE TABLE qml_kv (
  key        TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  expires_at INTEGER
) WITHOUT ROWID;

CREATE INDEX qml_kv_expires_at ON qml_kv (expires_at) WHERE expires_at IS NOT NULL;
