/**
 * Names that try key or Lua injection are refused by Storage over the Redis
 * backend with a ValidationError, and nothing is written; strings the
 * backend takes as they are (ids, unique keys, arguments, and names that
 * reach it without Storage) stay opaque bytes inside our one hash tag.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { Job, JobState, ManualClock, ValidationError } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, scanKeys, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("inject");

const HOSTILE = ["a:b", "{x}", "q{q}", "q*", "q?", "[q]", "a\nb", "a\r\nSET x y", "a b", "']] redis.call('FLUSHALL') --[['", "x".repeat(10_000), ""];

describeWithService("redis", await serviceUp("redis"), "redis: injection", () => {
  let gateway: UpstashGateway;
  const opened: StorageOnRedis[] = [];
  beforeAll(async () => {
    gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  for (const driver of ["tcp", "upstash"] as const) {
    async function open(): Promise<{ storage: StorageOnRedis; prefix: string; clock: ManualClock }> {
      const prefix = keys.next();
      const config = driver === "tcp" ? new RedisConfig(REDIS_URL) : new RedisConfig(gateway.url).withToken(gateway.token);
      const clock = new ManualClock();
      const storage = redisStorage(config.withKeyPrefix(prefix), { clock });
      opened.push(storage);
      await storage.migrate();
      return { storage, prefix, clock };
    }

    it(`${driver}: hostile queue and job names are refused with a ValidationError, and nothing is written`, async () => {
      const { storage, prefix, clock } = await open();
      const before = await scanKeys(REDIS_URL, `${prefix}*`);
      expect(before).toEqual([`${prefix}{q}:meta`]);
      for (const bad of HOSTILE) {
        await expect(storage.enqueue(new Job("ok", [], { queue: bad }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job(bad, []))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue([new Job("ok", []), new Job(bad, [])])).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.addOrUpdateRecurring(bad, "* * * * *", "ok")).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.addOrUpdateRecurring("r", "* * * * *", "ok", [], { queue: bad })).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.list({ queue: bad })).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.list({ name: bad })).rejects.toBeInstanceOf(ValidationError);
        // The backend does not validate (Storage does), but a name that reaches it is still only a key suffix after our tag.
        await expect(storage.driver.claim({ queues: [bad], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() })).resolves.toEqual([]);
      }
      expect(await scanKeys(REDIS_URL, `${prefix}*`)).toEqual(before);
      expect((await storage.stats()).total).toBe(0);
    });

    it(`${driver}: ids, unique keys and arguments are opaque: odd bytes stay inside this prefix's hash tag`, async () => {
      const { storage, prefix, clock } = await open();
      const job = new Job("ok", ["']] redis.call('FLUSHALL') --[['", "{other}:*\n"], { uniqueKey: "{other}:*\nkey" });
      job.id = "id-{other}-*-]]--"; // control characters in ids are refused by core validation
      expect(await storage.enqueue(job)).toBe(job.id);
      expect(await storage.enqueue(new Job("ok", [], { uniqueKey: "{other}:*\nkey" }))).toBe(job.id);
      expect(await storage.get("nope}{*\n")).toBeNull();
      const got = (await storage.get(job.id))!;
      expect(got.arguments).toEqual(["']] redis.call('FLUSHALL') --[['", "{other}:*\n"]);
      const [r] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: 'owner "quoted" {x}\n', leaseMs: 1000, now: clock.now() });
      expect(r!.id).toBe(job.id);
      expect(r!.history.at(-1)!.worker).toBe('owner "quoted" {x}\n');
      await storage.driver.complete(
        [{ id: r!.id, token: r!.leaseToken, state: JobState.Succeeded, reason: 'done\n"', worker: "w\n", result: "\n]]" }],
        clock.now(),
      );
      expect((await storage.get(job.id))!.result).toBe("\n]]");
      expect((await storage.get(job.id))!.history.map((h) => h.reason)).toContain('done\n"');
      // Every key is under the prefix and its one tag: one Redis Cluster slot.
      const all = await scanKeys(REDIS_URL, `${prefix}*`);
      expect(all.length).toBeGreaterThan(5);
      for (const k of all) expect(k.startsWith(`${prefix}{q}:`), k).toBe(true);
      const tooLong = new Job("ok", []);
      tooLong.id = "x".repeat(201);
      await expect(storage.enqueue(tooLong)).rejects.toBeInstanceOf(ValidationError);
    });
  }
});
