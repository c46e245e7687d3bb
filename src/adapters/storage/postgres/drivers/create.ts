/**
 * Makes the SQL driver a config names. Loads nothing by itself: `pg` and
 * `ws` are required by the drivers that need them, when they are created.
 */
import { ConfigError } from "../../../../core/errors.js";
import type { ResolvedPostgresConfig } from "../config.js";
import type { SqlDriver } from "../driver.js";
import { createNeonHttpDriver, createNeonPoolDriver } from "./neon.js";
import { createPgDriver } from "./pg.js";

export async function createPostgresDriver(config: ResolvedPostgresConfig): Promise<SqlDriver> {
  if (typeof config.driver !== "string") return config.driver;
  const url = config.databaseUrl;
  if (!url) throw new ConfigError("no database URL: use withDatabaseUrl(url) or set QML_DATABASE_URL / DATABASE_URL", { scope: "postgres" });
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
