/**
 * The storage and key-value conformance suites on a real three-master Redis
 * Cluster (infra/redis-cluster.sh) through the TCP driver (an ioredis
 * Cluster): each storage has its own prefix and its own hash tag, so the
 * storages land on different masters' slots, and every key of one storage
 * is in its tag's slot.
 */
import { afterAll, expect, it } from "vitest";
import type { ManualClock } from "../../src/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { prefixes } from "../redis/helpers.js";
import { runKvConformance } from "../storage/kv-conformance.js";
import { runStorageConformance } from "../storage/conformance.js";
import { clusterMasters, clusterStorage, deleteClusterKeys, keySlotOnServer, masterOf, scanCluster } from "./helpers.js";

const keys = prefixes("cluster");
const used: Array<{ prefix: string; tag: string; base: string }> = [];

describeWithService("redis-cluster", await serviceUp("redis-cluster"), "redis storage on a Redis Cluster (ioredis Cluster)", () => {
  afterAll(() => deleteClusterKeys(keys.pattern));

  const open = async (clock: ManualClock) => {
    const prefix = keys.next();
    const tag = `t${used.length}`;
    const storage = clusterStorage(prefix, tag, { clock });
    used.push({ prefix, tag, base: storage.driver.base });
    await storage.migrate();
    return storage;
  };
  runStorageConformance("redis cluster (ioredis)", open);
  runKvConformance("redis cluster (ioredis)", open);

  it("every storage's keys share its tag's slot, and the storages used more than one master", async () => {
    expect(used.length).toBeGreaterThan(10);
    const masters = await clusterMasters();
    expect(masters.length).toBe(3);
    const found = (await scanCluster(keys.pattern)).flatMap(({ master, keys: ks }) => ks.map((key) => ({ key, master: master.id })));
    expect(found.length).toBeGreaterThan(0);
    const holders = new Set<string>();
    for (const { base } of used) {
      const mine = found.filter((k) => k.key.startsWith(base));
      if (mine.length === 0) continue;
      const slot = await keySlotOnServer(`${base}meta`);
      const master = masterOf(masters, slot).id;
      // All on the master of the base's slot (SCAN sees each master's own keys only) …
      expect(new Set(mine.map((k) => k.master))).toEqual(new Set([master]));
      // … and in that one slot, as the server hashes them.
      for (const k of mine.slice(0, 5)) expect(await keySlotOnServer(k.key)).toBe(slot);
      holders.add(master);
    }
    expect(holders.size).toBeGreaterThanOrEqual(2);
  });
});
