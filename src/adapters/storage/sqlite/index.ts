/**
 * qml/sqlite: the SQLite backend and its Node driver.
 *
 *   const storage = new Storage(sqliteBackend(new SqliteConfig("./data/qml.db")));   // better-sqlite3
 *   const edge = new Storage(sqliteBackend(new SqliteConfig().withDriver(d1Driver(env.QML_DB))));   // D1
 *   await storage.migrate();
 *
 * Importing this module loads no native code: better-sqlite3 is required on
 * Node when the first database is opened (../node-require.ts), so a Workers
 * bundle of the backend, over a D1 driver, never contains it.
 */
import { SqliteConfig, type ResolvedSqliteConfig } from "./config.js";
import { SqliteBackend } from "./sqlite-backend.js";

export { SqliteConfig, type ResolvedSqliteConfig } from "./config.js";
// A driver of your own (D1, a proxy): anything that runs a batch of statements atomically.
export type { SqlStatement, SqliteDriver, SqliteRow, SqliteValue } from "./driver.js";
export { BetterSqlite3Driver, createBetterSqlite3Driver, type BetterSqlite3DriverOptions } from "./drivers/better-sqlite3.js";
// Workers: a D1 binding (`d1_databases` in wrangler.jsonc) as the driver.
export { D1Driver, d1Driver, type D1DatabaseLike } from "./drivers/d1.js";
export type { SqliteBackend } from "./sqlite-backend.js";

/**
 * The SQLite backend for `new Storage(…)`. Synchronous and without I/O: the
 * database is opened at the first call (and closed with the backend, unless
 * the config carries a driver instance, which stays the caller's); with
 * `withAutoMigrate(true)` that first call migrates first.
 */
export function sqliteBackend(config: SqliteConfig | ResolvedSqliteConfig): SqliteBackend {
  return new SqliteBackend(config instanceof SqliteConfig ? config.resolve() : config);
}
