/**
 * Helpers for the Redis tests: per-run key prefixes (and their cleanup), and
 * a private redis-server for tests that must change server state
 * (SCRIPT FLUSH, an eviction policy) without touching the shared one.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { Storage, type Clock } from "../../src/index.js";
import { RedisConfig, redisBackend, type RedisBackend, type RedisDriver } from "../../src/adapters/storage/redis/index.js";

/** A Storage over the Redis backend, typed so that a test reaches the backend's internals (`driver.base`, `driver.config`). */
export type StorageOnRedis = Storage & { readonly driver: RedisBackend };

/** `new Storage(redisBackend(config, { driver }), { clock })`, typed as a StorageOnRedis. Opens nothing until the first call. */
export function redisStorage(config: RedisConfig, options: { clock?: Clock; driver?: RedisDriver } = {}): StorageOnRedis {
  const backend = redisBackend(config, options.driver ? { driver: options.driver } : {});
  return new Storage(backend, options.clock ? { clock: options.clock } : {}) as StorageOnRedis;
}

/** A prefix family for one test file; `next()` gives each storage its own. */
export function prefixes(label: string) {
  const run = `qmlt-${label}-${crypto.randomUUID().slice(0, 8)}`;
  let n = 0;
  return {
    pattern: `${run}-*`,
    next: () => `${run}-${++n}:`,
  };
}

/** Keys matching a SCAN pattern. */
export async function scanKeys(url: string, pattern: string): Promise<string[]> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== "0");
    return keys;
  } finally {
    r.disconnect();
  }
}

export async function deleteKeys(url: string, pattern: string): Promise<number> {
  const keys = await scanKeys(url, pattern);
  if (keys.length === 0) return 0;
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    for (let i = 0; i < keys.length; i += 500) await r.del(...keys.slice(i, i + 500));
    return keys.length;
  } finally {
    r.disconnect();
  }
}

export { freePort } from "../helpers/services.js";
import { REDIS_URL, freePort } from "../helpers/services.js";

/** Whether a `redis-server` binary is there to start a private server with. */
export function hasRedisServer(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export interface PrivateRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` on a random port with no persistence, plus `args`;
 * resolves once it logs that it accepts connections.
 */
export async function startPrivateRedis(args: string[] = []): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "qml-redis-"));
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes("Ready to accept connections")) {
        child.stdout!.off("data", onData);
        child.stdout!.resume();
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
    child.once("error", reject);
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (child.exitCode !== null) return done();
        child.once("exit", done);
        child.kill("SIGTERM");
      }),
  };
}

/**
 * Inside a describe: a local Upstash gateway for the block (started before,
 * closed after, with the block's keys deleted), and a factory of migrated
 * storages over it (REST) or straight over TCP, one key prefix each.
 */
export function redisStoragesFor(keys: ReturnType<typeof prefixes>) {
  let gateway: UpstashGateway | undefined;
  beforeAll(async () => {
    gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });
  return async (driver: "tcp" | "upstash", clock?: Clock): Promise<StorageOnRedis> => {
    const config = driver === "tcp" ? new RedisConfig(REDIS_URL) : new RedisConfig(gateway!.url).withToken(gateway!.token);
    const storage = redisStorage(config.withKeyPrefix(keys.next()), clock ? { clock } : {});
    await storage.migrate();
    return storage;
  };
}
