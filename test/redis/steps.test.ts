/**
 * Durable steps on Redis, where the conformance suite (steps-conformance.ts)
 * does not reach: the steps as a field of the job's hash, written only by
 * saveSteps (a job without steps never gets the field, so its claims and
 * completions carry nothing for them), sent in the claim reply (also a
 * retried claim's) exactly as get reads them; kept through every way out
 * of processing; a resent saveSteps or suspension (the HTTP client resends
 * a request whose reply was lost) applied once; and the event-waiter sets
 * as keys inside the backend's hash tag that expire with their latest
 * member, so an event no one waits for leaves nothing behind.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, type JobRecord, type StepRecord } from "../../src/index.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import type { Outcome } from "../../src/core/driver.js";
import { decodeClaimed } from "../../src/adapters/storage/redis/codec.js";
import { keySlot } from "../../src/adapters/storage/redis/keys.js";
import * as scripts from "../../src/adapters/storage/redis/scripts.generated.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { prefixes, redisStoragesFor, scanKeys, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("steps");
const LEASE = 30_000;

describeWithService("redis", await serviceUp("redis"), "redis: durable steps", () => {
  const open = redisStoragesFor(keys);
  let admin: Redis;
  const opened: StorageOnRedis[] = [];
  beforeAll(() => {
    admin = new Redis(REDIS_URL, { lazyConnect: true });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    admin.disconnect();
  });

  async function fresh(driver: "tcp" | "upstash") {
    const clock = new ManualClock();
    const storage = await open(driver, clock);
    opened.push(storage);
    return { storage, clock };
  }
  const claim = (storage: StorageOnRedis, clock: ManualClock) =>
    storage.driver.claim({ queues: ["default"], limit: 100, owner: "w1", leaseMs: LEASE, now: clock.now() });
  const outcome = (r: JobRecord, state: Outcome["state"], extra: Partial<Outcome> = {}): Outcome => ({
    id: r.id,
    token: r.leaseToken,
    state,
    reason: state,
    worker: "w1/1",
    ...extra,
  });
  const entry = (at: number, reason: string) => ({ state: JobState.Processing, at, reason, worker: "w1/1" });
  const hasSteps = async (storage: StorageOnRedis, id: string) => (await admin.hexists(`${storage.driver.base}job:${id}`, "steps")) === 1;
  const escape = (s: string) => s.replace(/[{}[\]*?\\]/g, "\\$&");

  // Values JSON keeps exactly only when it is never re-encoded (Lua's cjson would write 1e21 as 1e+21, 0.1 as 0.10000000000000001).
  const tricky = (at: number): StepRecord[] => [
    { id: "charge", kind: "run", status: "completed", startedAt: at, finishedAt: at + 3, durationMs: 3, result: { big: 1e21, small: 0.1, neg: -5e-324 } },
    { id: 'ü "x"\n{y}', kind: "run", status: "completed", startedAt: at, result: "nul \u0000, line sep \u2028, emoji 🚀, lone \ud800" },
    { id: "nap", kind: "sleep", status: "waiting", startedAt: at, until: at + 60_000 },
    { id: "wait", kind: "wait", status: "waiting", startedAt: at, until: at + 1_000, event: "ördér ✓ {x}", match: { n: [1, null, true] } },
  ];

  for (const driver of ["tcp", "upstash"] as const) {
    it(`${driver}: a claim (and a retried claim) returns the steps exactly as get reads them`, async () => {
      const { storage, clock } = await fresh(driver);
      const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
      const [r] = await claim(storage, clock);
      const steps = tricky(clock.now());
      expect(await storage.driver.saveSteps({ id, token: r!.leaseToken }, steps, entry(clock.now(), "saved"), clock.now())).toBe(true);
      await storage.driver.complete([outcome(r!, JobState.AwaitingRetry, { runAt: clock.now() })], clock.now());
      clock.advance(1);
      const c = storage.driver.config;
      const args = [
        String(clock.now()),
        String(c.maxFinishedJobs),
        String(c.finishedJobTtlMs),
        String(c.pruneBatch),
        "10",
        String(LEASE),
        "w1",
        '"w1"',
        "1000",
        "claim-1",
        "1",
        "default",
      ];
      const redis = await storage.driver.connection();
      const first = decodeClaimed(await redis.evalScript(scripts.claim, [storage.driver.base], args));
      const again = decodeClaimed(await redis.evalScript(scripts.claim, [storage.driver.base], args));
      const [got] = await storage.driver.get([id]);
      expect(first).toStrictEqual([got]);
      expect(again).toStrictEqual([got]);
      expect(got!.steps).toEqual(JSON.parse(JSON.stringify(steps)));
      expect(got!.steps![0]!.result).toEqual({ big: 1e21, small: 0.1, neg: -5e-324 });
      expect(await admin.hget(`${storage.driver.base}job:${id}`, "steps")).toBe(JSON.stringify(steps));
    });

    it(`${driver}: a job without steps never gets the field, and its records carry none`, async () => {
      const { storage, clock } = await fresh(driver);
      const id = await storage.enqueue(new Job("plain", [], { maxAttempts: 5 }));
      let [r] = await claim(storage, clock);
      expect(r).not.toHaveProperty("steps");
      await storage.driver.complete([outcome(r!, JobState.AwaitingRetry, { runAt: clock.now() })], clock.now());
      [r] = await claim(storage, clock);
      await storage.driver.complete([outcome(r!, JobState.Scheduled, { runAt: clock.now() })], clock.now());
      [r] = await claim(storage, clock);
      await storage.driver.complete([outcome(r!, JobState.Enqueued)], clock.now());
      [r] = await claim(storage, clock);
      expect(r).not.toHaveProperty("steps");
      await storage.driver.complete([outcome(r!, JobState.Succeeded, { result: 1 })], clock.now());
      expect(await hasSteps(storage, id)).toBe(false);
      const [got] = await storage.driver.get([id]);
      expect(got).not.toHaveProperty("steps");
      expect((await storage.driver.list({}, { limit: 10, sort: "createdAt", order: "asc" })).items[0]).not.toHaveProperty("steps");
    });

    it(`${driver}: a resent saveSteps writes its history entry once; the history stays within its limit`, async () => {
      const { storage, clock } = await fresh(driver);
      const id = await storage.enqueue(new Job("wf"));
      const [r] = await claim(storage, clock);
      const lease = { id, token: r!.leaseToken };
      const one: StepRecord[] = [{ id: "a", kind: "run", status: "completed", startedAt: clock.now(), result: 1 }];
      expect(await storage.driver.saveSteps(lease, one, entry(clock.now(), "step a completed"), clock.now())).toBe(true);
      expect(await storage.driver.saveSteps(lease, one, entry(clock.now(), "step a completed"), clock.now())).toBe(true);
      let got = (await storage.driver.get([id]))[0]!;
      expect(got.history.filter((h) => h.reason === "step a completed")).toHaveLength(1);
      expect(Number(await admin.hget(`${storage.driver.base}job:${id}`, "hn"))).toBe(got.history.length);
      // The same reason a moment later is a new save, and is recorded.
      clock.advance(1);
      expect(await storage.driver.saveSteps(lease, one, entry(clock.now(), "step a completed"), clock.now())).toBe(true);
      got = (await storage.driver.get([id]))[0]!;
      expect(got.history.filter((h) => h.reason === "step a completed")).toHaveLength(2);
      for (let i = 0; i < HISTORY_LIMIT + 5; i++) {
        await storage.driver.saveSteps(lease, one, entry(clock.now(), `save ${i}`), clock.now());
      }
      got = (await storage.driver.get([id]))[0]!;
      expect(got.history).toHaveLength(HISTORY_LIMIT);
      expect(got.history.at(-1)!.reason).toBe(`save ${HISTORY_LIMIT + 4}`);
      expect(Number(await admin.hget(`${storage.driver.base}job:${id}`, "hn"))).toBe(HISTORY_LIMIT);
      expect(got.steps).toEqual(one);
      expect(got.updatedAt).toBe(clock.now());
    });

    it(`${driver}: a resent suspension changes nothing more`, async () => {
      const { storage, clock } = await fresh(driver);
      const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
      let [r] = await claim(storage, clock);
      await storage.driver.complete([outcome(r!, JobState.AwaitingRetry, { runAt: clock.now(), error: { name: "E", message: "first" } })], clock.now());
      [r] = await claim(storage, clock);
      expect(r!.attempts).toBe(2);
      const o = outcome(r!, JobState.Scheduled, { runAt: clock.now() + 1_000, reason: "sleeping" });
      expect(await storage.driver.complete([o], clock.now())).toEqual([{ id, status: "applied" }]);
      expect(await storage.driver.complete([o], clock.now())).toEqual([{ id, status: "applied" }]);
      const got = (await storage.driver.get([id]))[0]!;
      expect(got).toMatchObject({ state: JobState.Scheduled, attempts: 1, runAt: clock.now() + 1_000, error: { message: "first" } });
      expect(got.history.filter((h) => h.reason === "sleeping")).toHaveLength(1);
      expect((await storage.stats()).states).toMatchObject({ scheduled: 1, processing: 0 });
    });
  }

  it("steps outlive every way out of processing: reclaim, release, suspension, retry, failure, requeue, delete, and are listed", async () => {
    const { storage, clock } = await fresh("tcp");
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 10 }));
    let [r] = await claim(storage, clock);
    const steps = tricky(clock.now());
    await storage.driver.saveSteps({ id, token: r!.leaseToken }, steps, entry(clock.now(), "saved"), clock.now());
    const want = JSON.parse(JSON.stringify(steps)) as StepRecord[];
    const check = async () => {
      const [got] = await storage.driver.get([id]);
      expect(got!.steps).toEqual(want);
    };
    // The lease runs out: reclaimed.
    clock.advance(LEASE + 1);
    expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(1);
    await check();
    [r] = await claim(storage, clock);
    expect(r!.steps).toEqual(want);
    await storage.driver.complete([outcome(r!, JobState.Enqueued)], clock.now());
    await check();
    [r] = await claim(storage, clock);
    await storage.driver.complete([outcome(r!, JobState.Scheduled, { runAt: clock.now() })], clock.now());
    await check();
    expect(await storage.driver.promoteDue(clock.now(), 10)).toBe(1);
    [r] = await claim(storage, clock);
    expect(r!.steps).toEqual(want);
    await storage.driver.complete([outcome(r!, JobState.AwaitingRetry, { runAt: clock.now(), error: { name: "E", message: "x" } })], clock.now());
    await check();
    [r] = await claim(storage, clock);
    await storage.driver.complete([outcome(r!, JobState.Failed, { error: { name: "E", message: "y" } })], clock.now());
    await check();
    const [requeued] = await storage.driver.transition({ ids: [id], from: [JobState.Failed], to: JobState.Enqueued, reason: "requeue", now: clock.now() });
    expect(requeued!.record.steps).toEqual(want);
    const [deleted] = await storage.driver.transition({ ids: [id], from: [JobState.Enqueued], to: JobState.Deleted, reason: "delete", now: clock.now() });
    expect(deleted!.record.steps).toEqual(want);
    const page = await storage.driver.list({ state: JobState.Deleted }, { limit: 10, sort: "createdAt", order: "asc" });
    expect(page.items.map((x) => x.steps)).toEqual([want]);
  });

  it("the waiter sets are keys inside the hash tag, named by the exact event, expiring with their latest member", async () => {
    const { storage, clock } = await fresh("tcp");
    const d = storage.driver;
    const base = d.base;
    const event = "ördér ✓ {x} }{ *?";
    const key = `${base}waiters:${event}`;
    const now = clock.now();
    await d.addWaiter(event, "job-1", now + 10_000, now);
    await d.addWaiter(event, "job-2", now + 600_000, now);
    await d.addWaiter("order", "job-3", now + 10_000, now);
    expect((await scanKeys(REDIS_URL, `${escape(base)}waiters:*`)).sort()).toEqual([`${base}waiters:order`, key].sort());
    expect(keySlot(key)).toBe(keySlot(`${base}meta`));
    expect(await admin.zrange(key, "0", "-1", "WITHSCORES")).toEqual(["job-1", String(now + 10_000), "job-2", String(now + 600_000)]);
    // The key expires with its latest member, as a span from the caller's now.
    let ttl = await admin.pttl(key);
    expect(ttl).toBeGreaterThan(600_000 - 5_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
    // A replaced expiry moves it.
    await d.addWaiter(event, "job-2", now + 20_000, now);
    ttl = await admin.pttl(key);
    expect(ttl).toBeGreaterThan(20_000 - 5_000);
    expect(ttl).toBeLessThanOrEqual(20_000);
    // A list past an expiry drops the expired members.
    clock.advance(10_000);
    expect(await d.waiters(event, clock.now(), 10)).toEqual(["job-2"]);
    expect(await admin.zrange(key, "0", "-1")).toEqual(["job-2"]);
    // Removing the last member, or listing past every expiry, leaves no key.
    await d.removeWaiters(event, ["job-2", "job-9"]);
    expect(await admin.exists(key)).toBe(0);
    clock.advance(10_000);
    expect(await d.waiters("order", clock.now(), 10)).toEqual([]);
    expect(await admin.exists(`${base}waiters:order`)).toBe(0);
    // A note already past its expiry leaves nothing either.
    await d.addWaiter(event, "job-4", clock.now() - 1, clock.now());
    expect(await admin.exists(key)).toBe(0);
    expect(await d.waiters(event, clock.now(), 10)).toEqual([]);
    // Names differing only after a prefix, or in case, are different events.
    await d.addWaiter("Order", "job-5", clock.now() + 1_000, clock.now());
    expect(await d.waiters("order", clock.now(), 10)).toEqual([]);
    expect(await d.waiters("Order", clock.now(), 10)).toEqual(["job-5"]);
  });

  it("removeWaiters takes many ids at once", async () => {
    const { storage, clock } = await fresh("upstash");
    const d = storage.driver;
    const ids = Array.from({ length: 1_200 }, (_, i) => `job-${i}`);
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(ids.slice(i, i + 100).map((id) => d.addWaiter("bulk", id, clock.now() + 60_000, clock.now())));
    }
    expect((await d.waiters("bulk", clock.now(), 5_000)).length).toBe(1_200);
    await d.removeWaiters("bulk", ids.slice(0, 1_150));
    expect((await d.waiters("bulk", clock.now(), 5_000)).sort()).toEqual(ids.slice(1_150).sort());
  });
});
