/**
 * qml/postgres: the PostgreSQL storage and its drivers.
 *
 *   const storage = await createPostgresStorage(
 *     new PostgresConfig().withDatabaseUrl(url).withDriver("neon-http").withAutoMigrate(true),
 *   );
 *
 * Importing this module loads neither `pg` nor `ws`: each is loaded on Node
 * when a driver that needs it is created (drivers/node-require.ts), so
 * Worker bundles stay free of them.
 */
import type { Clock } from "../../../core/clock.js";
import { ConfigError } from "../../../core/errors.js";
import { PostgresConfig, type ResolvedPostgresConfig } from "./config.js";
import type { SqlDriver } from "./driver.js";
import { createNeonHttpDriver, createNeonPoolDriver } from "./drivers/neon.js";
import { createPgDriver } from "./drivers/pg.js";
import { PostgresStorage } from "./postgres-storage.js";

export { PostgresConfig, type PostgresDriverName, type ResolvedPostgresConfig } from "./config.js";
export {
  isUnavailable,
  quoteIdent,
  statementName,
  toStorageError,
  validateSchemaName,
  SCHEMA_NAME,
  type QueryOptions,
  type SqlClient,
  type SqlDriver,
  type SqlResult,
} from "./driver.js";
export { PgDriver, createPgDriver, type PgDriverOptions } from "./drivers/pg.js";
export {
  NeonHttpDriver,
  NeonPoolDriver,
  createNeonHttpDriver,
  createNeonPoolDriver,
  type NeonHttpDriverOptions,
  type NeonPoolDriverOptions,
  type NeonSocketOptions,
} from "./drivers/neon.js";
export { MIGRATION_LOCK_CLASS, PostgresStorage, SCHEMA_VERSION, migrationBlock, type PostgresStorageOptions } from "./postgres-storage.js";
export { MIGRATIONS, type EmbeddedMigration } from "./migrations.generated.js";

/** Makes the driver a config names. */
export async function createPostgresDriver(config: ResolvedPostgresConfig): Promise<SqlDriver> {
  if (typeof config.driver !== "string") return config.driver;
  const url = config.databaseUrl;
  if (!url) throw new ConfigError("[qml] [postgres] no database URL: use withDatabaseUrl(url) or set QML_DATABASE_URL / DATABASE_URL");
  const pool = {
    connectionString: url,
    max: config.maxConnections,
    min: config.minConnections,
    connectTimeoutMs: config.connectTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    ...(config.queryTimeoutMs ? { queryTimeoutMs: config.queryTimeoutMs } : {}),
  };
  switch (config.driver) {
    case "pg":
      return createPgDriver(pool);
    case "neon-ws":
      return createNeonPoolDriver({ ...pool, socket: config.neonSocket });
    case "neon-http":
      return createNeonHttpDriver({
        connectionString: url,
        ...(config.neonFetchEndpoint ? { fetchEndpoint: config.neonFetchEndpoint } : {}),
        ...(config.queryTimeoutMs ? { queryTimeoutMs: config.queryTimeoutMs } : {}),
      });
  }
}

/**
 * Makes a PostgresStorage from a config: creates the driver (closed with the
 * storage, unless the config carries a driver instance) and migrates when
 * `withAutoMigrate(true)`.
 */
export async function createPostgresStorage(config: PostgresConfig | ResolvedPostgresConfig, options: { clock?: Clock } = {}): Promise<PostgresStorage> {
  const c = config instanceof PostgresConfig ? config.resolve() : config;
  const driver = await createPostgresDriver(c);
  const storage = new PostgresStorage(driver, {
    schema: c.schema,
    completedJobTtlMs: c.completedJobTtlMs,
    maxFinishedJobs: c.maxFinishedJobs,
    notify: c.notify,
    preparedStatements: c.preparedStatements,
    ownsDriver: typeof c.driver === "string",
    ...(options.clock ? { clock: options.clock } : {}),
  });
  if (c.autoMigrate) {
    try {
      await storage.migrate();
    } catch (e) {
      await storage.close().catch(() => {});
      throw e;
    }
  }
  return storage;
}
