/**
 * Durable steps on invocations with a deadline (tick(), as Workers and
 * Lambda run it) and the rules a worker's code is held to. The storage
 * side is in test/storage/steps-*.ts, on every backend.
 */
import { describe, expect, it } from "vitest";
import {
  BudgetExceededError,
  Job,
  JobState,
  MAX_STEPS_BYTES,
  StepError,
  Storage,
  WorkerRegistry,
  WorkerResult,
  memoryBackend,
  silentLogger,
} from "../../src/index.js";
import { DurationStats } from "../../src/core/processor.js";
import { tick } from "../../src/core/tick.js";

const SECOND = 1000;

function setup() {
  const storage = new Storage(memoryBackend());
  const durations = new DurationStats();
  const ran: Record<string, number> = {};
  const count = (id: string) => (ran[id] = (ran[id] ?? 0) + 1);
  const run = (registry: WorkerRegistry, budgetMs: number) =>
    tick({ storage, registry, deadline: Date.now() + budgetMs, safetyMs: 100, durations, logger: silentLogger, clockSync: false });
  return { storage, durations, ran, count, run };
}

describe("durable steps on an invocation with a deadline", () => {
  it("a step whose p95 does not fit what is left is not started: the run is released and the next invocation goes on from it", async () => {
    const { storage, durations, ran, count, run } = setup();
    // The invocation has 900 ms; "first" takes 600 of them, "slow" is known to take 400 (under half the budget: its release counts no attempt).
    durations.record("wf#slow", 400);
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      const a = await ctx.step.run("first", async () => {
        await new Promise((r) => setTimeout(r, 600));
        count("first");
        return 1;
      });
      const b = await ctx.step.run("slow", () => (count("slow"), 2));
      return WorkerResult.success(a + b);
    });
    const id = await storage.enqueue(new Job("wf"));
    await run(registry, SECOND);
    let job = (await storage.get(id))!;
    expect(job.error).toBeUndefined();
    expect(job.state).toBe(JobState.Enqueued);
    expect(job.attempts).toBe(0);
    expect(ran).toEqual({ first: 1 });
    expect(job.history.map((h) => h.reason).join("\n")).toMatch(
      /released between steps: step "slow" \(p95 400 ms\) would not finish before the invocation's deadline/,
    );
    await run(registry, 10 * SECOND);
    job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Succeeded);
    expect(job.result).toBe(3);
    expect(ran).toEqual({ first: 1, slow: 1 });
  });

  it("a step whose p95 exceeds a whole invocation's budget fails the job at once, naming the step", async () => {
    const { storage, durations, run } = setup();
    durations.record("wf#huge", 100 * SECOND);
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => WorkerResult.success(await ctx.step.run("huge", () => 1)));
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
    await run(registry, 3 * SECOND);
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Failed);
    expect(job.attempts).toBe(1);
    expect(job.error!.name).toBe(new BudgetExceededError("x", "y", 1).name);
    expect(job.error!.message).toMatch(/its step "huge" is expected to run 100000 ms/);
  });

  it("a step cut off at the deadline is not recorded as done or failed; its time so far is kept, and the next invocation runs it again", async () => {
    const { storage, durations, ran, count, run } = setup();
    let hang = true;
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      await ctx.step.run("before", () => count("before"));
      await ctx.step.run("cut", async () => {
        if (hang) {
          hang = false;
          await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true }));
        }
        count("cut");
      });
      return WorkerResult.success("done");
    });
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 3 }));
    await run(registry, 600);
    let job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Enqueued);
    expect(job.steps.map((s) => `${s.id}:${s.status}`)).toEqual(["before:completed"]);
    expect(durations.p95("wf#cut")).toBeGreaterThan(0);
    await run(registry, 10 * SECOND);
    job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Succeeded);
    expect(ran).toEqual({ before: 1, cut: 1 });
  });
});

describe("a step that never fits", () => {
  it("is cut off, then released between steps with its attempts counted, and ends failed, not released forever", async () => {
    const { storage, durations, run } = setup();
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      await ctx.step.run("quick", () => 1);
      await ctx.step.run("stuck", () => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })));
      return WorkerResult.success();
    });
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 3 }));
    for (let i = 0; i < 6 && (await storage.get(id))!.state !== JobState.Failed; i++) await run(registry, 600);
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Failed);
    expect(job.error!.name).toBe("BudgetExceededError");
    // It names the step either way: its p95 did not fit what was left in each attempt, or (a timer that fired late) passed a whole budget.
    expect(job.error!.message).toMatch(
      /its step "stuck" (\(p95 \d+ ms\) did not fit what was left of the invocation in each of its 3 attempts|is expected to run \d+ ms)/,
    );
    // What was learned is the step's time, not the job's: the job is not held back at its claims.
    expect(durations.p95("wf#stuck")).toBeGreaterThan(0);
    expect(durations.p95("wf") ?? 0).toBeLessThan(100);
  });
});

