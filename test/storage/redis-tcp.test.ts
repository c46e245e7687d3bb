/** The storage conformance suite on Redis over TCP (ioredis), one key prefix per storage. */
import { afterAll } from "vitest";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import type { ManualClock } from "../../src/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage } from "../redis/helpers.js";
import { runStorageConformance } from "./conformance.js";
import { runKvConformance } from "./kv-conformance.js";

const keys = prefixes("tcp");

describeWithService("redis", await serviceUp("redis"), "redis storage over TCP", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));

  const open = async (clock: ManualClock) => {
    const storage = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()), { clock });
    await storage.migrate();
    return storage;
  };
  runStorageConformance("redis (ioredis)", open);
  runKvConformance("redis (ioredis)", open);
});
