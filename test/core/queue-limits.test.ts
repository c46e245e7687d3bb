/** Limits for whole queues (StorageOptions.queueLimits): applied at enqueue through the key `queue:<name>`, held by the store like a job's own. */
import { describe, expect, it } from "vitest";
import { ConfigError, Job, JobState, ManualClock, Storage, memoryBackend, type QueueLimits } from "../../src/index.js";
import { parseQueueLimits } from "../../src/core/config/env.js";
import { loadEnvConfig } from "../../src/adapters/runtime/node/env.js";
import { storageFromEnv } from "../../src/adapters/runtime/node/storage-from-env.js";

const T0 = Date.UTC(2030, 0, 1);
const claim = (storage: Storage, clock: ManualClock, queues = ["mail"]) =>
  storage.driver.claim({ queues, limit: 100, owner: "w", leaseMs: 30_000, now: clock.now() });

describe("queue limits", () => {
  it("a queue's concurrency holds every job enqueued into it, flows and continuations included; a job's own key wins", async () => {
    const clock = new ManualClock(T0);
    const storage = new Storage(memoryBackend(), { clock, queueLimits: { mail: { concurrency: 2 } } });
    const plain = await storage.enqueue([1, 2, 3].map((n) => new Job("send", [n], { queue: "mail" })));
    const flow = await storage.enqueueFlow({ job: new Job("digest", [], { queue: "mail" }), children: [{ job: new Job("send", [4], { queue: "mail" }) }] });
    const own = await storage.enqueue(new Job("send", [5], { queue: "mail", concurrency: { key: "vip", limit: 10 } }));
    const other = await storage.enqueue(new Job("send", [6], { queue: "other" }));
    expect((await storage.get(plain[0]!))!.concurrency).toEqual({ key: "queue:mail", limit: 2 });
    expect((await storage.get(flow.children[0]!.id))!.concurrency).toEqual({ key: "queue:mail", limit: 2 });
    expect((await storage.get(own))!.concurrency).toEqual({ key: "vip", limit: 10 });
    expect((await storage.get(other))!.concurrency).toBeUndefined();
    const got = await claim(storage, clock, ["mail", "other"]);
    // Two of the queue's key, the job with its own key, and the other queue's job.
    expect(got.filter((r) => r.concurrencyKey === "queue:mail").length).toBe(2);
    expect(got.map((r) => r.id)).toEqual(expect.arrayContaining([own, other]));
    expect(got.length).toBe(4);
    expect(await claim(storage, clock)).toEqual([]);
  });

  it("a queue's rate: at most `limit` starts per window, the rest scheduled for later windows", async () => {
    const clock = new ManualClock(T0);
    const storage = new Storage(memoryBackend(), { clock, queueLimits: { mail: { rateLimit: { limit: 3, interval: 1000 } } } });
    const ids = await storage.enqueue(Array.from({ length: 7 }, (_, n) => new Job("send", [n], { queue: "mail" })));
    expect((await claim(storage, clock)).length).toBe(3);
    const waiting = await storage.getMany(ids);
    expect(waiting.filter((j) => j!.state === JobState.Scheduled).length).toBe(4);
    clock.advance(1000);
    expect((await claim(storage, clock)).length).toBe(3);
  });

  it("bad limits are a ConfigError when the Storage is made", () => {
    const bad: Array<Record<string, QueueLimits>> = [
      { mail: { concurrency: 0 } },
      { mail: { rateLimit: { limit: 1, interval: 1 } } },
      { "": { concurrency: 1 } },
      { mail: { concurrency: 1.5 } },
    ];
    for (const queueLimits of bad) {
      expect(() => new Storage(memoryBackend(), { queueLimits })).toThrow(ConfigError);
    }
  });
});

describe("QML_QUEUE_LIMITS", () => {
  it("parses queue:concurrency=N,rate=N/ms entries; a bad form is a ConfigError naming the variable", () => {
    expect(parseQueueLimits("mail:concurrency=5,rate=100/60000; reports:concurrency=2", "QML_QUEUE_LIMITS")).toEqual({
      mail: { concurrency: 5, rateLimit: { limit: 100, interval: 60_000 } },
      reports: { concurrency: 2 },
    });
    for (const bad of ["mail", ":concurrency=1", "mail:concurrency=x", "mail:rate=5", "mail:speed=3", "mail:concurrency=1;mail:concurrency=2"]) {
      expect(() => parseQueueLimits(bad, "QML_QUEUE_LIMITS")).toThrow(/QML_QUEUE_LIMITS is invalid/);
    }
  });

  it("npm start's storage holds the queue to its limit; a limit of 0 stops the start with a ConfigError", async () => {
    const cfg = loadEnvConfig({ QML_STORAGE: "memory", QML_QUEUE_LIMITS: "mail:concurrency=1" });
    const storage = await storageFromEnv(cfg);
    await storage.enqueue([new Job("send", [1], { queue: "mail" }), new Job("send", [2], { queue: "mail" })]);
    const got = await storage.driver.claim({ queues: ["mail"], limit: 10, owner: "w", leaseMs: 30_000, now: Date.now() });
    expect(got.map((r) => r.concurrencyKey)).toEqual(["queue:mail"]);
    await expect(storageFromEnv(loadEnvConfig({ QML_STORAGE: "memory", QML_QUEUE_LIMITS: "mail:concurrency=0" }))).rejects.toThrow(ConfigError);
  });
});
