/** The Lambda handlers on Redis: over TCP (ioredis) and over Upstash's REST API (the real client against the local gateway). */
import { afterAll, beforeAll } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { RedisConfig, createRedisStorage } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { runLambdaHandlerSuite } from "./handler-suite.js";

const keys = prefixes("lambda");

describeWithService("redis", await serviceUp("redis"), "lambda handlers on redis", () => {
  let gateway: UpstashGateway;
  beforeAll(async () => {
    gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  runLambdaHandlerSuite("redis (ioredis, TCP)", async (clock) => {
    const storage = await createRedisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()), { clock });
    await storage.migrate();
    return storage;
  });

  runLambdaHandlerSuite("redis (@upstash/redis, REST gateway)", async (clock) => {
    const storage = await createRedisStorage(new RedisConfig(gateway.url).withToken(gateway.token).withKeyPrefix(keys.next()), { clock });
    await storage.migrate();
    return storage;
  });
});
