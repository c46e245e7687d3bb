/**
 * claim.lua answers with a JSON text per job built from the fields it read and
 * the values it wrote, not with each job's hash: every claimed record must be
 * what get (HGETALL + decodeRecord) reads back for the same job, on
 * both drivers, for the first answer and for a retried claim's answer.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, StorageUnavailableError, type JobRecord } from "../../src/index.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { decodeClaimed } from "../../src/adapters/storage/redis/codec.js";
import * as scripts from "../../src/adapters/storage/redis/scripts.generated.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { prefixes, redisStoragesFor, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("claimreply");

describeWithService("redis", await serviceUp("redis"), "redis: the claim reply", () => {
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

  const claim = (storage: StorageOnRedis, clock: ManualClock, queues = ["default"], limit = 100) =>
    storage.driver.claim({ queues, limit, owner: 'w "1"\n', leaseMs: 30_000, now: clock.now() });

  async function expectAsStored(storage: StorageOnRedis, claimed: JobRecord[]): Promise<void> {
    expect(claimed.length).toBeGreaterThan(0);
    for (const r of claimed) {
      expect(r.state).toBe(JobState.Processing);
      expect([r]).toStrictEqual(await storage.driver.get([r.id]));
    }
  }

  for (const driver of ["tcp", "upstash"] as const) {
    it(`${driver}: every field a job can carry reads back as get reads it`, async () => {
      const clock = new ManualClock();
      const storage = await open(driver, clock);
      opened.push(storage);
      const plain = new Job("plain", []);
      const full = new Job("mail/send.v2", [{ big: 1e21, small: 0.1, neg: -0, s: ']]\n"' }, null, [1, 2]], {
        queue: "q-1",
        priority: -7,
        maxAttempts: 5,
        retry: { kind: "fixed", delayMs: 10 },
        uniqueKey: 'u "k"\n{x}',
        uniqueTtl: 60_000,
        timeout: 1500,
        metadata: { tenant: "t", n: 1.5, nested: { a: [true, null] } },
      });
      full.id = 'id "ü" \\ {x}';
      await storage.enqueue([plain, full]);
      await expectAsStored(storage, await claim(storage, clock, ["default", "q-1"]));
    });

    it(`${driver}: a retried job carries its error and progress, and a long history`, async () => {
      const clock = new ManualClock();
      const storage = await open(driver, clock);
      opened.push(storage);
      const id = (await storage.enqueue(new Job("retry", [1], { maxAttempts: 100 }))) as string;
      // Releases (enqueued) give the attempt back, so the history grows past its limit without the job failing.
      for (let i = 0; i < HISTORY_LIMIT; i++) {
        const [r] = await claim(storage, clock);
        await storage.driver.complete([{ id, token: r!.leaseToken, state: JobState.Enqueued, reason: `release ${i}`, worker: "w" }], clock.now());
        clock.advance(1);
      }
      const [r] = await claim(storage, clock);
      await storage.driver.setProgress({ id, token: r!.leaseToken }, { pct: 50, note: "half\n" }, clock.now());
      const error = { name: "E", message: 'bad "thing"\n', stack: "at x" };
      await storage.driver.complete(
        [{ id, token: r!.leaseToken, state: JobState.AwaitingRetry, runAt: clock.now(), error, reason: "retry", worker: "w" }],
        clock.now(),
      );
      clock.advance(1);
      const claimed = await claim(storage, clock);
      await expectAsStored(storage, claimed);
      expect(claimed[0]!.history).toHaveLength(HISTORY_LIMIT);
      expect(claimed[0]!.error).toEqual(error);
      expect(claimed[0]!.progress).toEqual({ pct: 50, note: "half\n" });
    });

    it(`${driver}: result, finishedAt and a null progress left on the hash are sent too`, async () => {
      // No transition leaves these on an enqueued job today (nor an empty history); the reply must still carry what the hash holds.
      const clock = new ManualClock();
      const storage = await open(driver, clock);
      opened.push(storage);
      const id = (await storage.enqueue(new Job("odd", []))) as string;
      await admin.hset(`${storage.driver.base}job:${id}`, "result", "null", "finishedAt", "123", "progress", "null", "history", "", "hn", "0");
      const claimed = await claim(storage, clock);
      await expectAsStored(storage, claimed);
      expect(claimed[0]).toMatchObject({ result: null, progress: null, finishedAt: 123 });
    });

    it(`${driver}: a retried claim (same claim id) answers in the same shape, with the lease as it is now`, async () => {
      const clock = new ManualClock();
      const storage = await open(driver, clock);
      opened.push(storage);
      await storage.enqueue([new Job("a", [1], { uniqueKey: "one" }), new Job("b", [2], { metadata: { m: 1 } }), new Job("c", [3])]);
      const c = storage.driver.config;
      const redis = await storage.driver.connection();
      const args = [
        String(clock.now()),
        String(c.maxFinishedJobs),
        String(c.finishedJobTtlMs),
        String(c.pruneBatch),
        "2",
        "30000",
        "w",
        '"w"',
        "1000",
        "claim-1",
        "1",
        "default",
      ];
      const first = decodeClaimed(await redis.evalScript(scripts.claim, [storage.driver.base], args));
      expect(first).toHaveLength(2);
      await expectAsStored(storage, first);
      clock.advance(10);
      await storage.driver.extendLeases([{ id: first[0]!.id, token: first[0]!.leaseToken }], 60_000, clock.now());
      const again = decodeClaimed(await redis.evalScript(scripts.claim, [storage.driver.base], args));
      expect(again.map((r) => r.id)).toEqual(first.map((r) => r.id));
      await expectAsStored(storage, again);
      expect(again[0]!.leaseUntil).toBe(clock.now() + 60_000);
      expect((await storage.stats()).states).toMatchObject({ processing: 2, enqueued: 1 });
    });
  }

  it("an empty claim is an empty array, and a malformed reply is a StorageUnavailableError", () => {
    expect(decodeClaimed([])).toEqual([]);
    expect(() => decodeClaimed("[]")).toThrow(StorageUnavailableError);
    expect(() => decodeClaimed(["[0"])).toThrow(StorageUnavailableError);
    expect(() => decodeClaimed(["{}"])).toThrow(StorageUnavailableError);
    expect(() => decodeClaimed(["[[0"])).toThrow(StorageUnavailableError);
    expect(() => decodeClaimed("{}")).toThrow(StorageUnavailableError);
    expect(() => decodeClaimed(["[0,null]"])).toThrow(StorageUnavailableError);
    const row = [0, "id", "n", [], "q", 0, 1, 3, 1, 1, 1, 1, [], "w", 2];
    expect(decodeClaimed([JSON.stringify(row)])[0]!.id).toBe("id");
    // Rows already parsed (an Upstash client with automaticDeserialization on).
    expect(decodeClaimed([row] as never)[0]!.id).toBe("id");
    expect(decodeClaimed([JSON.stringify(row), row] as never).map((r) => r.id)).toEqual(["id", "id"]);
    expect(() => decodeClaimed([JSON.stringify(row.map((v, i) => (i === 5 ? null : v)))])).toThrow(/priority/);
  });
});
