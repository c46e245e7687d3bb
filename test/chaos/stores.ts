/**
 * The stores the chaos tests run on, described by a plain JSON `StoreSpec`
 * so that a spawned worker process opens exactly the store the test opened.
 *
 * Client drivers are built here and handed to the backends rather than
 * created by them: a backend loads ioredis, pg and better-sqlite3 at run
 * time from node_modules, which a bundled worker (see processes.ts) cannot
 * resolve. Passing the modules in keeps the bundle self-contained (native
 * better-sqlite3 is loaded by path, see sqliteSpec); the storage code under
 * test is the same.
 *
 * No vitest import here: worker processes load this module too.
 */
import { createRequire } from "node:module";
import * as ioredis from "ioredis";
import pg from "pg";
import ws from "ws";
import { Storage, memoryBackend } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { createNeonHttpDriver, createNeonPoolDriver } from "../../src/adapters/storage/postgres/drivers/neon.js";
import { createPgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import type { Clock } from "../../src/core/clock.js";

/** Finished jobs are kept for the whole run: the analysis reads every one of them. */
const KEEP_ALL = 10_000_000;

export type StoreSpec =
  | { kind: "memory" }
  | { kind: "redis"; url: string; prefix: string; commandTimeoutMs?: number }
  | { kind: "upstash"; url: string; token: string; prefix: string; commandTimeoutMs?: number; retries?: number }
  | {
      kind: "postgres";
      driver: "pg" | "neon-ws" | "neon-http";
      url: string;
      schema: string;
      /** neon-ws: `host:port` of the local Neon gateway. */
      wsGateway?: string;
      /** neon-http: the gateway's /sql endpoint. */
      fetchEndpoint?: string;
      queryTimeoutMs?: number;
      maxConnections?: number;
      notify?: boolean;
    }
  | {
      kind: "sqlite";
      /** The database file every process of the run opens. */
      path: string;
      /** better-sqlite3's entry file: a bundled worker cannot resolve the package, so it loads it by path (see sqliteSpec). */
      module: string;
    };

/**
 * better-sqlite3's entry file, resolved here (in the test's process, which
 * has node_modules) for the bundled workers. Native code cannot go into
 * the bundle: it is loaded from where it was built.
 */
export function betterSqlite3Path(): string {
  return createRequire(import.meta.url).resolve("better-sqlite3");
}

/** A SQLite store spec for a file every process of the run opens. */
export function sqliteSpec(path: string): StoreSpec {
  return { kind: "sqlite", path, module: betterSqlite3Path() };
}

/** A short label for figures and test names. */
export function specLabel(spec: StoreSpec): string {
  switch (spec.kind) {
    case "memory":
      return "memory";
    case "redis":
      return "redis/tcp";
    case "upstash":
      return "redis/upstash";
    case "postgres":
      return `postgres/${spec.driver}`;
    case "sqlite":
      return "sqlite";
  }
}

/** Opens (and migrates) the store a spec describes. */
export async function openStore(spec: StoreSpec, options: { clock?: Clock } = {}): Promise<Storage> {
  const clock = options.clock ? { clock: options.clock } : {};
  let storage: Storage;
  switch (spec.kind) {
    case "memory":
      storage = new Storage(memoryBackend({ maxFinishedJobs: KEEP_ALL }), { ...clock });
      break;
    case "redis": {
      const config = new RedisConfig(spec.url).withKeyPrefix(spec.prefix).withMaxFinishedJobs(KEEP_ALL);
      if (spec.commandTimeoutMs) config.withCommandTimeout(spec.commandTimeoutMs);
      const resolved = config.resolve();
      storage = new Storage(
        redisBackend(resolved, { driver: new IoredisDriver({ url: spec.url, commandTimeoutMs: resolved.commandTimeoutMs, ioredis }) }),
        clock,
      );
      break;
    }
    case "upstash": {
      const config = new RedisConfig(spec.url).withToken(spec.token).withKeyPrefix(spec.prefix).withMaxFinishedJobs(KEEP_ALL);
      if (spec.commandTimeoutMs) config.withCommandTimeout(spec.commandTimeoutMs);
      if (spec.retries !== undefined) config.withRetries(spec.retries);
      storage = new Storage(redisBackend(config), clock);
      break;
    }
    case "postgres": {
      const common = {
        connectionString: spec.url,
        max: spec.maxConnections ?? 4,
        ...(spec.queryTimeoutMs ? { queryTimeoutMs: spec.queryTimeoutMs } : {}),
      };
      const driver =
        spec.driver === "pg"
          ? await createPgDriver({ ...common, pg })
          : spec.driver === "neon-ws"
            ? await createNeonPoolDriver({
                ...common,
                socket: {
                  webSocketConstructor: ws,
                  wsProxy: (host, port) => `${spec.wsGateway}/v1?address=${host}:${port}`,
                  useSecureWebSocket: false,
                  pipelineConnect: false,
                  pipelineTLS: false,
                  coalesceWrites: false,
                },
              })
            : createNeonHttpDriver({
                connectionString: spec.url,
                fetchEndpoint: spec.fetchEndpoint!,
                ...(spec.queryTimeoutMs ? { queryTimeoutMs: spec.queryTimeoutMs } : {}),
              });
      const config = new PostgresConfig()
        .withDriver(driver)
        .withSchema(spec.schema)
        .withMaxFinishedJobs(KEEP_ALL)
        .withNotify(spec.notify ?? spec.driver !== "neon-http");
      storage = new Storage(postgresBackend(config), clock);
      break;
    }
    case "sqlite": {
      // Several processes share the file: a generous busy timeout for a busy machine.
      const config = new SqliteConfig(spec.path)
        .withBetterSqlite3(createRequire(import.meta.url)(spec.module))
        .withBusyTimeout(30_000)
        .withMaxFinishedJobs(KEEP_ALL);
      storage = new Storage(sqliteBackend(config), clock);
      break;
    }
  }
  await storage.migrate();
  return storage;
}

/** A connection string with an application_name, so that a test can find (and terminate) exactly its own sessions. */
export function withApplicationName(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set("application_name", name);
  return u.toString();
}
