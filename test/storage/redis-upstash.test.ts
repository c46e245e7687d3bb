/**
 * The storage conformance suite on Redis over Upstash's REST protocol: the
 * real @upstash/redis client against the local gateway (infra/) in front
 * of the real Redis, one key prefix per storage.
 */
import { describeWithService, serviceUp } from "../helpers/services.js";
import { prefixes, redisStoragesFor } from "../redis/helpers.js";
import { runStorageConformance } from "./conformance.js";
import { runKvConformance } from "./kv-conformance.js";

const keys = prefixes("upstash");

describeWithService("redis", await serviceUp("redis"), "redis storage over the Upstash REST API", () => {
  const open = redisStoragesFor(keys);
  runStorageConformance("redis (@upstash/redis)", (clock) => open("upstash", clock));
  runKvConformance("redis (@upstash/redis)", (clock) => open("upstash", clock));
});
