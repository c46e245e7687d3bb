/**
 * qml servers on a real three-master Redis Cluster (infra/redis-cluster.sh)
 * through the TCP driver:
 * - two servers on one instance, each with its own Cluster client started
 *   from a different master, run every job exactly once;
 * - instances with different hash tags land on different masters, and
 *   each one's server processes all of its own jobs;
 * - a job enqueued through one client wakes a server on another at once
 *   (PUBLISH from the scripts, SUBSCRIBE through the Cluster), whichever
 *   master each subscription sits on;
 * - a script cache emptied on the instance's master (a failover, a
 *   restart) is refilled by the NOSCRIPT fallback, routed by the tag.
 * And, without a cluster: configurations that cannot work on one are refused.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { BackgroundJobServer, Job, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { assertOneSlot, keySlot } from "../../src/adapters/storage/redis/keys.js";
import { ConfigError, StorageUnavailableError } from "../../src/core/errors.js";
import { REDIS_CLUSTER_URL, describeWithService, freePort, serviceUp } from "../helpers/services.js";
import { prefixes, redisStorage, type StorageOnRedis } from "../redis/helpers.js";
import { clusterMasters, clusterStorage, deleteClusterKeys, keySlotOnServer, masterOf, type Master } from "./helpers.js";

const keys = prefixes("cluster-srv");
const opened: StorageOnRedis[] = [];
const servers: BackgroundJobServer[] = [];

async function open(prefix: string, tag: string, url = REDIS_CLUSTER_URL): Promise<StorageOnRedis> {
  const s = clusterStorage(prefix, tag, { url });
  await s.migrate();
  opened.push(s);
  return s;
}

function server(storage: StorageOnRedis, name: string, registry: WorkerRegistry, poll = 200): BackgroundJobServer {
  const s = new BackgroundJobServer(
    storage,
    registry,
    new ServerConfig(name).workerCount(10).pollingInterval(poll).maxPollingInterval(poll).enableScheduler(false).logger(silentLogger),
  );
  servers.push(s);
  return s;
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Hash tags whose slots are on different masters, one per master (at most `n`). */
function tagsOnMasters(masters: Master[], prefix: string, n: number): Array<{ tag: string; master: string }> {
  const out: Array<{ tag: string; master: string }> = [];
  const seen = new Set<string>();
  for (let i = 0; out.length < n && i < 1000; i++) {
    const tag = `i${i}`;
    const master = masterOf(masters, keySlot(`${prefix}{${tag}}:meta`)).id;
    if (seen.has(master)) continue;
    seen.add(master);
    out.push({ tag, master });
  }
  return out;
}

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop().catch(() => {})));
  await Promise.all(opened.map((s) => s.close().catch(() => {})));
  await deleteClusterKeys(keys.pattern).catch(() => {});
});

