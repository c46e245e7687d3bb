/**
 * Picks the storage the stock server runs on, from the environment. The
 * backends are imported only when chosen, so a memory-only server never
 * loads a driver.
 *
 * Nothing here connects: the job server migrates at start (and retries
 * while the store is unreachable), so that a database booting after the app
 * delays readiness instead of crashing the process.
 */
import { ConfigError, MemoryStorage, type Logger, type Storage } from "../../../index.js";
import type { NodeEnvConfig } from "./env.js";

export async function storageFromEnv(cfg: NodeEnvConfig, logger?: Logger): Promise<Storage> {
  switch (cfg.storage) {
    case "memory":
      return new MemoryStorage();
    case "redis": {
      if (!cfg.redisUrl) throw new ConfigError("QML_STORAGE=redis needs REDIS_URL");
      const { RedisConfig, createRedisStorage } = await import("../../storage/redis/index.js");
      const config = new RedisConfig().withUrl(cfg.redisUrl);
      if (cfg.redisToken) config.withToken(cfg.redisToken);
      if (cfg.redisPrefix) config.withKeyPrefix(cfg.redisPrefix);
      const storage = await createRedisStorage(config);
      logger?.info("storage: redis", { config: config.toString() });
      return storage;
    }
    case "postgres": {
      if (!cfg.databaseUrl) throw new ConfigError("QML_STORAGE=postgres needs DATABASE_URL");
      const { PostgresConfig, createPostgresStorage } = await import("../../storage/postgres/index.js");
      const config = new PostgresConfig().withDatabaseUrl(cfg.databaseUrl).withDriver("pg");
      if (cfg.postgresSchema) config.withSchema(cfg.postgresSchema);
      const storage = await createPostgresStorage(config);
      logger?.info("storage: postgres", { schema: cfg.postgresSchema ?? "qml" });
      return storage;
    }
  }
}
