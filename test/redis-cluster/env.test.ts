/** npm start's storage on a Redis Cluster: QML_REDIS_CLUSTER and QML_REDIS_HASH_TAG reach the Redis config it builds. */
import { afterAll, expect, it } from "vitest";
import { Job } from "../../src/index.js";
import { loadEnvConfig } from "../../src/adapters/runtime/node/env.js";
import { storageFromEnv } from "../../src/adapters/runtime/node/storage-from-env.js";
import { REDIS_CLUSTER_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { prefixes } from "../redis/helpers.js";
import { deleteClusterKeys } from "./helpers.js";

const keys = prefixes("cluster-env");

describeWithService("redis-cluster", await serviceUp("redis-cluster"), "npm start on a Redis Cluster", () => {
  afterAll(() => deleteClusterKeys(keys.pattern));

  it("QML_REDIS_CLUSTER=true with a node's URL: jobs go in and come back; QML_REDIS_HASH_TAG names the slot", async () => {
    const prefix = keys.next();
    const cfg = loadEnvConfig({
      QML_STORAGE: "redis",
      REDIS_URL: REDIS_CLUSTER_URL,
      QML_REDIS_CLUSTER: "true",
      QML_REDIS_HASH_TAG: "env7",
      QML_REDIS_PREFIX: prefix,
    });
    expect(cfg.redisCluster).toBe(true);
    const storage = await storageFromEnv(cfg);
    try {
      await storage.migrate();
      const id = await storage.enqueue(new Job("hello", [1]));
      expect((await storage.get(id))!.arguments).toEqual([1]);
      expect((storage.driver as unknown as { base: string }).base).toBe(`${prefix}{env7}:`);
    } finally {
      await storage.close();
    }
  });
});
