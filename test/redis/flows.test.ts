/**
 * Flows on Redis, where the conformance suite does not reach: the
 * dependency edges as keys (`deps:<id>` sets, inside the backend's hash
 * tag, gone once their waiters leave `awaiting`, so no key outlives what
 * it is for), a finished dependency kept past the count limit while jobs
 * wait for it, and resent writes (the HTTP client resends a request whose
 * reply was lost) answering the `dependents` flag as the first run did.
 */
import { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, type JobRecord } from "../../src/index.js";
import { RedisConfig, type RedisDriver } from "../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, scanKeys, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("flows");
const LEASE = 30_000;

describeWithService("redis", await serviceUp("redis"), "redis: flow dependency edges", () => {
  const opened: StorageOnRedis[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  async function open(config: (c: RedisConfig) => RedisConfig = (c) => c, driver?: RedisDriver) {
    const clock = new ManualClock();
    const storage = redisStorage(config(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next())), { clock, ...(driver ? { driver } : {}) });
    opened.push(storage);
    await storage.migrate();
    return { storage, clock };
  }

  /** The edge sets of a storage, as key suffixes after its base. */
  async function edgeKeys(storage: StorageOnRedis): Promise<string[]> {
    const base = storage.driver.base;
    const found = await scanKeys(REDIS_URL, `${base.replace(/[{}[\]*?\\]/g, "\\$&")}deps:*`);
    return found.map((k) => k.slice(base.length)).sort();
  }

  const claim = (storage: StorageOnRedis, clock: ManualClock) =>
    storage.driver.claim({ queues: ["default"], limit: 100, owner: "w", leaseMs: LEASE, now: clock.now() });
  const outcome = (r: JobRecord, state: typeof JobState.Succeeded | typeof JobState.Failed = JobState.Succeeded) => ({
    id: r.id,
    token: r.leaseToken,
    state,
    reason: state,
    worker: "w",
  });

  it("edges are sets inside the hash tag, one per dependency, gone when the waiter is released", async () => {
    const { storage, clock } = await open();
    const ids = await storage.enqueueFlow({ job: new Job("parent"), children: [{ job: new Job("child", [1]) }, { job: new Job("child", [2]) }] });
    expect(await edgeKeys(storage)).toEqual(ids.children.map((c) => `deps:${c.id}`).sort());
    for (const k of await scanKeys(REDIS_URL, `${storage.driver.base.replace(/[{}[\]*?\\]/g, "\\$&")}*`)) {
      expect(k.startsWith(storage.driver.base)).toBe(true);
    }
    const kids = await claim(storage, clock);
    const res = await storage.driver.complete(
      kids.map((r) => outcome(r)),
      clock.now(),
    );
    expect(res.map((r) => r.dependents)).toEqual([true, true]);
    await storage.settleDependents(kids.map((r) => r.id));
    expect((await storage.get(ids.id))!.state).toBe(JobState.Enqueued);
    expect(await edgeKeys(storage)).toEqual([]);
  });

  it("awaiting jobs have their own index: the maintenance sweep's page reads it, not every job; it empties as they leave", async () => {
    const { storage, clock } = await open();
    // More jobs, none awaiting, than one list call looks at (LIST_BUDGET, 5000), created first:
    // a page read from the creation index would stop short of the awaiting job.
    for (let i = 0; i < 5200; i += 1300) await storage.enqueue(Array.from({ length: 1300 }, (_, k) => new Job("other", [i + k], { queue: "other" })));
    clock.advance(1);
    const ids = await storage.enqueueFlow({ job: new Job("parent"), children: [{ job: new Job("child") }] });
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      const key = `${storage.driver.base}awaiting`;
      expect(await redis.zrange(key, "0", "-1")).toEqual([ids.id]);
      const page = await storage.driver.list({ state: [JobState.Awaiting] }, { limit: 100, sort: "createdAt", order: "asc" });
      expect(page.items.map((r) => r.id)).toEqual([ids.id]);
      expect(page.next).toBeUndefined();
      const kids = await claim(storage, clock);
      const mine = kids.filter((r) => r.id === ids.children[0]!.id);
      await storage.driver.complete(
        mine.map((r) => outcome(r)),
        clock.now(),
      );
      await storage.settleDependents(mine.map((r) => r.id));
      expect(await redis.exists(key)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  it("a cancelled waiter, a purged waiter and a released one leave no edge behind", async () => {
    const { storage, clock } = await open();
    const parent = await storage.enqueue(new Job("parent"));
    const cancelled = await storage.continueWith(parent, new Job("next", [1]));
    const purged = await storage.continueWith(parent, new Job("next", [2]));
    const onFailure = await storage.continueWith(parent, new Job("cleanup"), { on: "failure" });
    expect(await edgeKeys(storage)).toEqual([`deps:${parent}`]);
    expect((await storage.driver.dependents([parent])).sort()).toEqual([cancelled, purged, onFailure].sort());

    expect(await storage.cancel(cancelled)).toBe(true);
    expect((await storage.driver.dependents([parent])).sort()).toEqual([purged, onFailure].sort());
    expect(await storage.driver.purge([JobState.Awaiting], clock.now() + 1, 1)).toBe(1);
    const left = await storage.driver.dependents([parent]);
    expect(left.length).toBe(1);

    const [p] = await claim(storage, clock);
    await storage.driver.complete([outcome(p!)], clock.now());
    await storage.settleDependents([parent]);
    expect(await edgeKeys(storage)).toEqual([]);
  });

  it("a finished job that jobs wait for is kept past the count limit; the others go", async () => {
    const { storage, clock } = await open((c) => c.withMaxFinishedJobs(0));
    const ids = await storage.enqueueFlow({ job: new Job("parent"), children: [{ job: new Job("child", [1]) }, { job: new Job("child", [2]) }] });
    const lone = await storage.enqueue(new Job("lone"));
    const claimed = await claim(storage, clock);
    const first = claimed.find((r) => r.id === ids.children[0]!.id)!;
    await storage.driver.complete([outcome(first), outcome(claimed.find((r) => r.id === lone)!)], clock.now());
    // Pruning runs at the end of every write: the complete above, then these.
    for (let i = 0; i < 3; i++) {
      await storage.enqueue(new Job("later", [i]));
      clock.advance(1000);
    }
    expect(await storage.get(lone)).toBeNull();
    expect((await storage.get(first.id))!.state).toBe(JobState.Succeeded);
    expect((await storage.stats()).states.succeeded).toBe(1);
  });

  it("a resent completion or transition answers the dependents flag again, and changes nothing twice", async () => {
    const inner = new IoredisDriver({ url: REDIS_URL });
    // Each complete and transition runs twice, as a request applied but not answered, then resent.
    const driver: RedisDriver = {
      kind: inner.kind,
      async evalScript(script, k, args) {
        if (script.name !== "complete" && script.name !== "transition") return inner.evalScript(script, k, args);
        await inner.evalScript(script, k, args);
        return inner.evalScript(script, k, args);
      },
      command: (args) => inner.command(args),
      loadScripts: (scripts) => inner.loadScripts(scripts),
      close: () => inner.close(),
    };
    const { storage, clock } = await open((c) => c, driver);
    const a = await storage.enqueue(new Job("a"));
    const b = await storage.enqueue(new Job("b"));
    const next = await storage.continueWith(a, new Job("next"), { on: "any" });
    const after = await storage.continueWith(b, new Job("after"), { on: "any" });
    const [ra] = (await claim(storage, clock)).filter((r) => r.id === a);
    const res = await storage.driver.complete([outcome(ra!, JobState.Failed)], clock.now());
    expect(res).toEqual([{ id: a, status: "applied", dependents: true }]);
    const [t] = await storage.driver.transition({
      ids: [b],
      from: [JobState.Processing, JobState.Enqueued],
      to: JobState.Deleted,
      reason: "test",
      now: clock.now(),
    });
    expect(t).toMatchObject({ applied: true, dependents: true });
    expect((await storage.stats()).perMinute.reduce((n, m) => n + m.failed, 0)).toBe(1);
    await storage.settleDependents([a, b]);
    expect((await storage.driver.get([next, after])).map((r) => r?.state)).toEqual([JobState.Enqueued, JobState.Enqueued]);
    expect(await edgeKeys(storage)).toEqual([]);
  });

  it("transition to failed records the error and counts in the failed throughput once", async () => {
    const { storage, clock } = await open();
    const dep = await storage.enqueue(new Job("dep"));
    const waiter = await storage.continueWith(dep, new Job("w"));
    const error = { name: "DependencyError", message: "dependency x failed", code: "DEPENDENCY" };
    const [t] = await storage.driver.transition({
      ids: [waiter],
      from: [JobState.Awaiting],
      to: JobState.Failed,
      reason: "dependency failed",
      error,
      now: clock.now(),
    });
    expect(t!.applied).toBe(true);
    expect(t!.dependents).toBeUndefined();
    expect(t!.record).toMatchObject({ state: JobState.Failed, error, finishedAt: clock.now() });
    expect(await storage.driver.dependents([dep])).toEqual([]);
    const st = await storage.stats();
    expect(st.states.failed).toBe(1);
    expect(st.perMinute.at(-1)!.failed).toBe(1);
    expect(st.perHour.at(-1)!.failed).toBe(1);
  });
});
