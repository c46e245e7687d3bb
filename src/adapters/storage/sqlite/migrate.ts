/**
 * The migration batch: the migrations table, then for each migration not
 * applied yet its row and its statements (split at build time by
 * scripts/embed-sql.ts from migrations/*.sql), all as one batch: one
 * transaction on better-sqlite3, one D1 batch. A second process migrating
 * at the same time fails on the version's primary key, its batch rolls back
 * whole, and it finds the version applied when it reads it again.
 */
import type { SqlStatement } from "./driver.js";
import { MIGRATIONS } from "./migrations.generated.js";
import { migrationsTable, recordMigration } from "./statements/index.js";

/** The schema version this code expects: the newest embedded migration. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The statements that bring a database at `from` to SCHEMA_VERSION. */
export function migrationBatch(from: number): SqlStatement[] {
  const out: SqlStatement[] = [{ sql: migrationsTable }];
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    out.push({ sql: recordMigration, params: [m.version, m.name] });
    for (const sql of m.statements) out.push({ sql });
  }
  return out;
}
