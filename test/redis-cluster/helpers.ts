/**
 * Helpers for the Redis Cluster tests (the local three-master cluster of
 * infra/redis-cluster.sh): storages on the cluster, its masters and their
 * slots (CLUSTER NODES), and cleanup of a test's keys on every master.
 */
import { Redis } from "ioredis";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import type { Clock } from "../../src/index.js";
import { REDIS_CLUSTER_URL } from "../helpers/services.js";
import { redisStorage, type StorageOnRedis } from "../redis/helpers.js";

export interface Master {
  id: string;
  url: string;
  /** Slot ranges, inclusive. */
  slots: Array<[number, number]>;
}

/** The cluster's masters, from CLUSTER NODES on REDIS_CLUSTER_URL. */
export async function clusterMasters(): Promise<Master[]> {
  const r = new Redis(REDIS_CLUSTER_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    const text = String(await r.call("CLUSTER", "NODES"));
    return text
      .trim()
      .split("\n")
      .map((line) => line.split(" "))
      .filter((f) => f[2]!.split(",").includes("master") && !f[2]!.includes("fail"))
      .map((f) => ({
        id: f[0]!,
        url: `redis://${f[1]!.split("@")[0]!}`,
        slots: f.slice(8).flatMap((range): Array<[number, number]> => {
          if (range.startsWith("[")) return []; // a slot being migrated
          const [a, b] = range.split("-").map(Number);
          return [[a!, b ?? a!]];
        }),
      }));
  } finally {
    r.disconnect();
  }
}

/** The master that serves `slot`. */
export function masterOf(masters: Master[], slot: number): Master {
  const m = masters.find((n) => n.slots.some(([a, b]) => slot >= a && slot <= b));
  if (!m) throw new Error(`no master serves slot ${slot}`);
  return m;
}

/** CLUSTER KEYSLOT, as the server computes it. */
export async function keySlotOnServer(key: string): Promise<number> {
  const r = new Redis(REDIS_CLUSTER_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    return Number(await r.call("CLUSTER", "KEYSLOT", key));
  } finally {
    r.disconnect();
  }
}

/** Keys matching a SCAN pattern on every master. */
export async function scanCluster(pattern: string): Promise<Array<{ master: Master; keys: string[] }>> {
  const out: Array<{ master: Master; keys: string[] }> = [];
  for (const master of await clusterMasters()) {
    const r = new Redis(master.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      const keys: string[] = [];
      let cursor = "0";
      do {
        const [next, batch] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        keys.push(...batch);
        cursor = next;
      } while (cursor !== "0");
      out.push({ master, keys });
    } finally {
      r.disconnect();
    }
  }
  return out;
}

/** Deletes the keys matching `pattern` on every master (each key on its own: they may span slots). */
export async function deleteClusterKeys(pattern: string): Promise<number> {
  let n = 0;
  for (const { master, keys } of await scanCluster(pattern)) {
    if (keys.length === 0) continue;
    const r = new Redis(master.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      const p = r.pipeline();
      for (const k of keys) p.del(k);
      await p.exec();
      n += keys.length;
    } finally {
      r.disconnect();
    }
  }
  return n;
}

/** A storage on the cluster (not migrated): its own prefix and hash tag, started from `url` (default REDIS_CLUSTER_URL). */
export function clusterStorage(prefix: string, tag: string, options: { clock?: Clock; url?: string } = {}): StorageOnRedis {
  const config = new RedisConfig(options.url ?? REDIS_CLUSTER_URL).withCluster(true).withKeyPrefix(prefix).withHashTag(tag);
  return redisStorage(config, options.clock ? { clock: options.clock } : {});
}
