/**
 * The job store a Worker's env names, over HTTP drivers only:
 *
 *   QML_STORAGE=redis     Upstash Redis over its REST API
 *                         (UPSTASH_REDIS_REST_URL + the UPSTASH_REDIS_REST_TOKEN secret)
 *   QML_STORAGE=postgres  Neon over HTTP, one statement per request (the DATABASE_URL secret)
 *
 * HTTP drivers hold no connection, so one store object per isolate serves
 * every request (workerd forbids handing a socket from one request to
 * another). The modules are imported one by one, not through the Postgres
 * and Redis package indexes, so that the bundle never contains `pg` or
 * `ioredis`.
 */
import { RedisConfig } from "../../../src/adapters/storage/redis/config.js";
import { UpstashDriver } from "../../../src/adapters/storage/redis/drivers/upstash.js";
import { RedisStorage } from "../../../src/adapters/storage/redis/redis-storage.js";
import { createNeonHttpDriver } from "../../../src/adapters/storage/postgres/drivers/neon.js";
import { PostgresStorage } from "../../../src/adapters/storage/postgres/postgres-storage.js";
import { ConfigError, type Storage } from "../../../src/index.js";

export interface StorageEnv {
  /** "redis" (default) or "postgres". */
  QML_STORAGE?: string;
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

function required(env: StorageEnv, name: "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN" | "DATABASE_URL"): string {
  const v = env[name];
  if (typeof v !== "string" || v.length === 0) {
    throw new ConfigError(`[qml] [cloudflare] ${name} is not set (a var in wrangler.jsonc, or: npx wrangler secret put ${name})`);
  }
  return v;
}

/** Built once per isolate (createWorker caches it); migrate() is idempotent and cheap once the schema is current. */
export async function storageFromEnv(env: StorageEnv): Promise<Storage> {
  const kind = (env.QML_STORAGE ?? "redis").trim().toLowerCase();
  if (kind === "redis") {
    const config = new RedisConfig().withUrl(required(env, "UPSTASH_REDIS_REST_URL")).withToken(required(env, "UPSTASH_REDIS_REST_TOKEN"));
    if (env.QML_REDIS_PREFIX) config.withKeyPrefix(env.QML_REDIS_PREFIX);
    const resolved = config.resolve();
    const driver = new UpstashDriver({
      url: resolved.url,
      token: resolved.token!,
      commandTimeoutMs: resolved.commandTimeoutMs,
      retries: resolved.retries,
      autoPipelining: resolved.autoPipelining,
    });
    const storage = new RedisStorage(driver, resolved);
    await storage.migrate();
    return storage;
  }
  if (kind === "postgres") {
    const driver = createNeonHttpDriver({
      connectionString: required(env, "DATABASE_URL"),
      ...(env.QML_NEON_FETCH_ENDPOINT ? { fetchEndpoint: env.QML_NEON_FETCH_ENDPOINT } : {}),
    });
    const storage = new PostgresStorage(driver, env.QML_POSTGRES_SCHEMA ? { schema: env.QML_POSTGRES_SCHEMA } : {});
    await storage.migrate();
    return storage;
  }
  throw new ConfigError(`[qml] [cloudflare] QML_STORAGE=${JSON.stringify(env.QML_STORAGE)} is not supported on Workers: use "redis" (Upstash) or "postgres" (Neon)`);
}

