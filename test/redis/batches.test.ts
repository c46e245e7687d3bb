/**
 * Paths the conformance suite does not reach: inserts split over several
 * script calls (by count and by bytes), and list pages cut short by the
 * scan budget, with a cursor whose job disappears between pages.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { Job, JobState, ManualClock } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("batches");

describeWithService("redis", await serviceUp("redis"), "redis: large batches and long lists", () => {
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
    async function open(): Promise<{ storage: StorageOnRedis; clock: ManualClock }> {
      const config = driver === "tcp" ? new RedisConfig(REDIS_URL) : new RedisConfig(gateway.url).withToken(gateway.token);
      const clock = new ManualClock();
      const storage = redisStorage(config.withKeyPrefix(keys.next()), { clock });
      opened.push(storage);
      await storage.migrate();
      return { storage, clock };
    }

    it(`${driver}: one enqueue of 1,200 jobs (three script calls) keeps order and dedupes across calls`, async () => {
      const { storage, clock } = await open();
      const jobs = Array.from({ length: 1200 }, (_, i) => new Job("bulk", [i], i === 3 || i === 1100 ? { uniqueKey: "same" } : {}));
      const ids = await storage.enqueue(jobs);
      expect(ids).toHaveLength(1200);
      expect(ids[1100]).toBe(ids[3]);
      expect(new Set(ids).size).toBe(1199);
      expect((await storage.stats()).states.enqueued).toBe(1199);
      const claimed = await storage.driver.claim({ queues: ["default"], limit: 1200, owner: "w", leaseMs: 1000, now: clock.now() });
      expect(claimed.map((r) => r.args[0])).toEqual([...Array(1200).keys()].filter((i) => i !== 1100));
    });

    it(`${driver}: big jobs are split by bytes, not only by count`, async () => {
      const { storage } = await open();
      const big = "x".repeat(400 * 1024);
      const ids = await storage.enqueue([new Job("big", [big, 1]), new Job("big", [big, 2]), new Job("big", [big, 3]), new Job("small", [4])]);
      expect(ids).toHaveLength(4);
      const got = await Promise.all(ids.map((id) => storage.get(id)));
      expect(got.map((j) => j!.arguments.at(-1))).toEqual([1, 2, 3, 4]);
      expect((got[0]!.arguments[0] as string).length).toBe(big.length);
    });
  }

  it("a filter that matches few of many jobs pages through short pages to every match, once, in order", async () => {
    const storage = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()), { clock: new ManualClock() });
    opened.push(storage);
    await storage.migrate();
    // 12,000 jobs in the same millisecond: every cursor sits in one tie group.
    const jobs = Array.from({ length: 12_000 }, (_, i) => new Job(i % 4000 === 3999 ? "needle" : "hay", [i]));
    const ids = await storage.enqueue(jobs);
    const needles = ids.filter((_, i) => i % 4000 === 3999).sort();
    for (const order of ["asc", "desc"] as const) {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await storage.list({ name: "needle" }, { limit: 2, order, ...(cursor ? { cursor } : {}) });
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((j) => j.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 20);
      expect(seen).toEqual(order === "asc" ? needles : [...needles].reverse());
      // 3 matches fit in 2 pages of 2; 12,000 entries at ~5,000 looked at per call take at least 3.
      expect(pages).toBeGreaterThanOrEqual(3);
    }

    // The job under the cursor goes away between pages: the next page still continues after it.
    const page1 = await storage.list({ state: JobState.Enqueued }, { limit: 5, order: "asc" });
    const last = page1.items.at(-1)!.id;
    expect(await storage.delete(last)).toBe(true);
    await storage.driver.purge([JobState.Deleted], Number.MAX_SAFE_INTEGER, 10);
    expect(await storage.get(last)).toBeNull();
    const page2 = await storage.list({ state: JobState.Enqueued }, { limit: 5, order: "asc", cursor: page1.nextCursor! });
    const all = [...ids].sort();
    const at = all.indexOf(last);
    expect(page2.items.map((j) => j.id)).toEqual(all.slice(at + 1, at + 6));
  });
});
