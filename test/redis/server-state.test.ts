/**
 * Behaviour that depends on server state: the eviction-policy check at
 * migrate() and recovery from an emptied script cache. Both change the
 * server (its policy, SCRIPT FLUSH), so they run against a private
 * redis-server started here, never the shared one.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { ConfigError, Job, JobState, ManualClock } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import * as scripts from "../../src/adapters/storage/redis/scripts.generated.js";
import { describeWithService } from "../helpers/services.js";
import { hasRedisServer, prefixes, redisStorage, scanKeys, startPrivateRedis, type PrivateRedis, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("state");

describeWithService("redis-server (binary)", hasRedisServer(), "redis: server state (private redis-server)", () => {
  let server: PrivateRedis;
  let admin: Redis;
  let gateway: UpstashGateway;
  let refusing: UpstashGateway;
  const opened: StorageOnRedis[] = [];

  beforeAll(async () => {
    server = await startPrivateRedis(["--maxmemory-policy", "allkeys-lru"]);
    admin = new Redis(server.url, { lazyConnect: true });
    gateway = await startUpstashGateway({ redisUrl: server.url });
    // Upstash refuses CONFIG; so does this one.
    refusing = await startUpstashGateway({ redisUrl: server.url, refuseCommands: ["config"] });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await gateway?.close();
    await refusing?.close();
    admin?.disconnect();
    await server?.stop();
  });

  const tcp = () => new RedisConfig(server.url).withKeyPrefix(keys.next());
  const upstash = (g = gateway) => new RedisConfig(g.url).withToken(g.token).withKeyPrefix(keys.next());
  async function open(config: RedisConfig, clock = new ManualClock()): Promise<StorageOnRedis> {
    const s = redisStorage(config, { clock });
    opened.push(s);
    return s;
  }

  for (const [label, config] of [
    ["TCP", tcp],
    ["Upstash REST", () => upstash()],
  ] as const) {
    it(`${label}: migrate refuses a server whose maxmemory-policy can evict jobs, saying why, and writes nothing`, async () => {
      const c = config();
      const storage = await open(c);
      const err = await storage.migrate().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      const message = (err as Error).message;
      expect(message).toContain("allkeys-lru");
      expect(message).toContain("noeviction");
      expect(message).toContain("withAllowEviction(true)");
      expect(await scanKeys(server.url, `${c.resolve().keyPrefix}*`)).toEqual([]);
    });

    it(`${label}: withAllowEviction(true) starts anyway`, async () => {
      const storage = await open(config().withAllowEviction(true));
      await storage.migrate();
      const id = await storage.enqueue(new Job("ok", []));
      expect((await storage.get(id))!.state).toBe(JobState.Enqueued);
    });
  }

  it("a server that refuses CONFIG (as Upstash may) is taken as it is: migrate succeeds", async () => {
    const storage = await open(upstash(refusing));
    await storage.migrate();
    expect(await storage.enqueue(new Job("ok", []))).toBeTypeOf("string");
  });

  async function evalCalls(): Promise<number> {
    const info = await admin.info("commandstats");
    return Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
  }

  for (const [label, config] of [
    ["TCP", tcp],
    ["Upstash REST", () => upstash()],
  ] as const) {
    it(`${label}: after SCRIPT FLUSH every operation still works (NOSCRIPT → EVAL with the body)`, async () => {
      const clock = new ManualClock();
      const storage = await open(config().withAllowEviction(true), clock);
      await storage.migrate();
      await storage.enqueue([new Job("a", [1]), new Job("a", [2])]);

      await admin.script("FLUSH");
      expect(await admin.script("EXISTS", scripts.claim.sha)).toEqual([0]);
      const before = await evalCalls();
      const claimed = await storage.driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 30_000, now: clock.now() });
      expect(claimed).toHaveLength(2);
      expect(await evalCalls()).toBeGreaterThan(before);

      await admin.script("FLUSH");
      const results = await storage.driver.complete(
        claimed.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" })),
        clock.now(),
      );
      expect(results.map((r) => r.status)).toEqual(["applied", "applied"]);
      expect((await storage.stats()).states.succeeded).toBe(2);
    });
  }
});
