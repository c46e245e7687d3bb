/**
 * The stores the workerd tests run against, built inside workerd with the
 * same modules the Worker bundle uses: memory, Redis through the Upstash
 * REST driver, PostgreSQL through Neon's HTTP driver, SQLite through a D1
 * binding. Both HTTP drivers talk to the local gateways that
 * global-setup.ts started in front of the real servers; D1 is miniflare's
 * local D1 (`d1Databases` in vitest.config.ts), nothing to start.
 *
 * `suiteFor` is `describeWithService` for workerd: a missing service makes
 * the suite fail under CI and skip loudly elsewhere.
 */
import { env } from "cloudflare:test";
import { describe, inject, it } from "vitest";
import type { Clock } from "../../src/core/clock.js";
import { Storage, memoryBackend } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/config.js";
import { redisBackend } from "../../src/adapters/storage/redis/redis-backend.js";
import { PostgresConfig } from "../../src/adapters/storage/postgres/config.js";
import { PostgresBackend } from "../../src/adapters/storage/postgres/postgres-backend.js";
import { NEON_DRIVERS_ON_WORKERS } from "./neon-on-workers.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { d1Driver, type D1DatabaseLike } from "../../src/adapters/storage/sqlite/drivers/d1.js";

export type BackendName = "memory" | "upstash" | "neon" | "d1";
export const BACKENDS: BackendName[] = ["memory", "upstash", "neon", "d1"];

let counter = 0;
const unique = () => `${crypto.randomUUID().slice(0, 8)}${++counter}`;

/**
 * Env values that point the deploy entry at a fresh prefix or schema on a
 * backend; for D1, at the local binding (empty it first: `freshD1()`).
 */
export function deployEnvFor(backend: "upstash" | "neon"): Record<string, string>;
export function deployEnvFor(backend: "upstash" | "neon" | "d1"): Record<string, unknown>;
export function deployEnvFor(backend: "upstash" | "neon" | "d1"): Record<string, unknown> {
  if (backend === "d1") return { QML_STORAGE: "sqlite", QML_DB: d1Binding() };
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
  if (backend === "memory") return new Storage(memoryBackend(), options);
  if (backend === "upstash") {
    const env = deployEnvFor("upstash");
    const config = new RedisConfig().withUrl(env.UPSTASH_REDIS_REST_URL!).withToken(env.UPSTASH_REDIS_REST_TOKEN!).withKeyPrefix(env.QML_REDIS_PREFIX!);
    const storage = new Storage(redisBackend(config), options);
    await storage.migrate();
    return storage;
  }
  if (backend === "d1") {
    await freshD1();
    const storage = new Storage(sqliteBackend(new SqliteConfig().withDriver(d1Driver(d1Binding()))), options);
    await storage.migrate();
    return storage;
  }
  const env = deployEnvFor("neon");
  const config = new PostgresConfig()
    .withDatabaseUrl(env.DATABASE_URL!)
    .withDriver(NEON_DRIVERS_ON_WORKERS[0])
    .withNeonFetchEndpoint(env.QML_NEON_FETCH_ENDPOINT!)
    .withSchema(env.QML_POSTGRES_SCHEMA!);
  const storage = new Storage(new PostgresBackend(config.resolve()), options);
  await storage.migrate();
  if (storage.driver.transport !== NEON_DRIVERS_ON_WORKERS[0])
    throw new Error(`the neon backend runs on ${storage.driver.transport}, not ${NEON_DRIVERS_ON_WORKERS[0]}`);
  return storage;
}

/** The local D1 database of the workers project (miniflare `d1Databases` in vitest.config.ts). */
export function d1Binding(): D1DatabaseLike {
  return (env as unknown as { QML_DB: D1DatabaseLike }).QML_DB;
}

/**
 * Empties the local D1 database: every table, view, index and trigger a
 * test made. D1 has one database per binding and none can be made at run
 * time, so a fresh store is this database emptied and migrated again. The
 * workerd files run one at a time (vitest.config.ts), and a file's tests
 * one after another, so no other test is using it meanwhile. Two stores
 * made in one test share the database (the consumer suite makes a second
 * one before writing through the first).
 */
export async function freshD1(db: D1DatabaseLike = d1Binding()): Promise<void> {
  const { results = [] } = await db
    .prepare("SELECT type, name FROM sqlite_schema WHERE substr(name, 1, 7) <> 'sqlite_' AND substr(name, 1, 4) <> '_cf_' ORDER BY rowid DESC")
    .all<{ type: string; name: string }>();
  // Tables take their indexes and triggers with them; views go on their own.
  const drops = results
    .filter((r) => r.type === "table" || r.type === "view")
    .map((r) => db.prepare(`DROP ${r.type === "view" ? "VIEW" : "TABLE"} IF EXISTS "${r.name.replace(/"/g, '""')}"`));
  if (drops.length > 0) await db.batch(drops);
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
