/**
 * qml over Redis, PostgreSQL and SQLite, each driver a contender, every
 * setting at qml's defaults (one TCP connection for Redis, a pool of 10 for
 * Postgres, one better-sqlite3 connection for SQLite). The HTTP paths go
 * through the local gateways of infra/, each in its own process, in front
 * of the same servers: over the internet each round trip would cost more,
 * which batching amortises.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ws from "ws";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { Storage } from "../../src/index.js";
import type { GatewayInfo } from "../gateway-process.js";
import type { Endpoints, QueueAdapter } from "../harness.js";
import { qmlAdapter } from "./qml.js";

/**
 * A gateway of infra/ in its own process (gateway-process.ts), as the
 * managed service it stands in for runs apart from the application: in
 * this process its CPU would be charged to qml. Same Node flags as this
 * process (tsx, and the compiled-qml resolve hook when the run uses it).
 */
async function spawnGateway<K extends GatewayInfo["kind"]>(kind: K, upstream: string): Promise<Extract<GatewayInfo, { kind: K }> & { close(): Promise<void> }> {
  const execArgv = process.execArgv.filter((a) => !a.startsWith("--cpu-prof"));
  if (!execArgv.includes("tsx") && !execArgv.some((a) => a.includes("tsx"))) execArgv.unshift("--import", "tsx");
  const child = fork(fileURLToPath(new URL("../gateway-process.ts", import.meta.url)), [kind, upstream], {
    execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const stopChild = () => child.kill("SIGTERM");
  process.once("exit", stopChild);
  const info = await new Promise<GatewayInfo>((resolve, reject) => {
    child.once("message", (m: { type: string; info: GatewayInfo }) =>
      m.type === "ready" ? resolve(m.info) : reject(new Error(`[bench] unexpected message from the ${kind} gateway`)),
    );
    child.once("exit", (code) => reject(new Error(`[bench] the ${kind} gateway exited (${code}) before it was ready`)));
  });
  return {
    ...(info as Extract<GatewayInfo, { kind: K }>),
    close: () =>
      new Promise<void>((resolve) => {
        process.off("exit", stopChild);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** One gateway per upstream (the idle and requests phases point a second one at a counting proxy). */
class Gateways<K extends GatewayInfo["kind"]> {
  private readonly byUpstream = new Map<string, ReturnType<typeof spawnGateway<K>>>();
  constructor(private readonly kind: K) {}
  get(upstream: string): ReturnType<typeof spawnGateway<K>> {
    let g = this.byUpstream.get(upstream);
    if (!g) this.byUpstream.set(upstream, (g = spawnGateway(this.kind, upstream)));
    return g;
  }
  async close(): Promise<void> {
    const all = [...this.byUpstream.values()];
    this.byUpstream.clear();
    await Promise.all(all.map(async (g) => (await g).close()));
  }
}

/**
 * qml's defaults, or with `prefetch(500)` and `fetchBatchSize(500)` (the
 * opt-in for short jobs); `keepNone` adds `maxFinishedJobs(0)`: finished
 * jobs are deleted as they finish, as graphile-worker always does (qml
 * keeps the last 10,000 with their history by default).
 */
export interface Tuning {
  prefetch?: boolean;
  keepNone?: boolean;
  /** Every job under a per-key concurrency limit it never reaches (qml.ts: KEYS, KEY_LIMIT). */
  keyLimit?: boolean;
}

function variant(name: string, label: string, tuning: Tuning) {
  if (tuning.keyLimit) return { name: `${name}-keylimit`, label: `${label} + per-key limit`, keyLimit: true };
  if (!tuning.prefetch) return { name, label };
  if (tuning.keepNone) return { name: `${name}-prefetch-keep0`, label: `${label} + prefetch, keep 0`, prefetch: true };
  return { name: `${name}-prefetch`, label: `${label} + prefetch`, prefetch: true };
}

function settings(defaults: string, tuning: Tuning): string {
  if (tuning.keyLimit) return `${defaults}; each job with concurrency { key: one of 10, limit: 1000 } (never reached: the figure is the limit's cost)`;
  const keep = tuning.keepNone ? "maxFinishedJobs(0) (finished jobs deleted as they finish, as graphile-worker does), " : "";
  return tuning.prefetch ? `prefetch(500), fetchBatchSize(500) (graphile-worker fast's localQueue.size 500), ${keep}otherwise ${defaults}` : defaults;
}

/** A storage whose schema is in place before the contender's clock starts. */
async function migrated(storage: Storage): Promise<Storage> {
  await storage.migrate();
  return storage;
}

// -------------------------------------------------------------------- Redis

export function qmlRedisTcp(tuning: Tuning = {}): QueueAdapter {
  return qmlAdapter({
    ...variant("qml-redis", "qml · Redis (TCP)", tuning),
    store: "redis",
    settings: settings("defaults (ioredis, one connection)", tuning),
    async create(ns: string, e: Endpoints) {
      const storage = new Storage(redisBackend(new RedisConfig(e.redisUrl).withKeyPrefix(`${ns}:`)));
      await storage.migrate();
      return storage;
    },
  });
}

export function qmlRedisUpstash(tuning: Tuning = {}): QueueAdapter {
  const gateways = new Gateways("upstash");
  return qmlAdapter({
    ...variant("qml-redis-upstash", "qml · Redis (Upstash REST)", tuning),
    store: "redis",
    http: true,
    settings: settings("defaults (@upstash/redis, auto-pipelining), local REST gateway in its own process", tuning),
    async create(ns: string, e: Endpoints) {
      const gw = await gateways.get(e.redisUrl);
      const storage = new Storage(redisBackend(new RedisConfig(gw.url).withToken(gw.token).withKeyPrefix(`${ns}:`)));
      await storage.migrate();
      return storage;
    },
    close: () => gateways.close(),
  });
}

// ----------------------------------------------------------------- Postgres

export function qmlPostgresPg(tuning: Tuning = {}): QueueAdapter {
  return qmlAdapter({
    ...variant("qml-pg", "qml · Postgres (pg)", tuning),
    store: "postgres",
    settings: settings("defaults (pg pool of 10, LISTEN/NOTIFY)", tuning),
    create: (ns: string, e: Endpoints) => {
      const config = new PostgresConfig().withDatabaseUrl(e.databaseUrl).withDriver("pg").withSchema(ns).withAutoMigrate(true);
      return migrated(new Storage(postgresBackend(tuning.keepNone ? config.withMaxFinishedJobs(0) : config)));
    },
  });
}

function neonGateways() {
  return new Gateways("neon");
}

function wsProxy(gw: { host: string; port: number }) {
  return (host: string, port: number | string) => `${gw.host}:${gw.port}/v1?address=${host}:${port}`;
}

export function qmlPostgresNeonWs(tuning: Tuning = {}): QueueAdapter {
  const gateways = neonGateways();
  return qmlAdapter({
    ...variant("qml-neon-ws", "qml · Postgres (Neon WebSocket)", tuning),
    store: "postgres",
    settings: settings("defaults (Neon Pool of 10, coalesceWrites off), local WebSocket gateway in its own process", tuning),
    async create(ns: string, e: Endpoints) {
      const gw = await gateways.get(e.databaseUrl);
      return migrated(
        new Storage(
          postgresBackend(
            new PostgresConfig()
              .withDatabaseUrl(e.databaseUrl)
              .withDriver("neon-ws")
              .withNeonSocket({
                webSocketConstructor: ws,
                wsProxy: wsProxy(gw),
                useSecureWebSocket: false,
                pipelineConnect: false,
                pipelineTLS: false,
                // The default adds about 1 ms per query in Node (TOOLCHAIN.md).
                coalesceWrites: false,
              })
              .withSchema(ns)
              .withAutoMigrate(true),
          ),
        ),
      );
    },
    close: () => gateways.close(),
  });
}

export function qmlPostgresNeonHttp(tuning: Tuning = {}): QueueAdapter {
  const gateways = neonGateways();
  return qmlAdapter({
    ...variant("qml-neon-http", "qml · Postgres (Neon HTTP)", tuning),
    store: "postgres",
    http: true,
    settings: settings("defaults (neon() over HTTP, no LISTEN), local /sql gateway in its own process", tuning),
    async create(ns: string, e: Endpoints) {
      const gw = await gateways.get(e.databaseUrl);
      return migrated(
        new Storage(
          postgresBackend(
            new PostgresConfig()
              .withDatabaseUrl(e.databaseUrl)
              .withDriver("neon-http")
              .withNeonFetchEndpoint(gw.fetchEndpoint)
              .withSchema(ns)
              .withAutoMigrate(true),
          ),
        ),
      );
    },
    close: () => gateways.close(),
  });
}

// ------------------------------------------------------------------- SQLite

/**
 * SQLite in the contender's process (better-sqlite3), a file per phase on
 * the local disk (the temporary folder; on this machine the same ext4 disk
 * as PostgreSQL's data), WAL and synchronous NORMAL as the driver sets
 * them. `store: "memory"` in the harness's sense: there is no server to
 * reach, so the requests phase counts storage calls (each one batch, one
 * transaction), as for the memory store.
 */
export function qmlSqlite(tuning: Tuning = {}): QueueAdapter {
  let dir: string | undefined;
  return qmlAdapter({
    ...variant("qml-sqlite", "qml · SQLite (better-sqlite3)", tuning),
    store: "memory",
    settings: settings("defaults (better-sqlite3, WAL, synchronous NORMAL), a file on the local disk", tuning),
    async create(ns: string) {
      dir ??= mkdtempSync(join(tmpdir(), "qml-bench-sqlite-"));
      return migrated(new Storage(sqliteBackend(new SqliteConfig(join(dir, `${ns}.db`)))));
    },
    async close() {
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  });
}
