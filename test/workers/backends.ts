/**
 * The stores the workerd tests run against, built inside workerd with the
 * same modules the Worker bundle uses: memory, Redis through the Upstash
 * REST driver, PostgreSQL through Neon's HTTP driver. Both HTTP drivers talk
 * to the local gateways that global-setup.ts started in front of the real
 * servers.
 *
 * `suiteFor` is `describeWithService` for workerd: a missing service makes
 * the suite fail under CI and skip loudly elsewhere.
 */
import { describe, inject, it } from "vitest";
import type { Clock } from "../../src/core/clock.js";
import type { Storage } from "../../src/core/storage.js";
import { MemoryStorage } from "../../src/adapters/storage/memory/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/config.js";
import { UpstashDriver } from "../../src/adapters/storage/redis/drivers/upstash.js";
import { RedisStorage } from "../../src/adapters/storage/redis/redis-storage.js";
import { createNeonHttpDriver } from "../../src/adapters/storage/postgres/drivers/neon.js";
import { PostgresStorage } from "../../src/adapters/storage/postgres/postgres-storage.js";

export type BackendName = "memory" | "upstash" | "neon";
export const BACKENDS: BackendName[] = ["memory", "upstash", "neon"];

let counter = 0;
const unique = () => `${crypto.randomUUID().slice(0, 8)}${++counter}`;

/** Env values that point the deploy entry at a fresh prefix or schema on a backend. */
export function deployEnvFor(backend: "upstash" | "neon"): Record<string, string> {
  if (backend === "upstash") {
    return {
      QML_STORAGE: "redis",
      UPSTASH_REDIS_REST_URL: inject("upstashUrl"),
      UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
      QML_REDIS_PREFIX: `${inject("redisPrefix")}${unique()}:`,
    };
  }
  return {
    QML_STORAGE: "postgres",
    DATABASE_URL: inject("databaseUrl"),
    QML_NEON_FETCH_ENDPOINT: inject("neonFetchEndpoint"),
    QML_POSTGRES_SCHEMA: `${inject("pgSchemaPrefix")}${unique()}`.toLowerCase().replace(/[^a-z0-9_]/g, "_"),
  };
}

/** A fresh, migrated, isolated store on `backend`. */
export async function makeStorage(backend: BackendName, clock?: Clock): Promise<Storage> {
  const options = clock ? { clock } : {};
  if (backend === "memory") return new MemoryStorage(options);
  if (backend === "upstash") {
    const env = deployEnvFor("upstash");
    const resolved = new RedisConfig().withUrl(env.UPSTASH_REDIS_REST_URL!).withToken(env.UPSTASH_REDIS_REST_TOKEN!).withKeyPrefix(env.QML_REDIS_PREFIX!).resolve();
    const driver = new UpstashDriver({ url: resolved.url, token: resolved.token!, commandTimeoutMs: resolved.commandTimeoutMs, retries: resolved.retries, autoPipelining: resolved.autoPipelining });
    const storage = new RedisStorage(driver, resolved, options);
    await storage.migrate();
    return storage;
  }
  const env = deployEnvFor("neon");
  const driver = createNeonHttpDriver({ connectionString: env.DATABASE_URL!, fetchEndpoint: env.QML_NEON_FETCH_ENDPOINT! });
  const storage = new PostgresStorage(driver, { schema: env.QML_POSTGRES_SCHEMA!, ...options });
  await storage.migrate();
  return storage;
}

function serviceOf(backend: BackendName): "redis" | "postgres" | undefined {
  return backend === "upstash" ? "redis" : backend === "neon" ? "postgres" : undefined;
}

/** `describe` for one backend, failing under CI (and skipping loudly elsewhere) when its service is down. */
export function suiteFor(backend: BackendName, name: string, fn: () => void): void {
  const service = serviceOf(backend);
  const up = service === undefined || (service === "redis" ? inject("redisUp") : inject("postgresUp"));
  if (up) {
    describe(name, fn);
    return;
  }
  if (inject("ci")) {
    describe(name, () => {
      it(`needs ${service}, which is not reachable`, () => {
        throw new Error(`[qml] ${service} is not reachable and CI=true: start it instead of skipping`);
      });
    });
    return;
  }
  console.warn(`\n[qml] SKIPPING "${name}": ${service} is not reachable (set CI=true to make this a failure)\n`);
  describe.skip(name, fn);
}
