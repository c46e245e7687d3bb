/**
 * The storage conformance suite on Redis over Upstash's REST protocol: the
 * real @upstash/redis client against the local gateway (infra/) in front
 * of the real Redis, one key prefix per storage.
 */
import { afterAll, beforeAll } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { RedisConfig, createRedisStorage } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { runStorageConformance } from "./conformance.js";

const keys = prefixes("upstash");

describeWithService("redis", await serviceUp("redis"), "redis storage over the Upstash REST API", () => {
  let gateway: UpstashGateway;
  beforeAll(async () => {
    gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  runStorageConformance("redis (@upstash/redis)", async (clock) => {
    const config = new RedisConfig(gateway.url).withToken(gateway.token).withKeyPrefix(keys.next());
    const storage = await createRedisStorage(config, { clock });
    await storage.migrate();
    return storage;
  });
});
