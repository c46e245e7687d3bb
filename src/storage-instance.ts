/**
 * StorageInstance: one place to make any backend, as the seed's users know it.
 *
 *   const storage = await StorageInstance.redis(new RedisConfig(process.env.REDIS_URL!));
 *
 * The Redis and Postgres backends are loaded on first use, so code that only
 * uses memory storage never loads a driver.
 */
import type { Clock } from "./core/clock.js";
import { MemoryStorage, type MemoryStorageOptions } from "./adapters/storage/memory/index.js";
import type { RedisConfig, RedisStorage } from "./adapters/storage/redis/index.js";
import type { PostgresConfig, PostgresStorage } from "./adapters/storage/postgres/index.js";

export const StorageInstance = {
  memory(options: MemoryStorageOptions = {}): MemoryStorage {
    return new MemoryStorage(options);
  },
  /** `redis://`/`rediss://` → TCP (ioredis); `https://` → Upstash REST (needs `withToken`). */
  async redis(config: RedisConfig, options: { clock?: Clock } = {}): Promise<RedisStorage> {
    const { createRedisStorage } = await import("./adapters/storage/redis/index.js");
    return createRedisStorage(config, options);
  },
  /** pg (TCP), Neon Pool (WebSocket) or neon() (HTTP), as `config.withDriver` says. */
  async postgres(config: PostgresConfig, options: { clock?: Clock } = {}): Promise<PostgresStorage> {
    const { createPostgresStorage } = await import("./adapters/storage/postgres/index.js");
    return createPostgresStorage(config, options);
  },
};
