/**
 * No key grows without bound: finished jobs are pruned by count and by age
 * (on the caller's clock), and with them their index entries, unique keys
 * and counters; throughput buckets past their window are dropped.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, type JobRecord } from "../../src/index.js";
import { type Outcome } from "../../src/core/driver.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, scanKeys, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("retention");
const HOUR = 3_600_000;

describeWithService("redis", await serviceUp("redis"), "redis: retention", () => {
  let admin: Redis;
  const opened: StorageOnRedis[] = [];
  beforeAll(() => {
    admin = new Redis(REDIS_URL, { lazyConnect: true });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    admin.disconnect();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  async function open(config: (c: RedisConfig) => RedisConfig, clock: ManualClock): Promise<{ storage: StorageOnRedis; prefix: string }> {
    const prefix = keys.next();
    const storage = redisStorage(config(new RedisConfig(REDIS_URL).withKeyPrefix(prefix)), { clock });
    opened.push(storage);
    await storage.migrate();
    return { storage, prefix };
  }

  const outcome = (r: JobRecord, state: Outcome["state"], extra: Partial<Outcome> = {}): Outcome => ({
    id: r.id,
    token: r.leaseToken,
    state,
    reason: state,
    worker: "w",
    ...extra,
  });

  it("the number of keys stays flat across 10,000 jobs when at most 100 finished jobs are kept", async () => {
    const clock = new ManualClock();
    const { storage, prefix } = await open((c) => c.withMaxFinishedJobs(100), clock);
    const counted: number[] = [];
    let processed = 0;
    for (let round = 0; round < 20; round++) {
      await storage.enqueue(
        Array.from({ length: 500 }, (_, i) => new Job("work", [round, i], { queue: i % 2 ? "a" : "b", uniqueKey: `k-${round}-${i}`, priority: i % 3 })),
      );
      // Every state a job passes through: retries, releases, failures, deletes.
      for (;;) {
        const claimed = await storage.driver.claim({ queues: ["a", "b"], limit: 250, owner: "w", leaseMs: 30_000, now: clock.now() });
        if (claimed.length === 0) break;
        const outcomes = claimed.map((r, i) =>
          r.attempts === 1 && i % 10 === 0
            ? outcome(r, JobState.AwaitingRetry, { runAt: clock.now(), error: { name: "E", message: "again" } })
            : r.attempts === 1 && i % 10 === 1
              ? outcome(r, JobState.Enqueued)
              : outcome(r, i % 7 === 0 ? JobState.Failed : JobState.Succeeded, { result: { ok: i } }),
        );
        await storage.driver.complete(outcomes, clock.now());
        processed += outcomes.filter((o) => o.state === JobState.Succeeded || o.state === JobState.Failed).length;
        clock.advance(10);
      }
      const extra = await storage.enqueue(new Job("doomed", [round]));
      await storage.delete(extra);
      if (round === 4 || round === 19) counted.push((await scanKeys(REDIS_URL, `${prefix}*`)).length);
    }
    expect(processed).toBe(10_000);

    const base = `${prefix}{q}:`;
    const finished = await admin.zcard(`${base}finished`);
    const jobs = (await scanKeys(REDIS_URL, `${base}job:*`)).length;
    expect(finished).toBe(100);
    expect(jobs).toBe(100);
    expect(await admin.zcard(`${base}idx:created`)).toBe(100);
    expect(await admin.zcard(`${base}idx:updated`)).toBe(100);
    expect(await admin.zcard(`${base}idx:runat`)).toBe(100);
    expect(await admin.hlen(`${base}unique`)).toBeLessThanOrEqual(100);
    expect(await admin.hlen(`${base}qcounts`)).toBeLessThanOrEqual(2 * 3);
    // 100 jobs + a fixed set of structural keys (counters, indexes, buckets, meta), not a function of N.
    expect(counted[1]).toBeLessThanOrEqual(100 + 20);
    expect(counted[1]).toBe(counted[0]);
    const st = await storage.stats();
    expect(st.total).toBe(100);
    expect(st.states.succeeded + st.states.failed + st.states.deleted).toBe(100);
  });

  it("with maxFinishedJobs 0, the completion deletes a finished job (key, indexes, unique key) and still counts it", async () => {
    const clock = new ManualClock();
    const { storage, prefix } = await open((c) => c.withMaxFinishedJobs(0), clock);
    const [done, retry] = (await storage.enqueue([new Job("k", ["done"], { uniqueKey: "u-0" }), new Job("k", ["retry"])])) as [string, string];
    const claimed = await storage.driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 30_000, now: clock.now() });
    const byId = new Map(claimed.map((r) => [r.id, r]));
    const res = await storage.driver.complete(
      [outcome(byId.get(done)!, JobState.Succeeded), outcome(byId.get(retry)!, JobState.AwaitingRetry, { runAt: clock.now() + 1000 })],
      clock.now(),
    );
    expect(res.map((r) => r.status)).toEqual(["applied", "applied"]);
    expect(await storage.get(done)).toBeNull();
    expect((await storage.get(retry))!.state).toBe(JobState.AwaitingRetry);
    expect((await scanKeys(REDIS_URL, `${prefix}*job:*`)).length).toBe(1);
    expect(await storage.enqueue(new Job("k", [], { uniqueKey: "u-0" }))).not.toBe(done);
    const st = await storage.stats({ hours: 1 });
    expect(st.perHour.reduce((a, b) => a + b.succeeded, 0)).toBe(1);
  });

  it("finished jobs older than the TTL go with the next write, on the caller's clock; live jobs stay", async () => {
    const clock = new ManualClock();
    const { storage, prefix } = await open((c) => c.withFinishedJobTtl(60_000), clock);
    const ids = await storage.enqueue(Array.from({ length: 30 }, (_, i) => new Job("t", [i], { uniqueKey: `t-${i}` })));
    const claimed = await storage.driver.claim({ queues: ["default"], limit: 20, owner: "w", leaseMs: 600_000, now: clock.now() });
    await storage.driver.complete(
      claimed.map((r) => outcome(r, JobState.Succeeded)),
      clock.now(),
    );
    expect((await scanKeys(REDIS_URL, `${prefix}*job:*`)).length).toBe(30);

    clock.advance(60_000); // exactly the TTL: not older than it yet
    expect(await storage.driver.claim({ queues: ["none"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() })).toEqual([]);
    expect(await storage.get(claimed[0]!.id)).not.toBeNull();

    clock.advance(1);
    // An idle poll is a write too: it prunes.
    expect(await storage.driver.claim({ queues: ["none"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() })).toEqual([]);
    for (const r of claimed) expect(await storage.get(r.id)).toBeNull();
    const left = await storage.list({}, { limit: 100 });
    expect(left.items.map((j) => j.id).sort()).toEqual(ids.filter((id) => !claimed.some((r) => r.id === id)).sort());
    expect((await storage.stats()).total).toBe(10);
    expect((await scanKeys(REDIS_URL, `${prefix}*job:*`)).length).toBe(10);
    expect(await admin.exists(`${prefix}{q}:finished`)).toBe(0);
    // Their unique keys are free again.
    expect(await storage.enqueue(new Job("t", [], { uniqueKey: "t-0" }))).not.toBe(ids[0]);
  });

  it("throughput buckets past their window are dropped", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, prefix } = await open((c) => c, clock);
    const finishOne = async () => {
      await storage.enqueue(new Job("tp", []));
      const [r] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() });
      await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now());
    };
    const base = `${prefix}{q}:`;
    await finishOne();
    clock.advance(25 * HOUR); // past the 24 h of minute buckets, within the 31 days of hour buckets
    await finishOne();
    expect(await admin.hkeys(`${base}tp:m`)).toEqual([`s:${Math.floor(clock.now() / 60_000) * 60_000}`]);
    expect(await admin.hlen(`${base}tp:h`)).toBe(2);
    clock.advance(32 * 24 * HOUR);
    await finishOne();
    expect(await admin.hlen(`${base}tp:h`)).toBe(1);
    expect(await admin.zcard(`${base}tp:m:idx`)).toBe(1);
    const st = await storage.stats({ minutes: 2, hours: 2 });
    expect(st.perMinute.at(-1)!.succeeded).toBe(1);
  });
});
