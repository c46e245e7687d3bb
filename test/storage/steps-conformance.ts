/**
 * Durable steps in the conformance suite (conformance.ts runs this inside
 * every backend's describe): what the store keeps for them (a job's steps,
 * fenced by its lease; the suspension outcome `scheduled`; the event-waiter
 * index), on every backend and driver. The engine over it (ctx.step,
 * src/core/steps.ts) is exercised in steps-engine-conformance.ts.
 */
import { describe, expect, it } from "vitest";
import { Job, JobState, type JobRecord, type ManualClock, type Storage, type StepRecord } from "../../src/index.js";
import type { Outcome } from "../../src/core/driver.js";

const LEASE = 30_000;

export function runStepsConformance(fresh: () => Promise<{ storage: Storage; clock: ManualClock }>): void {
  async function claim(storage: Storage, clock: ManualClock, limit = 100): Promise<JobRecord[]> {
    return storage.driver.claim({ queues: ["default"], limit, owner: "w1", leaseMs: LEASE, now: clock.now() });
  }
  function outcome(r: JobRecord, state: Outcome["state"], extra: Partial<Outcome> = {}): Outcome {
    return { id: r.id, token: r.leaseToken, state, reason: state, worker: "w1/1", ...extra };
  }
  const entry = (at: number, reason: string) => ({ state: JobState.Processing, at, reason, worker: "w1/1" });

  describe("durable steps: what the store keeps", () => {
    it("saveSteps stores the steps as given, appends its history entry, and a later claim returns them", async () => {
      const { storage, clock } = await fresh();
      const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
      const [r] = await claim(storage, clock);
      const steps: StepRecord[] = [
        {
          id: "charge",
          kind: "run",
          status: "completed",
          startedAt: clock.now(),
          finishedAt: clock.now() + 5,
          durationMs: 5,
          result: { ok: true, n: [1, "ü"] },
        },
        { id: "ünïcode step ✓", kind: "run", status: "failed", startedAt: clock.now(), failures: 2, error: { name: "Error", message: "boom" } },
        { id: "nap", kind: "sleep", status: "waiting", startedAt: clock.now(), until: clock.now() + 60_000 },
        { id: "approval", kind: "wait", status: "waiting", startedAt: clock.now(), until: clock.now() + 1_000, event: "order.approved", match: { order: 42 } },
        { id: "null result", kind: "run", status: "completed", startedAt: clock.now(), result: null },
      ];
      expect(await storage.driver.saveSteps({ id, token: r!.leaseToken }, steps, entry(clock.now(), "step charge completed"), clock.now())).toBe(true);
      const got = (await storage.get(id))!;
      expect(got.steps).toEqual(steps);
      expect(got.history.at(-1)).toMatchObject({ state: JobState.Processing, reason: "step charge completed" });
      // A retry keeps them, and the next claim carries them.
      await storage.driver.complete([outcome(r!, JobState.AwaitingRetry, { runAt: clock.now(), error: { name: "E", message: "x" } })], clock.now());
      clock.advance(1);
      const [again] = await claim(storage, clock);
      expect(again!.id).toBe(id);
      expect(again!.steps).toEqual(steps);
      // A second save replaces the list.
      const fewer = steps.slice(0, 1);
      expect(await storage.driver.saveSteps({ id, token: again!.leaseToken }, fewer, entry(clock.now(), "replaced"), clock.now())).toBe(true);
      expect((await storage.get(id))!.steps).toEqual(fewer);
    });

    it("saveSteps is fenced by the lease: a stale token or a job not processing writes nothing", async () => {
      const { storage, clock } = await fresh();
      const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
      const [r] = await claim(storage, clock);
      const step: StepRecord = { id: "a", kind: "run", status: "completed", startedAt: clock.now(), result: 1 };
      expect(await storage.driver.saveSteps({ id, token: r!.leaseToken + 1 }, [step], entry(clock.now(), "stale"), clock.now())).toBe(false);
      await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now());
      expect(await storage.driver.saveSteps({ id, token: r!.leaseToken }, [step], entry(clock.now(), "late"), clock.now())).toBe(false);
      expect(await storage.driver.saveSteps({ id: "no-such-job", token: 1 }, [step], entry(clock.now(), "none"), clock.now())).toBe(false);
      const got = (await storage.get(id))!;
      expect(got.steps).toEqual([]);
      expect(got.history.some((h) => h.reason === "stale" || h.reason === "late")).toBe(false);
    });

    it("a job without steps reads back with none, and requeue and delete keep them", async () => {
      const { storage, clock } = await fresh();
      const plain = await storage.enqueue(new Job("plain"));
      expect((await storage.get(plain))!.steps).toEqual([]);
      const [r] = await claim(storage, clock);
      const step: StepRecord = { id: "a", kind: "run", status: "completed", startedAt: clock.now(), result: "kept" };
      await storage.driver.saveSteps({ id: plain, token: r!.leaseToken }, [step], entry(clock.now(), "step a completed"), clock.now());
      await storage.driver.complete([outcome(r!, JobState.Failed, { error: { name: "E", message: "x" } })], clock.now());
      await storage.requeue(plain);
      expect((await storage.get(plain))!.steps).toEqual([step]);
      await storage.delete(plain);
      expect((await storage.get(plain))!.steps).toEqual([step]);
    });

    it("a `scheduled` outcome suspends the job until runAt, gives its attempt back, and frees its concurrency slot", async () => {
      const { storage, clock } = await fresh();
      const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 2, concurrency: { key: "k", limit: 1 } }));
      const other = await storage.enqueue(new Job("other", [], { concurrency: { key: "k", limit: 1 } }));
      const [r] = await claim(storage, clock, 1);
      expect(r!.id).toBe(id);
      expect(r!.attempts).toBe(1);
      const wake = clock.now() + 60_000;
      const [res] = await storage.driver.complete([outcome(r!, JobState.Scheduled, { runAt: wake, reason: "sleeping until later" })], clock.now());
      expect(res!.status).toBe("applied");
      let got = (await storage.get(id))!;
      expect(got.state).toBe(JobState.Scheduled);
      expect(got.attempts).toBe(0);
      expect(got.runAt!.getTime()).toBe(wake);
      expect(got.leaseOwner).toBeUndefined();
      expect(got.history.at(-1)).toMatchObject({ state: JobState.Scheduled, reason: "sleeping until later" });
      // The slot is free: the other job of the key runs; the suspended one is not due.
      const next = await claim(storage, clock);
      expect(next.map((x) => x.id)).toEqual([other]);
      await storage.driver.complete([outcome(next[0]!, JobState.Succeeded)], clock.now());
      clock.advance(59_999);
      expect(await claim(storage, clock)).toEqual([]);
      clock.advance(1);
      const [woken] = await claim(storage, clock);
      expect(woken!.id).toBe(id);
      expect(woken!.attempts).toBe(1);
      // Suspended as often as it likes, it never runs out of attempts.
      for (let i = 0; i < 3; i++) {
        const [held] = i === 0 ? [woken] : await claim(storage, clock);
        await storage.driver.complete([outcome(held!, JobState.Scheduled, { runAt: clock.now() })], clock.now());
      }
      got = (await storage.get(id))!;
      expect(got.state).toBe(JobState.Scheduled);
      expect(got.attempts).toBe(0);
      // countAttempt keeps the attempt counted.
      const [held] = await claim(storage, clock);
      await storage.driver.complete([outcome(held!, JobState.Scheduled, { runAt: clock.now() + 5, countAttempt: true })], clock.now());
      expect((await storage.get(id))!.attempts).toBe(1);
      // A stale token is fenced out.
      const [res2] = await storage.driver.complete(
        [outcome({ ...held!, leaseToken: held!.leaseToken - 1 }, JobState.Scheduled, { runAt: clock.now() })],
        clock.now(),
      );
      expect(res2!.status).toBe("lost");
    });

    it("a suspended job is promoted when due, as a scheduled job is", async () => {
      const { storage, clock } = await fresh();
      const id = await storage.enqueue(new Job("wf"));
      const [r] = await claim(storage, clock);
      await storage.driver.complete([outcome(r!, JobState.Scheduled, { runAt: clock.now() + 1_000 })], clock.now());
      expect(await storage.driver.promoteDue(clock.now(), 100)).toBe(0);
      clock.advance(1_000);
      expect(await storage.driver.promoteDue(clock.now(), 100)).toBe(1);
      expect((await storage.get(id))!.state).toBe(JobState.Enqueued);
    });

    it("the event-waiter index: add, list, replace, expire, remove; events and jobs kept apart", async () => {
      const { storage, clock } = await fresh();
      const d = storage.driver;
      const now = clock.now();
      expect(await d.waiters("order.approved", now, 100)).toEqual([]);
      await d.addWaiter("order.approved", "job-1", now + 1_000, now);
      await d.addWaiter("order.approved", "job-2", now + 5_000, now);
      await d.addWaiter("order.approved", "job-3", now + 5_000, now);
      await d.addWaiter("ördér ✓ {x}", "job-1", now + 5_000, now);
      expect((await d.waiters("order.approved", now, 100)).sort()).toEqual(["job-1", "job-2", "job-3"]);
      expect(await d.waiters("ördér ✓ {x}", now, 100)).toEqual(["job-1"]);
      expect(await d.waiters("order", now, 100)).toEqual([]);
      expect((await d.waiters("order.approved", now, 2)).length).toBe(2);
      // Expired entries are not listed; a second add replaces the expiry.
      await d.addWaiter("order.approved", "job-2", now + 500, now);
      clock.advance(1_000);
      expect(await d.waiters("order.approved", clock.now(), 100)).toEqual(["job-3"]);
      await d.addWaiter("order.approved", "job-1", clock.now() + 1_000, clock.now());
      expect((await d.waiters("order.approved", clock.now(), 100)).sort()).toEqual(["job-1", "job-3"]);
      await d.removeWaiters("order.approved", ["job-3", "job-9"]);
      expect(await d.waiters("order.approved", clock.now(), 100)).toEqual(["job-1"]);
      await d.removeWaiters("order.approved", []);
      expect(await d.waiters("ördér ✓ {x}", clock.now(), 100)).toEqual(["job-1"]);
    });
  });
}
