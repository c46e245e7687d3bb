/**
 * The job store a Worker's env names:
 *
 *   QML_STORAGE=sqlite    (default) a D1 database, the binding QML_DB
 *                         (`d1_databases` in wrangler.jsonc): nothing outside Cloudflare
 *   QML_STORAGE=redis     Upstash Redis over its REST API
 *                         (UPSTASH_REDIS_REST_URL + the UPSTASH_REDIS_REST_TOKEN secret)
 *   QML_STORAGE=postgres  Neon over HTTP, one statement per request (the DATABASE_URL secret)
 *
 * None holds a connection (D1 is a binding, the other two speak HTTP), so
 * one store object per isolate serves every request (workerd forbids
 * handing a socket from one request to another). The backends are imported
 * by their own modules, not through the package indexes, so that the
 * bundle never contains `pg`, `ioredis` or `better-sqlite3`
 * (test/workers/deploy.node.test.ts checks the bundle).
 */
import { RedisConfig } from "../../../src/adapters/storage/redis/config.js";
import { redisBackend } from "../../../src/adapters/storage/redis/redis-backend.js";
import { PostgresConfig } from "../../../src/adapters/storage/postgres/config.js";
import { PostgresBackend } from "../../../src/adapters/storage/postgres/postgres-backend.js";
import { SqliteConfig } from "../../../src/adapters/storage/sqlite/config.js";
import { SqliteBackend } from "../../../src/adapters/storage/sqlite/sqlite-backend.js";
import { d1Driver, isD1Database, type D1DatabaseLike } from "../../../src/adapters/storage/sqlite/drivers/d1.js";
import { ConfigError, Storage } from "../../../src/index.js";
import { rawEnv, readEnv } from "../../../src/core/config/env.js";

/** The name of the D1 binding the sqlite store runs on. */
export const D1_BINDING = "QML_DB";

export interface StorageEnv {
  /** "sqlite" (default: D1), "redis" (Upstash) or "postgres" (Neon). */
  QML_STORAGE?: string;
  /** The D1 database (a `d1_databases` binding in wrangler.jsonc). */
  QML_DB?: D1DatabaseLike;
  UPSTASH_REDIS_REST_URL?: string;
  /** Secret. */
  UPSTASH_REDIS_REST_TOKEN?: string;
  /** Secret: postgres://user:password@ep-….neon.tech/db */
  DATABASE_URL?: string;
  /** Local development only: the Neon gateway's /sql endpoint. */
  QML_NEON_FETCH_ENDPOINT?: string;
  QML_REDIS_PREFIX?: string;
  QML_POSTGRES_SCHEMA?: string;
}

/**
 * The store an env names, read through qml's table of environment
 * variables (README "Configuration"); synchronous and without I/O (every
 * backend reaches its store on first use). createWorker builds it once per isolate
 * and migrates it once (`migrate: true`): idempotent, and cheap once current.
 */
export function storageFromEnv(env: StorageEnv): Storage {
  const e = env as Record<string, unknown>;
  const settings = readEnv(e, "workers");
  const required = (value: string | undefined, name: string): string => {
    if (value === undefined)
      throw new ConfigError(`${name} is not set (a var in wrangler.jsonc, or: npx wrangler secret put ${name})`, { scope: "cloudflare" });
    return value;
  };
  // Encrypted arguments: the keys are a secret (npx wrangler secret put QML_ENCRYPTION_KEYS).
  const options = {
    ...(settings.encryptionKeys ? { encryption: settings.encryptionKeys } : {}),
    ...(settings.queueLimits ? { queueLimits: settings.queueLimits } : {}),
  };
  // This deployment's default is D1: it needs no account outside Cloudflare
  // (memory would not outlive an isolate).
  const kind = rawEnv(e, "QML_STORAGE") === undefined ? "sqlite" : settings.storage;
  if (kind === "sqlite") {
    const db = e[D1_BINDING];
    if (!isD1Database(db)) {
      throw new ConfigError(
        `QML_STORAGE=sqlite needs the D1 binding ${D1_BINDING}: a "d1_databases" entry in wrangler.jsonc ({ "binding": "${D1_BINDING}", "database_name": "qml" })`,
        { scope: "cloudflare" },
      );
    }
    // The binding holds no connection: one backend per isolate and env, as for the HTTP drivers.
    const config = new SqliteConfig().withDriver(d1Driver(db));
    if (settings.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(settings.finishedJobTtlMs);
    if (settings.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(settings.maxFinishedJobs);
    return new Storage(new SqliteBackend(config.resolve()), options);
  }
  if (kind === "redis") {
    const config = new RedisConfig()
      .withUrl(required(settings.redisUrl ?? settings.upstashUrl, "UPSTASH_REDIS_REST_URL"))
      .withToken(required(settings.upstashToken, "UPSTASH_REDIS_REST_TOKEN"));
    if (settings.redisPrefix) config.withKeyPrefix(settings.redisPrefix);
    if (settings.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(settings.finishedJobTtlMs);
    if (settings.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(settings.maxFinishedJobs);
    return new Storage(redisBackend(config), options);
  }
  if (kind === "postgres") {
    // Neon over HTTP: the driver that works on Workers without a socket held across requests.
    const config = new PostgresConfig().withDatabaseUrl(required(settings.databaseUrl, "DATABASE_URL")).withDriver(settings.postgresDriver ?? "neon-http");
    if (env.QML_NEON_FETCH_ENDPOINT) config.withNeonFetchEndpoint(env.QML_NEON_FETCH_ENDPOINT);
    if (settings.postgresSchema) config.withSchema(settings.postgresSchema);
    if (settings.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(settings.finishedJobTtlMs);
    if (settings.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(settings.maxFinishedJobs);
    return new Storage(new PostgresBackend(config.resolve()), options);
  }
  throw new ConfigError(
    `QML_STORAGE=${JSON.stringify(env.QML_STORAGE)} is not supported on Workers: use "sqlite" (D1), "redis" (Upstash) or "postgres" (Neon)`,
    {
      scope: "cloudflare",
    },
  );
}
