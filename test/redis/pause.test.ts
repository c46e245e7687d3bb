/**
 * Paused queues on Redis, where the conformance suite does not reach: what
 * the pause check costs a claim (counted in a private redis-server's
 * command statistics), due jobs of a paused queue parked once instead of
 * read by every claim, parked jobs that are cancelled, requeued or
 * debounced, and a pause or resume seen by other processes at once.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { hasRedisServer, prefixes, redisStorage, redisStoragesFor, startPrivateRedis, type PrivateRedis, type StorageOnRedis } from "./helpers.js";

const claim = (storage: StorageOnRedis, clock: ManualClock, queues = ["default"], limit = 100) =>
  storage.driver.claim({ queues, limit, owner: "w", leaseMs: 30_000, now: clock.now() });

describeWithService("redis-server (binary)", hasRedisServer(), "redis: what pausing costs a claim (private redis-server)", () => {
  const keys = prefixes("pausecost");
  let server: PrivateRedis;
  let admin: Redis;
  let storage: StorageOnRedis;
  beforeAll(async () => {
    server = await startPrivateRedis();
    admin = new Redis(server.url, { lazyConnect: true });
    storage = redisStorage(new RedisConfig(server.url).withKeyPrefix(keys.next()), { clock: new ManualClock() });
    await storage.migrate();
  });
  afterAll(async () => {
    await storage?.close();
    admin?.disconnect();
    await server?.stop();
  });

  /** Calls per command since the last CONFIG RESETSTAT, scripts' own commands included. */
  async function commandsOf(run: () => Promise<unknown>): Promise<Record<string, number>> {
    await admin.config("RESETSTAT");
    await run();
    const info = await admin.info("commandstats");
    const calls: Record<string, number> = {};
    for (const m of info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)) calls[m[1]!] = Number(m[2]);
    // The statistics calls themselves.
    for (const name of Object.keys(calls)) if (/^(config|info)\b/.test(name)) delete calls[name];
    return calls;
  }

  it("an idle claim with no queue paused is one script call, and the pause check in it one SMEMBERS", async () => {
    const clock = new ManualClock();
    const calls = await commandsOf(() => claim(storage, clock, ["mail", "default"]));
    // Before pausing existed: the same without smembers. (hget: the claim id, for a retried claim; zcard, zcount: retention.)
    expect(calls).toEqual({ evalsha: 1, hget: 1, smembers: 1, zrangebyscore: 1, zrange: 2, zcard: 1, zcount: 1 });
  });

  it("a paused queue asked for is not even read", async () => {
    const clock = new ManualClock();
    await storage.pauseQueue("mail");
    const calls = await commandsOf(() => claim(storage, clock, ["mail", "default"]));
    expect(calls).toEqual({ evalsha: 1, hget: 1, smembers: 1, zrangebyscore: 1, zrange: 1, zcard: 1, zcount: 1 });
    await storage.resumeQueue("mail");
  });
});

