-- 0005_kv: a small key-value table beside the jobs (StorageDriver.kv*).
--
-- Input:  :QML_SCHEMA is replaced by the quoted schema name (validated
--         configuration, never user input) before this runs.
-- Output: the kv table. Jobs and their history are not touched.
--
-- What the dashboard shares between its servers: revoked sessions, the
-- session epoch and secret, and fixed-window counters of failed logins.
-- expires_at is epoch ms from the caller's clock (null: no expiry); a row
-- at or past it is never read back, and each write deletes up to 100 such
-- rows (statements/kv.ts), found through the partial index below.

CREATE TABLE :QML_SCHEMA.kv (
  key        text PRIMARY KEY,
  value      text NOT NULL,
  expires_at bigint
);

CREATE INDEX kv_expires_at ON :QML_SCHEMA.kv (expires_at) WHERE expires_at IS NOT NULL;
