/** POST /api/events: events for durable steps' waitForEvent, over the REST API. */
import { describe, expect, it } from "vitest";
import { Job, JobState } from "../../src/index.js";
import type { Outcome } from "../../src/core/driver.js";
import { READER, call, harness, problem } from "./helpers.js";

/** A job suspended in a waitForEvent step, as a server leaves it: waiting step saved, noted in the index, scheduled. */
async function waitingJob(storage: ReturnType<typeof harness>["storage"], event: string, match?: Record<string, unknown>): Promise<string> {
  const id = await storage.enqueue(new Job("send_email"));
  const now = storage.clock.now();
  const [r] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 30_000, now });
  const step = { id: "approval", kind: "wait" as const, status: "waiting" as const, startedAt: now, until: now + 60_000, event, ...(match ? { match } : {}) };
  await storage.driver.saveSteps({ id, token: r!.leaseToken }, [step], { state: JobState.Processing, at: now, reason: "waits" }, now);
  await storage.driver.addWaiter(event, id, now + 120_000, now);
  const suspend: Outcome = { id, token: r!.leaseToken, state: JobState.Scheduled, runAt: now + 60_000, reason: "waiting", worker: "w/1" };
  await storage.driver.complete([suspend], now);
  return id;
}

describe("POST /api/events", () => {
  it("delivers the event to the jobs waiting for it, whose match it meets, and wakes them (202)", async () => {
    const { app, storage } = harness();
    const a = await waitingJob(storage, "order.approved", { order: 1 });
    const b = await waitingJob(storage, "order.approved", { order: 2 });
    const res = await call(app, "POST", "/api/events", { body: { name: "order.approved", data: { order: 1, by: "ann" } } });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ name: "order.approved", delivered: [a] });
    expect((await storage.get(a))!.state).toBe(JobState.Enqueued);
    expect((await storage.get(a))!.history.at(-1)!.reason).toBe('event "order.approved" received');
    expect((await storage.get(b))!.state).toBe(JobState.Scheduled);
    const none = await call(app, "POST", "/api/events", { body: { name: "nobody.waits" } });
    expect(none.status).toBe(202);
    expect(await none.json()).toEqual({ name: "nobody.waits", delivered: [] });
  });

  it("refuses a bad body with 422 and delivers nothing", async () => {
    const { app, storage } = harness();
    const id = await waitingJob(storage, "e");
    for (const bad of [{}, { name: "" }, { name: "x".repeat(201) }, { name: 5 }, { name: "e", extra: 1 }, { name: "e", data: "y".repeat(70_000) }]) {
      const r = await call(app, "POST", "/api/events", { body: bad });
      expect(r.status, JSON.stringify(bad).slice(0, 60)).toBe(422);
      expect((await problem(r)).code).toBe("VALIDATION");
    }
    expect((await storage.get(id))!.state).toBe(JobState.Scheduled);
  });

  it("needs an admin token", async () => {
    const { app, storage } = harness();
    const id = await waitingJob(storage, "e");
    const r = await call(app, "POST", "/api/events", { token: READER, body: { name: "e" } });
    expect(r.status).toBe(403);
    expect((await storage.get(id))!.state).toBe(JobState.Scheduled);
  });
});
