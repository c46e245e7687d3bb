/**
 * qml/redis: the Redis backend.
 *
 *   const storage = new Storage(redisBackend(new RedisConfig(process.env.REDIS_URL!)));
 *   await storage.migrate();
 *
 * Safe to import in Cloudflare Workers: this module graph reaches
 * `@upstash/redis` but never ioredis or `node:*`. The TCP driver is loaded
 * with a dynamic import, only for a `redis://` URL, on the first call.
 */
export { redisBackend, type RedisBackend, type RedisBackendOptions } from "./redis-backend.js";
export { RedisConfig, type ResolvedRedisConfig, type RedisTransport } from "./config.js";
// A client of your own (a Redis Cluster client, say): anything that runs scripts and commands.
export type { LuaScript, RedisDriver, RedisReply } from "./driver.js";
export { UpstashDriver, type UpstashDriverOptions, type UpstashLikeClient } from "./drivers/upstash.js";
export type { IoredisDriver, IoredisDriverOptions } from "./drivers/ioredis.js";
