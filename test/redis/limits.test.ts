/**
 * Concurrency and rate limits on Redis, where the conformance suite does not
 * reach: claims racing from several processes (one Storage and connection
 * each) never run more jobs of a key than its limit, and the key's count in
 * `conc` equals the processing jobs with the key at every moment and ends
 * at 0 (no drift through releases, retries, failures, deletes and lease
 * expiries); resent claims and completions count nothing twice; parked
 * jobs that went stale are passed over; a rate key's count is forgotten
 * once no clock can still claim in its windows; a claimed limited job
 * reads back as get reads it.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, type JobRecord } from "../../src/index.js";
import { RATE_COUNT_KEEP_MS, type OutcomeState } from "../../src/core/driver.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { decodeClaimed } from "../../src/adapters/storage/redis/codec.js";
import * as scripts from "../../src/adapters/storage/redis/scripts.generated.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, redisStoragesFor, type StorageOnRedis } from "./helpers.js";

const LEASE = 30_000;
const KEY = "tenant:1";
const LIMIT = 5;

/** In one script, so both are read at the same moment: processing jobs with the key, and the key's count. */
const AUDIT = `
local ids = redis.call("ZRANGE", KEYS[1] .. "processing", 0, -1)
local n = 0
for _, id in ipairs(ids) do
  if redis.call("HGET", KEYS[1] .. "job:" .. id, "concurrencyKey") == ARGV[1] then n = n + 1 end
end
return { n, tonumber(redis.call("HGET", KEYS[1] .. "conc", ARGV[1])) or 0 }`;

const claim = (storage: StorageOnRedis, clock: ManualClock, limit = 100, owner = "w") =>
  storage.driver.claim({ queues: ["default"], limit, owner, leaseMs: LEASE, now: clock.now() });

const done = (storage: StorageOnRedis, clock: ManualClock, r: JobRecord, state: OutcomeState = JobState.Succeeded, runAt?: number) =>
  storage.driver.complete([{ id: r.id, token: r.leaseToken, state, reason: state, worker: "w", ...(runAt !== undefined ? { runAt } : {}) }], clock.now());

