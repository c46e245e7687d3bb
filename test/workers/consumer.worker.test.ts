/**
 * The Queue consumer's contract, message by message, on every store: a
 * wake-up is acknowledged only when the store shows its job finished or
 * gone (or a fresh wake-up took over), and retried otherwise, so no job is
 * ever left without someone to run it and no message circulates forever.
 */
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { JobState } from "../../src/core/job.js";
import { RedisConfig } from "../../src/adapters/storage/redis/config.js";
import { UpstashDriver } from "../../src/adapters/storage/redis/drivers/upstash.js";
import { RedisStorage } from "../../src/adapters/storage/redis/redis-storage.js";
import { BACKENDS, makeStorage, suiteFor } from "./backends.js";
import { harness } from "./fixtures/worker.js";
import { deliver } from "./helpers.js";

const T0 = Date.UTC(2030, 0, 1);

async function setUp(backend: (typeof BACKENDS)[number]) {
  const clock = new ManualClock(T0);
  const storage = await makeStorage(backend, clock);
  harness.reset(storage, { clock });
  return { clock, storage };
}

for (const backend of BACKENDS) {
  suiteFor(backend, `queue consumer on ${backend}`, () => {
    it("runs the job a wake-up names and acknowledges it once the outcome is stored", async () => {
      const { clock, storage } = await setUp(backend);
      const id = await storage.enqueueJob("echo", ["q"]);
      const { ids, result } = await deliver([{ id, queue: "default", runAt: clock.now() }]);
      expect(result.explicitAcks).toEqual(ids);
      expect(result.retryMessages).toEqual([]);
      expect((await storage.get(id))?.state).toBe(JobState.Succeeded);
    });

    it("acknowledges wake-ups for finished and unknown jobs, foreign queues and foreign bodies", async () => {
      const { clock, storage } = await setUp(backend);
      const done = await storage.enqueueJob("echo");
      await deliver([{ id: done, queue: "default", runAt: clock.now() }]);
      const deleted = await storage.enqueueJob("echo", [], { delay: 60_000 });
      await storage.delete(deleted);

      const { ids, result } = await deliver([
        { id: done, queue: "default", runAt: clock.now() },
        { id: deleted, queue: "default", runAt: clock.now() },
        { id: crypto.randomUUID(), queue: "default", runAt: clock.now() },
        { id: crypto.randomUUID(), queue: "not-served-here", runAt: clock.now() },
        "not a wake-up",
        { id: 42 },
      ]);
      expect(result.explicitAcks.sort()).toEqual([...ids].sort());
      expect(result.retryMessages).toEqual([]);
    });

    it("retries a fresh wake-up whose job is not visible yet (a read replica may lag the insert)", async () => {
      const { clock } = await setUp(backend);
      const { ids, result } = await deliver([{ id: crypto.randomUUID(), queue: "default", runAt: clock.now() }], { timestamp: new Date(clock.now() - 1000) });
      expect(result.explicitAcks).toEqual([]);
      expect(result.retryMessages.map((m) => m.msgId)).toEqual(ids);
      expect(harness.deliveries.map((d) => [d.action, d.delaySeconds])).toEqual([["retry", 2]]);
    });

    it("hands a wake-up for a job that is not due yet to a fresh message for its due time", async () => {
      const { clock, storage } = await setUp(backend);
      harness.wakeUps = true;
      const runAt = clock.now() + 3 * 24 * 3600_000;
      const id = await storage.enqueueJob("echo", [], { runAt: new Date(runAt) });
      harness.sent.length = 0;

      const { ids, result } = await deliver([{ id, queue: "default", runAt: clock.now() }]);
      expect(result.explicitAcks).toEqual(ids);
      expect(harness.sent).toEqual([{ id, queue: "default", runAt }]);
      expect((await storage.get(id))?.state).toBe(JobState.Scheduled);
    });

    it("hands a wake-up for a job under another invocation's live lease to a fresh message for the lease's end", async () => {
      const { clock, storage } = await setUp(backend);
      harness.wakeUps = true;
      const id = await storage.enqueueJob("echo");
      harness.sent.length = 0;
      const [held] = await storage.claim({ queues: ["default"], limit: 1, owner: "cf-queue-other", leaseMs: 30_000, now: clock.now() });

      const { ids, result } = await deliver([{ id, queue: "default", runAt: clock.now() }]);
      expect(result.explicitAcks).toEqual(ids);
      expect(harness.sent).toEqual([{ id, queue: "default", runAt: held!.leaseUntil! + 1000 }]);
      expect((await storage.get(id))?.leaseOwner).toBe("cf-queue-other");
    });

    it("reclaims a job whose holder died and retries its wake-up, so the next delivery runs it", async () => {
      const { clock, storage } = await setUp(backend);
      const id = await storage.enqueueJob("echo");
      await storage.claim({ queues: ["default"], limit: 1, owner: "cf-queue-dead", leaseMs: 30_000, now: clock.now() });
      clock.advance(30_001);

      const first = await deliver([{ id, queue: "default", runAt: clock.now() }], { attempts: 1 });
      expect(first.result.explicitAcks).toEqual([]);
      expect(first.result.retryMessages.map((m) => m.msgId)).toEqual(first.ids);
      expect(harness.deliveries.map((d) => [d.action, d.delaySeconds])).toEqual([["retry", 1]]);
      expect((await storage.get(id))?.state).toBe(JobState.Enqueued);

      const second = await deliver([{ id, queue: "default", runAt: clock.now() }], { attempts: 2 });
      expect(second.result.explicitAcks).toEqual(second.ids);
      expect((await storage.get(id))?.state).toBe(JobState.Succeeded);
    });
  });
}

describe("queue consumer with the store down", () => {
  it("retries every wake-up with a growing delay and acknowledges none", async () => {
    // A real Upstash driver pointed at a port nobody listens on, without its own retries.
    const resolved = new RedisConfig().withUrl("http://127.0.0.1:9").withToken("unused-token").withRetries(0).withCommandTimeout(2000).resolve();
    const driver = new UpstashDriver({ url: resolved.url, token: resolved.token!, commandTimeoutMs: resolved.commandTimeoutMs, retries: 0, autoPipelining: false });
    harness.reset(new RedisStorage(driver, resolved));
    const body = { id: crypto.randomUUID(), queue: "default", runAt: Date.now() };

    const first = await deliver([body], { attempts: 1 });
    const third = await deliver([body], { attempts: 3 });
    expect(first.result.explicitAcks).toEqual([]);
    expect(third.result.explicitAcks).toEqual([]);
    expect([...first.result.retryMessages, ...third.result.retryMessages].map((m) => m.msgId)).toEqual([...first.ids, ...third.ids]);
    // Backoff by delivery attempt: 1 s, then 4 s on the third.
    expect(harness.deliveries.map((d) => [d.action, d.attempts, d.delaySeconds])).toEqual([
      ["retry", 1, 1],
      ["retry", 3, 4],
    ]);
  });

  it("logs and acknowledges what reaches the dead-letter queue", async () => {
    harness.reset(await makeStorage("memory"));
    const { ids, result } = await deliver([{ id: crypto.randomUUID(), queue: "default", runAt: Date.now() }], { queue: "qml-dlq", attempts: 4 });
    expect(result.explicitAcks).toEqual(ids);
  });
});
