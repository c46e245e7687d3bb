/**
 * Unique keys on Redis, where the conformance suite does not reach: the
 * fields a debounce replaces (and removes) on the record it keeps, and
 * inserts resent as the HTTP client resends a request whose reply was lost
 * (the script runs twice with the same arguments): the resend answers the
 * same ids and changes nothing the first run did, even when the job it
 * debounced has started in between.
 */
import { afterAll, beforeEach, expect, it } from "vitest";
import { Job, JobState, ManualClock } from "../../src/index.js";
import { RedisConfig, type RedisDriver, type RedisReply } from "../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("dedup");

describeWithService("redis", await serviceUp("redis"), "redis: unique keys, debounce and resent inserts", () => {
  const opened: StorageOnRedis[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  /** Ids at the even places of insert.lua's reply. */
  const idsOf = (reply: RedisReply) => (reply as RedisReply[]).filter((_, i) => i % 2 === 0);

  /**
   * A storage whose insert script calls each run twice, as a resend of a
   * request that was applied but not answered: `between` runs between the
   * two, and `answers` keeps the ids each run gave.
   */
  function resendingStorage(clock: ManualClock) {
    const inner = new IoredisDriver({ url: REDIS_URL });
    const state = { between: async (): Promise<unknown> => undefined, answers: [] as Array<[RedisReply[], RedisReply[]]> };
    const driver: RedisDriver = {
      kind: inner.kind,
      async evalScript(script, k, args) {
        if (script.name !== "insert") return inner.evalScript(script, k, args);
        const first = await inner.evalScript(script, k, args);
        await state.between();
        const again = await inner.evalScript(script, k, args);
        state.answers.push([idsOf(first), idsOf(again)]);
        return again;
      },
      command: (args) => inner.command(args),
      loadScripts: (scripts) => inner.loadScripts(scripts),
      close: () => inner.close(),
    };
    const storage = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()), { clock, driver });
    opened.push(storage);
    return { storage, state };
  }

  let clock: ManualClock;
  beforeEach(() => {
    clock = new ManualClock();
  });
  const claim = (storage: StorageOnRedis) => storage.driver.claim({ queues: ["default"], limit: 100, owner: "w", leaseMs: 30_000, now: clock.now() });
  const debounced = (history: Array<{ reason?: string }>) => history.filter((h) => h.reason === "debounced").length;

  it("a debounce replaces args, metadata, runAt and uniqueUntil on the job it keeps, and removes those the newer enqueue has not", async () => {
    const storage = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()), { clock });
    opened.push(storage);
    const t0 = clock.now();
    const id = await storage.enqueue(new Job("d", [1], { uniqueKey: "k", uniqueMode: "debounce", uniqueTtl: 60_000, metadata: { a: 1 }, delay: 500 }));
    const [before] = await storage.driver.get([id]);
    expect(before).toMatchObject({ uniqueKey: "k", uniqueUntil: t0 + 60_000, metadata: { a: 1 }, state: JobState.Scheduled });
    clock.advance(100);
    expect(await storage.enqueue(new Job("d", [2], { uniqueKey: "k", uniqueMode: "debounce" }))).toBe(id);
    const [after] = await storage.driver.get([id]);
    expect(after).toMatchObject({ args: [2], state: JobState.Enqueued, runAt: clock.now(), updatedAt: clock.now(), uniqueKey: "k", createdAt: t0 });
    expect(after!.metadata).toBeUndefined();
    expect(after!.uniqueUntil).toBeUndefined();
    expect(after!.history.at(-1)).toEqual({ state: JobState.Enqueued, at: clock.now(), reason: "debounced" });
    expect((await storage.stats()).states).toMatchObject({ scheduled: 0, enqueued: 1 });
    expect((await claim(storage)).map((r) => r.id)).toEqual([id]);
  });

  it("a job made and debounced within one call keeps one index entry, in the index of its last state", async () => {
    const storage = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()), { clock });
    opened.push(storage);
    const redis = await storage.driver.connection();
    const base = storage.driver.base;
    const debounce = { uniqueKey: "b", uniqueMode: "debounce" } as const;
    const ids = await storage.enqueue([new Job("d", [1], debounce), new Job("d", [2], { ...debounce, delay: 1000 }), new Job("d", [3], debounce)]);
    expect(new Set(ids).size).toBe(1);
    expect(await redis.command(["ZCARD", `${base}ready:default`])).toBe(1);
    expect(await redis.command(["ZCARD", `${base}delayed`])).toBe(0);
    expect((await storage.stats()).states).toMatchObject({ enqueued: 1, scheduled: 0 });
    expect((await claim(storage)).map((r) => r.args)).toEqual([[3]]);
  });

  it("a resent insert answers the same ids: new jobs, a debounced job (once), a batch (the last wins)", async () => {
    const { storage, state } = resendingStorage(clock);
    await storage.migrate();
    const id = await storage.enqueue(new Job("d", [1], { uniqueKey: "k", uniqueMode: "debounce", delay: 1000 }));
    expect(await storage.enqueue(new Job("d", [2], { uniqueKey: "k", uniqueMode: "debounce", delay: 1000 }))).toBe(id);
    let job = (await storage.get(id))!;
    expect(job.arguments).toEqual([2]);
    expect(debounced(job.history)).toBe(1);

    const ids = await storage.enqueue([3, 4, 5].map((n) => new Job("d", [n], { uniqueKey: "k", uniqueMode: "debounce", delay: 1000 })));
    expect(ids).toEqual([id, id, id]);
    job = (await storage.get(id))!;
    expect(job.arguments).toEqual([5]);
    expect(debounced(job.history)).toBe(4);
    expect((await storage.stats()).total).toBe(1);
    for (const [first, again] of state.answers) expect(again).toEqual(first);
  });

  it("a resent debounce whose job started in between answers that job, and makes no second one", async () => {
    const { storage, state } = resendingStorage(clock);
    await storage.migrate();
    const id = await storage.enqueue(new Job("d", [1], { uniqueKey: "k", uniqueMode: "debounce", delay: 1000 }));
    state.between = async () => {
      clock.advance(1000);
      return claim(storage);
    };
    expect(await storage.enqueue(new Job("d", [2], { uniqueKey: "k", uniqueMode: "debounce", delay: 1000 }))).toBe(id);
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Processing);
    expect(job.arguments).toEqual([2]);
    expect((await storage.stats()).total).toBe(1);
    for (const [first, again] of state.answers) expect(again).toEqual(first);
  });

  it("a resent insert that took a key over (its holder running, or past its uniqueTtl) answers the job it made", async () => {
    const { storage, state } = resendingStorage(clock);
    await storage.migrate();
    const running = await storage.enqueue(new Job("d", [1], { uniqueKey: "k", uniqueMode: "debounce" }));
    await claim(storage);
    const next = await storage.enqueue(new Job("d", [2], { uniqueKey: "k", uniqueMode: "debounce" }));
    expect(next).not.toBe(running);

    const windowed = await storage.enqueue(new Job("t", [1], { uniqueKey: "t", uniqueTtl: 1000 }));
    clock.advance(1000);
    const fresh = await storage.enqueue(new Job("t", [2], { uniqueKey: "t", uniqueTtl: 1000 }));
    expect(fresh).not.toBe(windowed);
    const [old, made] = await storage.driver.get([windowed, fresh]);
    expect(old!.uniqueKey).toBeUndefined();
    expect(old!.uniqueUntil).toBeUndefined();
    expect(made).toMatchObject({ uniqueKey: "t", uniqueUntil: clock.now() + 1000 });
    expect((await storage.stats()).total).toBe(4);
    for (const [first, again] of state.answers) expect(again).toEqual(first);
  });
});