describeWithService("redis", await serviceUp("redis"), "redis: paused queues", () => {
  const keys = prefixes("pause");
  const open = redisStoragesFor(keys);
  const opened: StorageOnRedis[] = [];
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis(REDIS_URL, { lazyConnect: true });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    admin.disconnect();
  });

  for (const driver of ["tcp", "upstash"] as const) {
    it(`${driver}: due jobs of a paused queue are parked once, so they hold back no other queue's promotion; resumed, they run in order`, async () => {
      const clock = new ManualClock();
      const storage = await open(driver, clock);
      opened.push(storage);
      const base = storage.driver.base;
      await storage.pauseQueue("mail");
      const mail = await storage.enqueue(Array.from({ length: 12 }, (_, i) => new Job("m", [i], { queue: "mail", delay: 1000 + i })));
      // Due after every mail job: behind them at the head of `delayed`.
      const other = await storage.enqueue(new Job("o", [], { delay: 2000 }));
      clock.advance(2000);
      // promoteBatch 1000 would park them all in one claim; with 5, a claim parks at most 5 (and promotes up to 5).
      await storage.driver.promoteDue(clock.now(), 5);
      expect(await admin.zcard(`${base}parked:mail`)).toBe(5);
      // The next claim parks the other 7 and promotes and claims the job behind them.
      expect((await claim(storage, clock)).map((r) => r.id)).toEqual([other]);
      // Each mail job was read once: none is left in `delayed` for later claims to read again.
      expect(await admin.zcard(`${base}parked:mail`)).toBe(12);
      expect(await admin.zcard(`${base}delayed`)).toBe(0);
      expect((await storage.stats()).queues.find((q) => q.name === "mail")!.counts).toMatchObject({ scheduled: 12, enqueued: 0 });
      expect((await storage.get(mail[0]!))!.state).toBe(JobState.Scheduled);

      await storage.resumeQueue("mail");
      expect(await admin.exists(`${base}parked:mail`)).toBe(0);
      expect((await claim(storage, clock, ["mail"])).map((r) => r.id)).toEqual(mail);
    });

    it(`${driver}: a parked job cancelled, requeued or debounced leaves no index entry behind`, async () => {
      const clock = new ManualClock();
      const storage = await open(driver, clock);
      opened.push(storage);
      const base = storage.driver.base;
      await storage.pauseQueue("default");
      const [a, b, c] = await storage.enqueue([
        new Job("a", [1], { delay: 1000, uniqueKey: "a", uniqueMode: "debounce" }),
        new Job("b", [], { delay: 1000 }),
        new Job("c", [], { delay: 1000 }),
      ]);
      clock.advance(1000);
      expect(await claim(storage, clock)).toEqual([]);
      expect(await admin.zcard(`${base}parked:default`)).toBe(3);

      expect(await storage.cancel(b!)).toBe(true);
      expect((await storage.requeue(c!)).state).toBe(JobState.Enqueued);
      expect(await storage.enqueue(new Job("a", [2], { delay: 5000, uniqueKey: "a", uniqueMode: "debounce" }))).toBe(a);
      expect(await admin.exists(`${base}parked:default`)).toBe(0);
      expect(await claim(storage, clock)).toEqual([]);

      await storage.resumeQueue("default");
      expect((await claim(storage, clock)).map((r) => r.id)).toEqual([c]);
      clock.advance(5000);
      const [due] = await claim(storage, clock);
      expect(due).toMatchObject({ id: a, args: [2] });
      expect(await claim(storage, clock)).toEqual([]);
      expect(await admin.exists(`${base}delayed`, `${base}ready:default`, `${base}parked:default`)).toBe(0);
      expect((await storage.stats()).states).toMatchObject({ scheduled: 0, enqueued: 0, processing: 2, deleted: 1 });
    });
  }

  it("a pause or resume through one connection holds for the next claim through another, and a resume wakes its subscribers", async () => {
    const prefix = keys.next();
    const config = () => new RedisConfig(REDIS_URL).withKeyPrefix(prefix);
    const clock = new ManualClock();
    const here = redisStorage(config(), { clock });
    const there = redisStorage(config(), { clock });
    opened.push(here, there);
    await here.migrate();
    await there.migrate();
    const id = await here.enqueue(new Job("p", [], { queue: "mail" }));
    await there.pauseQueue("mail");
    expect(await here.pausedQueues()).toEqual(["mail"]);
    expect(await claim(here, clock, ["mail"])).toEqual([]);

    const woken = new Promise<string[]>((resolve) => here.onEnqueue((jobs) => resolve(jobs.map((j) => j.queue))));
    expect(await here.subscribed()).toBe(true);
    await there.resumeQueue("mail");
    expect(await woken).toEqual(["mail"]);
    expect((await claim(here, clock, ["mail"])).map((r) => r.id)).toEqual([id]);
  });
});