describeWithService("redis", await serviceUp("redis"), "redis: concurrency and rate limits", () => {
  const keys = prefixes("limits");
  const open = redisStoragesFor(keys);
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

  async function audit(storage: StorageOnRedis, key = KEY): Promise<{ processing: number; count: number }> {
    const [processing, count] = (await admin.eval(AUDIT, 1, storage.driver.base, key)) as [number, number];
    return { processing, count };
  }

  /** Several storages over one key prefix, each with its own connection. */
  async function processes(n: number, clock: ManualClock): Promise<StorageOnRedis[]> {
    const prefix = keys.next();
    const out: StorageOnRedis[] = [];
    for (let i = 0; i < n; i++) {
      const s = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix), { clock });
      await s.migrate();
      out.push(s);
    }
    opened.push(...out);
    return out;
  }

  it("2,000 claims racing from 4 processes never run more than the limit; the count ends at 0 after releases, retries, deletes and lease expiries", async () => {
    const clock = new ManualClock();
    const storages = await processes(4, clock);
    const s0 = storages[0]!;
    const limited = { concurrency: { key: KEY, limit: LIMIT }, maxAttempts: 1000 };
    await s0.enqueue(Array.from({ length: 600 }, (_, i) => new Job("keyed", [i], { ...limited, priority: i % 3 })));
    await s0.enqueue(Array.from({ length: 100 }, (_, i) => new Job("free", [i])));

    let claims = 0;
    let maxSeen = 0;
    let expiries = 0;
    let rng = 42;
    const random = () => (rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

    const check = async (storage: StorageOnRedis) => {
      const { processing, count } = await audit(storage);
      expect(count).toBe(processing);
      expect(count).toBeLessThanOrEqual(LIMIT);
      const listed = await storage.list({ state: JobState.Processing }, { limit: 500 });
      const withKey = listed.items.filter((j) => j.concurrency?.key === KEY).length;
      expect(withKey).toBeLessThanOrEqual(LIMIT);
      maxSeen = Math.max(maxSeen, count, withKey);
    };

    const loop = async (storage: StorageOnRedis, owner: string) => {
      while (claims < 2000) {
        claims++;
        if (claims % 100 === 0) {
          // Every lease held now runs out: held jobs are reclaimed, and the holders' completions are lost.
          clock.advance(LEASE + 1);
          expiries += await storage.driver.reclaimExpired(clock.now(), 1000);
          await check(storage);
        }
        const got = await claim(storage, clock, 2, owner);
        await check(storage);
        for (const r of got) {
          const p = random();
          if (p < 0.25) await done(storage, clock, r);
          else if (p < 0.5) await done(storage, clock, r, JobState.Enqueued);
          else if (p < 0.7) await done(storage, clock, r, JobState.AwaitingRetry, clock.now());
          else if (p < 0.75) await done(storage, clock, r, JobState.Failed);
          else if (p < 0.8) await storage.delete(r.id);
          // else: held, until its lease runs out
        }
        await check(storage);
      }
    };
    await Promise.all(storages.flatMap((s, i) => [loop(s, `p${i}a`), loop(s, `p${i}b`)]));
    expect(maxSeen).toBe(LIMIT);
    expect(expiries).toBeGreaterThan(0);

    // Drain: whatever is left runs to success, held leases expire once more.
    clock.advance(LEASE + 1);
    await s0.driver.reclaimExpired(clock.now(), 10_000);
    for (let round = 0; round < 10_000; round++) {
      const got = await claim(s0, clock, 50);
      await check(s0);
      if (got.length === 0) {
        const st = (await s0.stats()).states;
        if (st.enqueued + st.scheduled + st.awaiting_retry + st.processing === 0) break;
        clock.advance(1000);
        continue;
      }
      for (const r of got) await done(s0, clock, r);
    }
    const st = (await s0.stats()).states;
    expect(st.enqueued + st.scheduled + st.awaiting_retry + st.processing).toBe(0);
    expect(await audit(s0)).toEqual({ processing: 0, count: 0 });
    const base = s0.driver.base;
    expect(await admin.hlen(`${base}conc`)).toBe(0);
    expect(await admin.exists(`${base}conc:parked:${KEY}`)).toBe(0);
  });

  it("a resent claim or completion counts nothing twice", async () => {
    const clock = new ManualClock();
    const [storage] = await processes(1, clock);
    const s = storage!;
    await s.enqueue([1, 2, 3, 4].map((n) => new Job("c", [n], { concurrency: { key: KEY, limit: 2 } })));
    const c = s.driver.config;
    const redis = await s.driver.connection();
    const args = [
      String(clock.now()),
      String(c.maxFinishedJobs),
      String(c.finishedJobTtlMs),
      String(c.pruneBatch),
      "10",
      "30000",
      "w",
      '"w"',
      "1000",
      "claim-1",
      "1",
      "default",
    ];
    const first = decodeClaimed(await redis.evalScript(scripts.claim, [s.driver.base], args));
    const again = decodeClaimed(await redis.evalScript(scripts.claim, [s.driver.base], args));
    expect(again.map((r) => r.id)).toEqual(first.map((r) => r.id));
    expect(first).toHaveLength(2);
    expect(await audit(s)).toEqual({ processing: 2, count: 2 });
    // The same completion twice (a resent request): one slot freed, one parked job back.
    expect(await done(s, clock, first[0]!)).toEqual([{ id: first[0]!.id, status: "applied" }]);
    expect(await done(s, clock, first[0]!)).toEqual([{ id: first[0]!.id, status: "applied" }]);
    expect(await audit(s)).toEqual({ processing: 1, count: 1 });
    expect(await claim(s, clock)).toHaveLength(1);
    expect(await claim(s, clock)).toHaveLength(0);
    expect(await audit(s)).toEqual({ processing: 2, count: 2 });
  });

  it("parked jobs that were deleted or debounced are passed over; a hard-deleted running job frees its slot", async () => {
    const clock = new ManualClock();
    const [storage] = await processes(1, clock);
    const s = storage!;
    const limited = (n: number, extra = {}) => new Job("c", [n], { concurrency: { key: KEY, limit: 1 }, ...extra });
    const ids = (await s.enqueue([limited(1), limited(2), limited(3, { uniqueKey: "u", uniqueMode: "debounce" }), limited(4)])) as string[];
    const [running] = await claim(s, clock);
    expect(running!.id).toBe(ids[0]);
    expect(await claim(s, clock)).toEqual([]); // 2, 3, 4 parked
    expect(await admin.zcard(`${s.driver.base}conc:parked:${KEY}`)).toBe(3);
    // Deleting a waiting job of the key sends one parked job back (it may have been the one a
    // freed slot sent back): 2's own member is stale by then and dropped, 3 goes back.
    await s.delete(ids[1]!);
    expect(await admin.zcard(`${s.driver.base}conc:parked:${KEY}`)).toBe(1);
    // The debounce places job 3 anew (a new member).
    await s.enqueue(limited(30, { uniqueKey: "u", uniqueMode: "debounce" }));
    expect(await claim(s, clock)).toEqual([]); // 3 parked again, under its new member
    expect(await admin.zcard(`${s.driver.base}conc:parked:${KEY}`)).toBe(2);
    await done(s, clock, running!);
    // 4 (ahead of 3, whose debounce placed it anew) is back.
    expect(await admin.zcard(`${s.driver.base}conc:parked:${KEY}`)).toBe(1);
    expect((await claim(s, clock)).map((r) => r.id)).toEqual([ids[3]]);
    // A purge of running jobs (the driver allows it) frees the slot too.
    expect(await s.driver.purge([JobState.Processing], clock.now() + 1, 100)).toBe(1);
    expect(await audit(s)).toEqual({ processing: 0, count: 0 });
    const [next] = await claim(s, clock);
    expect(next).toMatchObject({ id: ids[2], args: [30] });
    await done(s, clock, next!);
    expect(await admin.hlen(`${s.driver.base}conc`)).toBe(0);
    expect(await admin.exists(`${s.driver.base}conc:parked:${KEY}`)).toBe(0);
  });

  it("rate: claims racing from 4 processes start at most the limit per window, and the deferred history names the start", async () => {
    const clock = new ManualClock();
    const storages = await processes(4, clock);
    const rate = { rateLimit: { key: "api", limit: 7, interval: 1000 } };
    const ids = (await storages[0]!.enqueue(Array.from({ length: 100 }, (_, i) => new Job("r", [i], rate)))) as string[];
    const startsPerWindow = new Map<number, number>();
    for (let step = 0; step < 40; step++) {
      const got = (await Promise.all(storages.flatMap((s) => [claim(s, clock, 3), claim(s, clock, 3)]))).flat();
      const w = Math.floor(clock.now() / 1000);
      startsPerWindow.set(w, (startsPerWindow.get(w) ?? 0) + got.length);
      for (const r of got) {
        expect(r.rateWindow).toBeUndefined();
        await done(storages[0]!, clock, r);
      }
      clock.advance(250);
    }
    expect([...startsPerWindow.values()].every((n) => n <= 7)).toBe(true);
    expect([...startsPerWindow.values()].reduce((a, b) => a + b, 0)).toBe(70);
    const jobs = await storages[0]!.getMany(ids);
    const waiting = jobs.filter((j) => j!.state === JobState.Scheduled);
    expect(waiting.length).toBe(30);
    for (const j of waiting) {
      const at = j!.history.findLast((h) => h.reason?.startsWith("rate limited"));
      expect(at!.reason).toBe(`rate limited (api): starts at ${j!.runAt!.toISOString()}`);
    }
  });

  it("rate: a key's count is forgotten by the reclaim beat RATE_COUNT_KEEP_MS after its last window, not before", async () => {
    const clock = new ManualClock();
    const [s] = await processes(1, clock);
    const base = s!.driver.base;
    await s!.enqueue(new Job("r", [], { rateLimit: { key: "api", limit: 5, interval: 1000 } }));
    expect((await claim(s!, clock)).length).toBe(1);
    const windowEnd = (Math.floor(clock.now() / 1000) + 1) * 1000;
    await s!.driver.reclaimExpired(windowEnd + RATE_COUNT_KEEP_MS - 1, 10);
    expect(await admin.hkeys(`${base}rate`)).toEqual(["api"]);
    expect(await admin.zrange(`${base}rate:forget`, "0", "-1", "WITHSCORES")).toEqual(["api", String(windowEnd + RATE_COUNT_KEEP_MS)]);
    await s!.driver.reclaimExpired(windowEnd + RATE_COUNT_KEEP_MS, 10);
    expect(await admin.exists(`${base}rate`, `${base}rate:forget`)).toBe(0);
  });

  for (const driver of ["tcp", "upstash"] as const) {
    it(`${driver}: a claimed limited job, deferred by its rate first, reads back as get reads it`, async () => {
      const clock = new ManualClock();
      const storage = await open(driver, clock);
      opened.push(storage);
      const options = { concurrency: { key: 'c "k"/\n', limit: 3 }, rateLimit: { key: "r/ü", limit: 1, interval: 60_000 } };
      const [a, b] = (await storage.enqueue([new Job("x", [1], options), new Job("x", [2], options)])) as string[];
      const first = await claim(storage, clock);
      expect(first.map((r) => r.id)).toEqual([a]);
      expect([first[0]]).toStrictEqual(await storage.driver.get([a!]));
      const deferred = (await storage.driver.get([b!]))[0]!;
      expect(deferred).toMatchObject({ state: JobState.Scheduled, rateWindow: Math.floor(clock.now() / 60_000) + 1 });
      clock.set(deferred.runAt);
      const second = await claim(storage, clock);
      expect(second.map((r) => r.id)).toEqual([b]);
      expect(second[0]!.rateWindow).toBeUndefined();
      expect(second[0]).toMatchObject({ concurrencyKey: 'c "k"/\n', concurrencyLimit: 3, rateKey: "r/ü", rateLimit: 1, rateInterval: 60_000 });
      expect([second[0]]).toStrictEqual(await storage.driver.get([b!]));
    });
  }
});
