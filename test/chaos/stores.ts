/**
 * The stores the chaos tests run on, described by a plain JSON `StoreSpec`
 * so that a spawned worker process opens exactly the store the test opened.
 *
 * Drivers are built here rather than through createRedisStorage /
 * createPostgresStorage: those load ioredis and pg at run time from
 * node_modules, which a bundled worker (see processes.ts) cannot resolve.
 * Passing the modules in keeps the bundle self-contained; the storage code
 * under test is the same.
 *
 * No vitest import here: worker processes load this module too.
 */
import pg from "pg";
import ws from "ws";
import { MemoryStorage } from "../../src/adapters/storage/memory/index.js";
import { PostgresStorage } from "../../src/adapters/storage/postgres/postgres-storage.js";
import { createNeonHttpDriver, createNeonPoolDriver } from "../../src/adapters/storage/postgres/drivers/neon.js";
import { createPgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { RedisConfig } from "../../src/adapters/storage/redis/config.js";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { UpstashDriver } from "../../src/adapters/storage/redis/drivers/upstash.js";
import { RedisStorage } from "../../src/adapters/storage/redis/redis-storage.js";
import type { Clock } from "../../src/core/clock.js";
import type { Storage } from "../../src/core/storage.js";

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
    };

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
  }
}

/** Opens (and migrates) the store a spec describes. */
export async function openStore(spec: StoreSpec, options: { clock?: Clock } = {}): Promise<Storage> {
  const clock = options.clock ? { clock: options.clock } : {};
  let storage: Storage;
  switch (spec.kind) {
    case "memory":
      storage = new MemoryStorage({ ...clock, maxFinishedJobs: KEEP_ALL });
      break;
    case "redis": {
      const config = new RedisConfig(spec.url).withKeyPrefix(spec.prefix).withMaxFinishedJobs(KEEP_ALL);
      if (spec.commandTimeoutMs) config.withCommandTimeout(spec.commandTimeoutMs);
      const resolved = config.resolve();
      storage = new RedisStorage(new IoredisDriver({ url: spec.url, commandTimeoutMs: resolved.commandTimeoutMs }), resolved, clock);
      break;
    }
    case "upstash": {
      const config = new RedisConfig(spec.url).withToken(spec.token).withKeyPrefix(spec.prefix).withMaxFinishedJobs(KEEP_ALL);
      if (spec.commandTimeoutMs) config.withCommandTimeout(spec.commandTimeoutMs);
      if (spec.retries !== undefined) config.withRetries(spec.retries);
      const r = config.resolve();
      const driver = new UpstashDriver({ url: r.url, token: r.token!, commandTimeoutMs: r.commandTimeoutMs, retries: r.retries, autoPipelining: r.autoPipelining });
      storage = new RedisStorage(driver, r, clock);
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
            : createNeonHttpDriver({ connectionString: spec.url, fetchEndpoint: spec.fetchEndpoint!, ...(spec.queryTimeoutMs ? { queryTimeoutMs: spec.queryTimeoutMs } : {}) });
      storage = new PostgresStorage(driver, { ...clock, schema: spec.schema, maxFinishedJobs: KEEP_ALL, notify: spec.notify ?? spec.driver !== "neon-http" });
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
