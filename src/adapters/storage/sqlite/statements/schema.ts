/**
 * The migrations table, created by the first statement of every migration
 * batch (migrate.ts), and the version read.
 */
export const migrationsTable = `
CREATE TABLE IF NOT EXISTS qml_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT NOT NULL,
  applied_at TEXT NOT NULL DEFAULT (datetime('now'))
)`;

/** Records a migration. Input: ?1 version, ?2 name. Fails on a second run (primary key), which rolls the whole batch back. */
export const recordMigration = `INSERT INTO qml_migrations (version, name) VALUES (CAST(?1 AS INTEGER), ?2)`;

/** schemaVersion: the newest migration applied (0 for none). Fails with "no such table" before the first migration. */
export const schemaVersion = `SELECT coalesce(max(version), 0) AS version FROM qml_migrations`;
