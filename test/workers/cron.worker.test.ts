/**
 * The cron trigger's tick, on every store, with a fake clock: promotion of
 * due scheduled jobs, recurring jobs under overlapping ticks, and budgets:
 * a job that does not fit is not started, a tick that runs out hands its
 * job back, and a killed invocation's job is finished after its lease.
 */
import { expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { Job, JobState } from "../../src/core/job.js";
import type { Storage } from "../../src/core/storage.js";
import { wakeUpMessage } from "../../src/adapters/runtime/serverless/wake-up.js";
import { BACKENDS, makeStorage, suiteFor } from "./backends.js";
import { harness, registry } from "./fixtures/worker.js";
import { WorkerRegistry, WorkerResult } from "../../src/core/registry.js";

/** The fixture's jobs, with `name` doing `fn` first (then succeeding). */
function registryWith(name: string, fn: () => void): WorkerRegistry {
  const r = new WorkerRegistry();
  for (const n of registry.names()) r.register(n === name ? { methodName: n, execute: () => (fn(), WorkerResult.success()) } : registry.get(n)!);
  return r;
}
import { deliver, runCron } from "./helpers.js";

const T0 = Date.UTC(2030, 0, 1, 0, 0, 30);

async function setUp(backend: (typeof BACKENDS)[number], config: Parameters<typeof harness.reset>[1] = {}) {
  const clock = new ManualClock(T0);
  const storage = await makeStorage(backend, clock);
  harness.reset(storage, { clock, ...config });
  return { clock, storage };
}

async function state(storage: Storage, id: string) {
  const job = await storage.get(id);
  if (!job) throw new Error(`job ${id} is gone`);
  return job;
}

for (const backend of BACKENDS) {
  suiteFor(backend, `cron on ${backend}`, () => {
    it("a tick promotes a scheduled job once it is due, and runs it", async () => {
      const { clock, storage } = await setUp(backend);
      const id = await storage.enqueue(new Job("echo", ["later"], { delay: 60_000 }));
      expect((await state(storage, id)).state).toBe(JobState.Scheduled);

      await runCron(clock);
      expect((await state(storage, id)).state).toBe(JobState.Scheduled);
      expect(harness.runs.get(id)).toBeUndefined();

      clock.advance(60_000);
      await runCron(clock);
      const job = await state(storage, id);
      expect(job.state).toBe(JobState.Succeeded);
      expect(job.result).toEqual({ echo: ["later"] });
      expect(job.history.map((h) => h.state)).toEqual([JobState.Scheduled, JobState.Enqueued, JobState.Processing, JobState.Succeeded]);
      expect(job.history[2]!.worker).toMatch(/^cf-cron-/);
      expect(harness.runs.get(id)).toBe(1);
    });

    it("a recurring job fires once per slot when ticks overlap", async () => {
      const { clock, storage } = await setUp(backend);
      await storage.addOrUpdateRecurring("every-minute", "* * * * *", "echo", ["tick"]);

      clock.set(Date.UTC(2030, 0, 1, 0, 1, 0, 500));
      await Promise.all([runCron(clock), runCron(clock)]);
      clock.set(Date.UTC(2030, 0, 1, 0, 2, 0, 500));
      await Promise.all([runCron(clock), runCron(clock), runCron(clock)]);

      const jobs = (await storage.list({ name: "echo" }, { sort: "createdAt", order: "asc" })).items;
      expect(jobs.map((j) => j.metadata.slot)).toEqual(["2030-01-01T00:01:00.000Z", "2030-01-01T00:02:00.000Z"]);
      expect(jobs.map((j) => j.state)).toEqual([JobState.Succeeded, JobState.Succeeded]);
      expect([...harness.runs.values()]).toEqual([1, 1]);
    });

    it("a job whose timeout does not fit what is left of the budget is not started; its wake-up is retried; a fresh invocation runs it", async () => {
      const { clock, storage } = await setUp(backend, { budgetMs: 30_000, safetyMs: 500, concurrency: 1 });
      // The first job spends 25 s of the budget; the second, with a 20 s timeout, would fit a whole invocation but not the 4.5 s left.
      const [, id] = await storage.enqueue([new Job("takes_time", [25_000]), new Job("echo", ["big"], { timeout: 20_000 })]);

      await runCron(clock);
      let job = await state(storage, id!);
      expect(job.state).toBe(JobState.Enqueued);
      expect(job.attempts).toBe(0);
      expect(job.history.at(-1)!.reason).toContain("would not finish");
      expect(harness.runs.get(id!)).toBeUndefined();

      // A Queue consumer whose budget is spent the same way keeps the wake-up.
      const [, again] = await storage.enqueue([new Job("takes_time", [25_000]), new Job("echo", ["big"], { timeout: 20_000 })]);
      const first = await deliver([wakeUpMessage("default", [id!, again!], clock.now())]);
      expect(first.result.explicitAcks).toEqual([]);
      expect(first.result.retryMessages.map((m) => m.msgId)).toEqual(first.ids);

      // A fresh invocation with its whole budget runs them.
      const second = await deliver([wakeUpMessage("default", [id!, again!], clock.now())]);
      expect(second.result.explicitAcks).toEqual(second.ids);
      job = await state(storage, id!);
      expect(job.state).toBe(JobState.Succeeded);
      expect(job.attempts).toBe(1);
    });

    it("a job whose observed p95 duration does not fit what is left of the budget is left for an invocation with room for it", async () => {
      const { clock, storage } = await setUp(backend, { budgetMs: 60_000, concurrency: 1 });
      // Teaches the isolate's duration stats that takes_time takes 20 s.
      const learn = await storage.enqueue(new Job("takes_time", [20_000]));
      await runCron(clock);
      expect((await state(storage, learn)).state).toBe(JobState.Succeeded);

      harness.config = { ...harness.config, budgetMs: 30_000, safetyMs: 500 };
      const [, id] = await storage.enqueue([new Job("echo", ["first"], { timeout: 20_000 }), new Job("takes_time", [20_000])]);
      // The echo job runs at once, but a ManualClock does not move by itself: move it as 15 s of work would.
      harness.registry = registryWith("echo", () => void clock.advance(15_000));
      await runCron(clock);
      let job = await state(storage, id!);
      expect(job.state).toBe(JobState.Enqueued);
      expect(job.attempts).toBe(0);
      expect(job.history.at(-1)!.reason).toContain("would not finish");
      expect(harness.runs.get(id!)).toBeUndefined();

      harness.registry = undefined;
      await runCron(clock);
      job = await state(storage, id!);
      expect(job.state).toBe(JobState.Succeeded);
      expect(harness.runs.get(id!)).toBe(1);
    });

    it("a tick whose budget runs out hands its running job back; the next tick finishes it", async () => {
      const { clock, storage } = await setUp(backend, { budgetMs: 400, safetyMs: 100 });
      const id = await storage.enqueue(new Job("gated"));

      await runCron(clock);
      let job = await state(storage, id);
      expect(harness.runs.get(id)).toBe(1);
      expect(job.state).toBe(JobState.Enqueued);
      expect(job.attempts).toBe(0);
      expect(job.leaseOwner).toBeUndefined();
      expect(job.history.at(-1)!.reason).toContain("invocation deadline");

      harness.open.add(id);
      await runCron(clock);
      job = await state(storage, id);
      expect(job.state).toBe(JobState.Succeeded);
      expect(job.result).toBe("opened");
      expect(job.attempts).toBe(1);
      expect(harness.runs.get(id)).toBe(2);
    });

    it("a job held by an invocation that was killed is finished by a tick after its lease ran out", async () => {
      const { clock, storage } = await setUp(backend, { leaseMs: 30_000 });
      const id = await storage.enqueue(new Job("echo", ["orphan"]));
      // What a killed invocation leaves behind: a claim whose holder never writes again.
      const [claimed] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "cf-queue-killed", leaseMs: 30_000, now: clock.now() });
      expect(claimed?.id).toBe(id);

      await runCron(clock);
      expect((await state(storage, id)).state).toBe(JobState.Processing);
      expect(harness.runs.get(id)).toBeUndefined();

      clock.advance(30_001);
      await runCron(clock);
      const job = await state(storage, id);
      expect(job.state).toBe(JobState.Succeeded);
      expect(job.attempts).toBe(2);
      expect(job.history.map((h) => h.state)).toEqual([JobState.Enqueued, JobState.Processing, JobState.Enqueued, JobState.Processing, JobState.Succeeded]);
      expect(harness.runs.get(id)).toBe(1);
    });
  });
}