describe("Redis Cluster configuration", () => {
  it("withCluster needs a TCP URL of database 0, and node URLs", () => {
    expect(() => new RedisConfig("https://x.upstash.io").withToken("t").withCluster(true).resolve()).toThrow(/withCluster needs a redis:\/\//);
    expect(() => new RedisConfig("redis://127.0.0.1:7000/2").withCluster(true).resolve()).toThrow(/database 0 only/);
    expect(() => new RedisConfig("redis://127.0.0.1:7000").withCluster(["https://a"])).toThrow(ConfigError);
    const r = new RedisConfig("redis://127.0.0.1:7000").withCluster(["redis://127.0.0.1:7001"]).resolve();
    expect(r.cluster).toBe(true);
    expect(r.clusterNodes).toEqual(["redis://127.0.0.1:7001"]);
    expect(new RedisConfig("redis://127.0.0.1:7000").resolve().cluster).toBe(false);
    expect(String(new RedisConfig("redis://u:secret@h:7000").withCluster())).toBe("RedisConfig(redis://***@h:7000, cluster, prefix qml:)");
  });

  it("RedisConfig.fromEnv: QML_REDIS_CLUSTER and QML_REDIS_HASH_TAG", () => {
    const r = RedisConfig.fromEnv({ REDIS_URL: "redis://127.0.0.1:7000", QML_REDIS_CLUSTER: "true", QML_REDIS_HASH_TAG: "app1" }).resolve();
    expect(r.cluster).toBe(true);
    expect(r.hashTag).toBe("app1");
    expect(RedisConfig.fromEnv({ REDIS_URL: "redis://127.0.0.1:6379" }).resolve().cluster).toBe(false);
    expect(() => RedisConfig.fromEnv({ REDIS_URL: "redis://h:7000", QML_REDIS_CLUSTER: "yes" })).toThrow(/QML_REDIS_CLUSTER/);
    expect(() => RedisConfig.fromEnv({ REDIS_URL: "redis://h:7000", QML_REDIS_HASH_TAG: "a{b}" })).toThrow(/QML_REDIS_HASH_TAG/);
  });

  it("refuses a layout whose keys would span slots: braces in the prefix or in the client's keyPrefix", () => {
    expect(() => new RedisConfig("redis://h:7000").withKeyPrefix("app{x}:")).toThrow(/brace.*withHashTag/);
    expect(() => new RedisConfig("redis://h:7000").withHashTag("")).toThrow(ConfigError);
    expect(() => assertOneSlot("qml:{q}:", { keyPrefix: "tenant{a}:" })).toThrow(/would span Redis Cluster slots/);
    expect(() => assertOneSlot("qml:{q}:", { keyPrefix: "tenant{" })).toThrow(/would span Redis Cluster slots/);
    expect(assertOneSlot("qml:{q}:")).toBe(keySlot("q"));
    expect(() => new IoredisDriver({ url: "redis://h:7000", cluster: true, redisOptions: { keyPrefix: "a{b}" } })).toThrow(/keyPrefix with braces/);
    // A backend is one slot, and a cluster backend never claims call order (a Cluster may move a call between connections).
    const b = redisBackend(new RedisConfig("redis://h:7000").withCluster(true));
    expect(b.ordered).toBe(false);
    expect(b.transport).toBe("ioredis");
  });

  it("a cluster that does not answer: calls fail with StorageUnavailableError within the command timeout", async () => {
    const port = await freePort();
    const storage = redisStorage(new RedisConfig(`redis://127.0.0.1:${port}`).withCluster(true).withCommandTimeout(500));
    const t0 = Date.now();
    await expect(storage.enqueue(new Job("x", []))).rejects.toThrow(StorageUnavailableError);
    await expect(storage.enqueue(new Job("x", []))).rejects.toThrow(/no answer from the Redis Cluster within 500 ms/);
    expect(Date.now() - t0).toBeLessThan(5_000);
    await storage.close();
  });
});

describeWithService("redis-cluster", await serviceUp("redis-cluster"), "qml servers on a Redis Cluster", () => {
  it("keySlot computes what CLUSTER KEYSLOT answers", async () => {
    for (const key of ["qml:{q}:meta", "a", "x{}y", "{}", "{a", "tag{a}{b}", "qmlt-x-1:{t3}:job:42", "é{ü}"])
      expect(keySlot(key), key).toBe(await keySlotOnServer(key));
  });

  it("two servers on one instance, connected through different masters, run each of N jobs exactly once", async () => {
    const masters = await clusterMasters();
    expect(masters.length).toBeGreaterThanOrEqual(2);
    const prefix = keys.next();
    const N = 3000;
    const a = await open(prefix, "x1", masters[0]!.url);
    const b = await open(prefix, "x1", masters[1]!.url);
    const runs = new Map<number, number>();
    const byServer = { a: 0, b: 0 };
    const registry = (who: "a" | "b") =>
      new WorkerRegistry().register("once", (job) => {
        const i = job.arguments[0] as number;
        runs.set(i, (runs.get(i) ?? 0) + 1);
        byServer[who]++;
        return WorkerResult.success();
      });
    const sa = server(a, "cluster-a", registry("a"));
    const sb = server(b, "cluster-b", registry("b"));
    await Promise.all([sa.start(), sb.start()]);
    // Enqueued in batches through both clients while both servers run.
    for (let i = 0; i < N; i += 250) await (i % 500 === 0 ? a : b).enqueue(Array.from({ length: 250 }, (_, k) => new Job("once", [i + k])));
    await until(() => runs.size === N, 60_000, `${N} jobs to run`).catch(async (e) => {
      console.log(runs.size, byServer, JSON.stringify((await a.stats()).states));
      throw e;
    });
    await until(async () => (await a.stats()).states.succeeded === N, 10_000, "every completion");
    await Promise.all([sa.stop(), sb.stop()]);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(byServer.a + byServer.b).toBe(N);
    expect(byServer.a).toBeGreaterThan(0);
    expect(byServer.b).toBeGreaterThan(0);
    const st = await b.stats();
    expect(st.states.succeeded).toBe(N);
    expect(st.states.enqueued + st.states.processing).toBe(0);
  }, 90_000);

  it("instances with different hash tags spread over the masters, each server running all of its own jobs", async () => {
    const masters = await clusterMasters();
    const prefix = keys.next();
    const tags = tagsOnMasters(masters, prefix, 3);
    expect(tags.length).toBe(3);
    const N = 500;
    const done = new Map<string, Set<number>>();
    const storages: StorageOnRedis[] = [];
    for (const { tag } of tags) {
      const storage = await open(prefix, tag);
      storages.push(storage);
      const seen = new Set<number>();
      done.set(tag, seen);
      const registry = new WorkerRegistry().register("spread", (job) => {
        // Each instance only ever sees its own jobs: the first argument names the tag.
        expect(job.arguments[0]).toBe(tag);
        seen.add(job.arguments[1] as number);
        return WorkerResult.success();
      });
      await server(storage, `spread-${tag}`, registry).start();
    }
    // Which master holds each instance, as the cluster says.
    const holders = new Set<string>();
    for (const s of storages) holders.add(masterOf(masters, await keySlotOnServer(`${s.driver.base}meta`)).id);
    expect(holders.size).toBeGreaterThanOrEqual(2);
    expect(holders).toEqual(new Set(tags.map((t) => t.master)));
    await Promise.all(tags.map(({ tag }, i) => storages[i]!.enqueue(Array.from({ length: N }, (_, k) => new Job("spread", [tag, k])))));
    await until(() => [...done.values()].every((s) => s.size === N), 60_000, "every instance's jobs");
    for (const [i, s] of storages.entries()) {
      await until(async () => (await s.stats()).states.succeeded === N, 10_000, `instance ${tags[i]!.tag} completions`);
      // Its keys are on its master only.
      const master = masters.find((m) => m.id === tags[i]!.master)!;
      const r = new Redis(master.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        expect(await r.exists(`${s.driver.base}meta`)).toBe(1);
      } finally {
        r.disconnect();
      }
    }
  }, 90_000);

  it("an enqueue through one client wakes a server of another client at once, on whichever master the subscription sits", async () => {
    const masters = await clusterMasters();
    const prefix = keys.next();
    for (const { tag } of tagsOnMasters(masters, prefix, 3)) {
      const consumer = await open(prefix, tag, masters[2]!.url);
      const producer = await open(prefix, tag, masters[0]!.url);
      let ran = 0;
      // Polls once a minute: only a wake-up runs the job soon.
      const s = server(
        consumer,
        `wake-${tag}`,
        new WorkerRegistry().register("wake", () => {
          ran++;
          return WorkerResult.success();
        }),
        60_000,
      );
      await s.start();
      expect(await consumer.subscribed()).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      await producer.enqueue(new Job("wake", []));
      await until(() => ran === 1, 5_000, `the wake-up of instance ${tag}`);
      expect(Date.now() - t0).toBeLessThan(5_000);
      await s.stop();
    }
  }, 30_000);

  it("a script cache flushed on the instance's master is refilled by the NOSCRIPT fallback", async () => {
    const masters = await clusterMasters();
    const prefix = keys.next();
    const storage = await open(prefix, "flush");
    const master = masterOf(masters, await keySlotOnServer(`${storage.driver.base}meta`));
    const r = new Redis(master.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.call("SCRIPT", "FLUSH");
      const id = (await storage.enqueue(new Job("f", [1]))) as string;
      expect((await storage.get(id))?.state).toBe("enqueued");
      // EVAL cached the script again on that master.
      const [cached] = (await r.call("SCRIPT", "EXISTS", (await import("../../src/adapters/storage/redis/scripts.generated.js")).insert.sha)) as number[];
      expect(cached).toBe(1);
    } finally {
      r.disconnect();
    }
  });
});
