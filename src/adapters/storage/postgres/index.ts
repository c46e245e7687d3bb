/**
 * qml/postgres: the PostgreSQL backend and its drivers.
 *
 *   const storage = new Storage(postgresBackend(
 *     new PostgresConfig().withDatabaseUrl(url).withDriver("neon-http").withAutoMigrate(true),
 *   ));
 *
 * Importing this module loads neither `pg` nor `ws`: each is loaded on Node
 * when a driver that needs it is created (drivers/node-require.ts), so
 * Worker bundles stay free of them.
 */
import { PostgresConfig, type ResolvedPostgresConfig } from "./config.js";
import { PostgresBackend } from "./postgres-backend.js";

export { PostgresConfig, type PostgresDriverName, type ResolvedPostgresConfig } from "./config.js";
// A client of your own (a pool, a proxy): anything with query(text, params).
export type { QueryOptions, SqlClient, SqlDriver, SqlResult } from "./driver.js";
// Drivers with their modules passed in, for bundles that cannot load pg or ws at run time.
export { createPgDriver, type PgDriverOptions } from "./drivers/pg.js";
export { createNeonHttpDriver, createNeonPoolDriver, type NeonHttpDriverOptions, type NeonPoolDriverOptions, type NeonSocketOptions } from "./drivers/neon.js";
export type { PostgresBackend, PostgresTransport } from "./postgres-backend.js";

/**
 * The PostgreSQL backend for `new Storage(…)`. Synchronous and without I/O:
 * the SQL driver is made at the first call (and closed with the backend,
 * unless the config carries a driver instance, which stays the caller's);
 * with `withAutoMigrate(true)` that first call migrates first.
 */
export function postgresBackend(config: PostgresConfig | ResolvedPostgresConfig): PostgresBackend {
  return new PostgresBackend(config instanceof PostgresConfig ? config.resolve() : config);
}