describe("the rules a worker's code is held to", () => {
  it("a worker that catches a suspension cannot go on: the next step throws it again, and the suspension is written", async () => {
    const { storage, ran, count, run } = setup();
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      try {
        await ctx.step.sleep("nap", 60 * SECOND);
      } catch {
        // swallowed by mistake
      }
      await ctx.step.run("after", () => count("after"));
      return WorkerResult.success("too early");
    });
    const id = await storage.enqueue(new Job("wf"));
    await run(registry, 3 * SECOND);
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Scheduled);
    expect(job.runAt!.getTime()).toBeGreaterThan(Date.now() + 50 * SECOND);
    expect(ran).toEqual({});
  });

  it("a step id that was another kind of step in an earlier run fails the job with StepError", async () => {
    const { storage, run } = setup();
    let first = true;
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      if (first) {
        first = false;
        await ctx.step.sleep("x", 1);
      } else await ctx.step.run("x", () => 1);
      return WorkerResult.success();
    });
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
    await run(registry, 3 * SECOND);
    await new Promise((r) => setTimeout(r, 5));
    await run(registry, 3 * SECOND);
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Failed);
    expect(job.error!.name).toBe(new StepError("x", "").name);
    expect(job.error!.message).toMatch(/was a sleep step in an earlier run of this job and is a run step now/);
  });

  it("a step whose result cannot be written (the lease is gone) ends the run without an outcome", async () => {
    const { storage, run } = setup();
    let id = "";
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      await ctx.step.run("a", async () => {
        await storage.delete(id);
        return 1;
      });
      return WorkerResult.success("never written");
    });
    id = await storage.enqueue(new Job("wf"));
    await run(registry, 3 * SECOND);
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Deleted);
    expect(job.steps).toEqual([]);
    expect(job.result).toBeUndefined();
  });

  it("a job's steps are held to MAX_STEPS_BYTES in all: the step that would pass it fails the job, the earlier ones kept", async () => {
    const { storage, run } = setup();
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      for (let i = 0; i < 30; i++) await ctx.step.run(`big-${i}`, () => "x".repeat(50_000));
      return WorkerResult.success();
    });
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
    await run(registry, 10 * SECOND);
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Failed);
    expect(job.attempts).toBe(1);
    expect(job.error!.name).toBe("StepResultTooLargeError");
    expect(job.error!.message).toMatch(/the job's steps would be \d+ bytes serialised with step "big-20"; the limit is 1048576/);
    expect(job.steps).toHaveLength(20);
    expect(JSON.stringify(job.steps).length).toBeLessThanOrEqual(MAX_STEPS_BYTES);
  });

  it("step ids and event options are checked, with the same ValidationError as everywhere", async () => {
    const { storage, run } = setup();
    const errors: string[] = [];
    const registry = new WorkerRegistry().register("wf", async (_job, ctx) => {
      for (const attempt of [
        () => ctx.step.run("", () => 1),
        () => ctx.step.run("a\u0000b", () => 1),
        () => ctx.step.sleep("s", -1),
        () => ctx.step.waitForEvent("w1", { event: "", timeout: 10 }),
        () => ctx.step.waitForEvent("w2", { event: "e", timeout: 0 }),
        () => ctx.step.waitForEvent("w3", { event: "e", timeout: 10, match: [1] as never }),
      ])
        await attempt().catch((e: Error) => errors.push(e.name));
      return WorkerResult.success();
    });
    await storage.enqueue(new Job("wf"));
    await run(registry, 3 * SECOND);
    expect(errors).toEqual(Array(6).fill("ValidationError"));
    await expect(storage.sendEvent("", {})).rejects.toThrow(/event/);
    await expect(storage.sendEvent("e", "x".repeat(70_000))).rejects.toThrow(/limit/);
    await expect(storage.sendEvent("e", { f: () => 1 })).rejects.toThrow();
  });
});
