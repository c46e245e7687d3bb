/**
 * A private corner of the shared Redis or PostgreSQL for one test: a random
 * key prefix or schema, the environment that points a server at it, a
 * storage the test reads it through, and the cleanup. SQLite: a file in a
 * temporary folder of its own.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { Storage } from "../../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../../src/adapters/storage/redis/index.js";
import { SqliteConfig, sqliteBackend } from "../../../src/adapters/storage/sqlite/index.js";
import { DATABASE_URL, REDIS_URL } from "../../helpers/services.js";

export type Backend = "redis" | "postgres" | "sqlite";
/** The backends behind a server of their own (a proxy can stand in front). */
export type ServiceBackend = Exclude<Backend, "sqlite">;

export interface TestStore {
  backend: Backend;
  /** QML_STORAGE and the URL, prefix or schema, for a server. */
  env: Record<string, string>;
  storage: Storage;
  cleanup(): Promise<void>;
}

const tag = () => crypto.randomUUID().replace(/-/g, "").slice(0, 10);

/** `url` defaults to the shared service; pass a proxy's URL to stand between. */
export async function testStore(backend: Backend, url?: string): Promise<TestStore> {
  if (backend === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "qmlt-node-sqlite-"));
    const path = join(dir, "qml.db");
    const storage = new Storage(sqliteBackend(new SqliteConfig(path)));
    await storage.migrate();
    return {
      backend,
      env: { QML_STORAGE: "sqlite", QML_SQLITE_PATH: path },
      storage,
      async cleanup() {
        await storage.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (backend === "redis") {
    const prefix = `qmlt-node-${tag()}:`;
    const target = url ?? REDIS_URL;
    const storage = new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(prefix)));
    await storage.migrate();
    return {
      backend,
      env: { QML_STORAGE: "redis", REDIS_URL: target, QML_REDIS_PREFIX: prefix },
      storage,
      async cleanup() {
        await storage.close();
        const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
        try {
          let cursor = "0";
          do {
            const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
            if (keys.length > 0) await r.del(...keys);
            cursor = next;
          } while (cursor !== "0");
        } finally {
          r.disconnect();
        }
      },
    };
  }
  const schema = `qmlt_node_${tag()}`;
  const target = url ?? DATABASE_URL;
  const storage = new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema)));
  await storage.migrate();
  return {
    backend,
    env: { QML_STORAGE: "postgres", DATABASE_URL: target, QML_POSTGRES_SCHEMA: schema },
    storage,
    async cleanup() {
      await storage.close();
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The shared service's URL with its port replaced (to go through a proxy). */
export function viaPort(backend: ServiceBackend, port: number): string {
  const u = new URL(backend === "redis" ? REDIS_URL : DATABASE_URL);
  u.hostname = "127.0.0.1";
  u.port = String(port);
  return u.toString();
}

export function serviceAddress(backend: ServiceBackend): { host: string; port: number } {
  const u = new URL(backend === "redis" ? REDIS_URL : DATABASE_URL);
  return { host: u.hostname || "127.0.0.1", port: Number(u.port || (backend === "redis" ? 6379 : 5432)) };
}
