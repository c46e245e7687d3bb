/**
 * Picks the storage the stock server runs on, from the environment. The
 * backends are imported only when chosen, so a memory-only server never
 * loads a driver. The default is SQLite: a file (QML_SQLITE_PATH, default
 * ./data/qml.db, its folder created at start) that outlives restarts.
 *
 * Nothing here connects: the job server migrates at start (and retries
 * while the store is unreachable), so that a database booting after the app
 * delays readiness instead of crashing the process.
 */
import { ConfigError, Storage, memoryBackend, type Logger } from "../../../index.js";
import type { NodeEnvConfig } from "./env.js";

export async function storageFromEnv(cfg: NodeEnvConfig, logger?: Logger): Promise<Storage> {
  const retention = {
    ...(cfg.finishedJobTtlMs !== undefined ? { finishedJobTtlMs: cfg.finishedJobTtlMs } : {}),
    ...(cfg.maxFinishedJobs !== undefined ? { maxFinishedJobs: cfg.maxFinishedJobs } : {}),
  };
  const options = {
    ...(logger ? { logger } : {}),
    ...(cfg.encryptionKeys ? { encryption: cfg.encryptionKeys } : {}),
    ...(cfg.queueLimits ? { queueLimits: cfg.queueLimits } : {}),
  };
  switch (cfg.storage) {
    case "sqlite": {
      const { SqliteConfig, sqliteBackend } = await import("../../storage/sqlite/index.js");
      const config = new SqliteConfig(cfg.sqlitePath);
      if (cfg.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(cfg.finishedJobTtlMs);
      if (cfg.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(cfg.maxFinishedJobs);
      const storage = new Storage(sqliteBackend(config), options);
      logger?.info("storage: sqlite", { path: cfg.sqlitePath });
      return storage;
    }
    case "memory":
      return new Storage(memoryBackend(retention), options);
    case "redis": {
      if (!cfg.redisUrl) throw new ConfigError("QML_STORAGE=redis needs REDIS_URL");
      const { RedisConfig, redisBackend } = await import("../../storage/redis/index.js");
      const config = new RedisConfig().withUrl(cfg.redisUrl);
      if (cfg.redisToken) config.withToken(cfg.redisToken);
      if (cfg.redisPrefix) config.withKeyPrefix(cfg.redisPrefix);
      if (cfg.redisHashTag) config.withHashTag(cfg.redisHashTag);
      if (cfg.redisCluster) config.withCluster(true);
      if (cfg.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(cfg.finishedJobTtlMs);
      if (cfg.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(cfg.maxFinishedJobs);
      const storage = new Storage(redisBackend(config), options);
      logger?.info("storage: redis", { config: config.toString() });
      return storage;
    }
    case "postgres": {
      if (!cfg.databaseUrl) throw new ConfigError("QML_STORAGE=postgres needs DATABASE_URL");
      const { PostgresConfig, postgresBackend } = await import("../../storage/postgres/index.js");
      const config = new PostgresConfig().withDatabaseUrl(cfg.databaseUrl).withDriver(cfg.postgresDriver ?? "pg");
      if (cfg.postgresSchema) config.withSchema(cfg.postgresSchema);
      if (cfg.postgresMaxConnections !== undefined) config.withMaxConnections(cfg.postgresMaxConnections);
      if (cfg.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(cfg.finishedJobTtlMs);
      if (cfg.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(cfg.maxFinishedJobs);
      const storage = new Storage(postgresBackend(config), options);
      logger?.info("storage: postgres", { schema: cfg.postgresSchema ?? "qml" });
      return storage;
    }
  }
}
