/** The storage conformance suite on Redis over TCP (ioredis), one key prefix per storage. */
import { afterAll } from "vitest";
import { RedisConfig, createRedisStorage } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { runStorageConformance } from "./conformance.js";

const keys = prefixes("tcp");

describeWithService("redis", await serviceUp("redis"), "redis storage over TCP", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));

  runStorageConformance("redis (ioredis)", async (clock) => {
    const storage = await createRedisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()), { clock });
    await storage.migrate();
    return storage;
  });
});
