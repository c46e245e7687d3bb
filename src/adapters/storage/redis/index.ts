/**
 * qml/redis: the Redis backend.
 *
 *   const storage = await createRedisStorage(new RedisConfig().withUrl(process.env.REDIS_URL!));
 *   await storage.migrate();
 *
 * Safe to import in Cloudflare Workers: this module graph reaches
 * `@upstash/redis` but never ioredis or `node:*`. The TCP driver is loaded
 * with a dynamic import, only for a `redis://` URL.
 */
import type { Clock } from "../../../core/clock.js";
import { RedisConfig, type ResolvedRedisConfig } from "./config.js";
import type { RedisDriver } from "./driver.js";
import type { IoredisDriverOptions } from "./drivers/ioredis.js";
import { UpstashDriver } from "./drivers/upstash.js";
import { RedisStorage } from "./redis-storage.js";

export { RedisStorage, SCHEMA_VERSION, type RedisStorageOptions } from "./redis-storage.js";
export { RedisConfig, type ResolvedRedisConfig, type RedisTransport } from "./config.js";
export { toStorageError, type LuaScript, type RedisDriver, type RedisReply } from "./driver.js";
export { UpstashDriver, type UpstashDriverOptions, type UpstashLikeClient } from "./drivers/upstash.js";
export type { IoredisDriver, IoredisDriverOptions } from "./drivers/ioredis.js";
export { baseKey } from "./keys.js";

/**
 * Kept out of a literal `import("./drivers/ioredis.js")` on purpose: a
 * bundler follows literal dynamic imports, and a Workers bundle must not
 * pull ioredis (and `node:net`, `node:tls`) in. On Node it resolves next to
 * this module. A Node bundle (esbuild for Lambda, say) that drops it can
 * pass the driver itself: `createRedisStorage(config, { driver: new IoredisDriver(...) })`
 * with IoredisDriver from `qml/redis/ioredis`.
 */
const IOREDIS_DRIVER_MODULE = "./drivers/ioredis.js";

/** Loads the TCP driver (Node only). */
export async function loadIoredisDriver(options: IoredisDriverOptions): Promise<RedisDriver> {
  const mod = (await import(/* @vite-ignore */ IOREDIS_DRIVER_MODULE)) as typeof import("./drivers/ioredis.js");
  return new mod.IoredisDriver(options);
}

/** The driver a resolved configuration asks for, by URL scheme. */
export async function createRedisDriver(config: ResolvedRedisConfig): Promise<RedisDriver> {
  if (config.transport === "upstash") {
    return new UpstashDriver({
      url: config.url,
      token: config.token!,
      commandTimeoutMs: config.commandTimeoutMs,
      retries: config.retries,
      autoPipelining: config.autoPipelining,
    });
  }
  return loadIoredisDriver({
    url: config.url,
    poolSize: config.poolSize,
    commandTimeoutMs: config.commandTimeoutMs,
    autoPipelining: config.autoPipelining,
  });
}

/**
 * A RedisStorage for `config`. Connects lazily (the first command);
 * `migrate()` checks the eviction policy and loads the scripts.
 */
export async function createRedisStorage(config: RedisConfig, options: { clock?: Clock; driver?: RedisDriver } = {}): Promise<RedisStorage> {
  const resolved = config.resolve();
  const driver = options.driver ?? (await createRedisDriver(resolved));
  return new RedisStorage(driver, resolved, options.clock ? { clock: options.clock } : {});
}
