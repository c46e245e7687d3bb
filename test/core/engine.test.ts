import { describe, expect, it } from "vitest";
import {
  DeadlineError,
  Job,
  JobState,
  ManualClock,
  Storage,
  memoryBackend,
  RetryPolicy,
  ServerConfig,
  ShutdownError,
  TimeoutError,
  WorkerRegistry,
  WorkerResult,
  silentLogger,
  tick,
  type WorkerContext,
} from "../../src/index.js";
import { Emitter, type JobEventMap } from "../../src/core/events.js";
import { DurationStats, Processor } from "../../src/core/processor.js";
import { MAX_CLAIMS_IN_FLIGHT } from "../../src/core/server.js";
import { defaultRetryPolicy } from "../../src/core/retry.js";
import { testServer, waitForEvents } from "./helpers.js";
import { SlowClaims, runBacklog } from "./slow-claims.js";

describe("processing", () => {
  it("100 jobs with 20 workers: each runs exactly once", async () => {
    const storage = new Storage(memoryBackend());
    const runs = new Map<number, number>();
    let concurrent = 0;
    let maxConcurrent = 0;
    const registry = new WorkerRegistry().register("work", async (job) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await new Promise((r) => setTimeout(r, 2));
      runs.set(job.arguments[0] as number, (runs.get(job.arguments[0] as number) ?? 0) + 1);
      concurrent--;
    });
    await storage.enqueue(Array.from({ length: 100 }, (_, i) => new Job("work", [i])));
    const server = testServer(storage, registry, (c) => c.workerCount(20));
    const done = waitForEvents(server, "job:succeeded", 100);
    await server.start();
    await done;
    await server.stop();
    expect(runs.size).toBe(100);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(maxConcurrent).toBeLessThanOrEqual(20);
    expect(maxConcurrent).toBeGreaterThan(1);
  });

  it("10,000 jobs: all processed", async () => {
    const storage = new Storage(memoryBackend({ maxFinishedJobs: 20_000 }));
    let count = 0;
    const registry = new WorkerRegistry().register("noop", () => {
      count++;
    });
    await storage.enqueue(Array.from({ length: 10_000 }, (_, i) => new Job("noop", [i])));
    const server = testServer(storage, registry, (c) => c.workerCount(50));
    const done = waitForEvents(server, "job:succeeded", 10_000);
    await server.start();
    await done;
    await server.stop();
    expect(count).toBe(10_000);
    const st = await storage.stats();
    expect(st.states.succeeded).toBe(10_000);
    expect(st.states.enqueued + st.states.processing).toBe(0);
  });

  it("wakes at once on an in-process enqueue, without waiting for the poll", async () => {
    const storage = new Storage(memoryBackend());
    const registry = new WorkerRegistry().register("ping", () => WorkerResult.success("pong"));
    // A poll interval far beyond the test timeout: only the wake-up can run the job.
    const server = testServer(storage, registry, (c) => c.pollingInterval(120_000).maxPollingInterval(120_000).enableScheduler(false));
    await server.start();
    const done = waitForEvents(server, "job:succeeded");
    await storage.enqueue(new Job("ping", []));
    const [e] = await done;
    await server.stop();
    expect(e!.result).toBe("pong");
  });

  it("passes the context: attempt, ids, lease token, progress and heartbeat", async () => {
    const storage = new Storage(memoryBackend());
    let seen: Partial<WorkerContext> & { beat?: boolean; prog?: boolean } = {};
    const registry = new WorkerRegistry().register("ctx", async (_job, ctx) => {
      seen = { attempt: ctx.attempt, serverId: ctx.serverId, workerId: ctx.workerId, leaseToken: ctx.leaseToken };
      seen.prog = await ctx.progress({ step: 2 });
      seen.beat = await ctx.heartbeat();
    });
    const id = await storage.enqueue(new Job("ctx", []));
    const server = testServer(storage, registry, (c) => c);
    const done = waitForEvents(server, "job:succeeded");
    await server.start();
    await done;
    await server.stop();
    expect(seen.attempt).toBe(1);
    expect(seen.serverId).toBe(server.serverId);
    expect(seen.workerId).toMatch(new RegExp(`^${server.serverId}/\\d+$`));
    expect(seen.leaseToken).toBeGreaterThan(0);
    expect(seen.prog).toBe(true);
    expect(seen.beat).toBe(true);
    expect((await storage.get(id))!.progress).toEqual({ step: 2 });
  });
});

describe("retries", () => {
  it("a thrown error retries (awaiting_retry) and then succeeds", async () => {
    const storage = new Storage(memoryBackend());
    let calls = 0;
    const registry = new WorkerRegistry().register("flaky", () => {
      if (++calls < 3) throw new Error(`boom ${calls}`);
      return WorkerResult.success("ok");
    });
    const id = await storage.enqueue(new Job("flaky", [], { maxAttempts: 5, retry: RetryPolicy.fixed(0) }));
    const server = testServer(storage, registry);
    const retries = waitForEvents(server, "job:retry", 2);
    const done = waitForEvents(server, "job:succeeded");
    await server.start();
    const r = await retries;
    await done;
    await server.stop();
    expect(r[0]!.error.message).toBe("boom 1");
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Succeeded);
    expect(job.attempts).toBe(3);
    // A due retry is promoted (enqueued) by the claim that takes it.
    expect(job.history.map((h) => h.state)).toEqual([
      "enqueued",
      "processing",
      "awaiting_retry",
      "enqueued",
      "processing",
      "awaiting_retry",
      "enqueued",
      "processing",
      "succeeded",
    ]);
  });

  it("ends failed after maxAttempts, with the last error and its stack", async () => {
    const storage = new Storage(memoryBackend());
    const registry = new WorkerRegistry().register("doomed", () => {
      throw new TypeError("always");
    });
    const id = await storage.enqueue(new Job("doomed", [], { maxAttempts: 3, retry: RetryPolicy.fixed(0) }));
    const server = testServer(storage, registry);
    const failed = waitForEvents(server, "job:failed");
    await server.start();
    await failed;
    await server.stop();
    const job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Failed);
    expect(job.attempts).toBe(3);
    expect(job.error).toMatchObject({ name: "TypeError", message: "always" });
    expect(job.error!.stack).toContain("TypeError: always");
    expect(job.history.filter((h) => h.state === "awaiting_retry")).toHaveLength(2);
  });

  it("WorkerResult.failure fails at once; WorkerResult.retry takes its own delay", async () => {
    const clock = new ManualClock();
    const storage = new Storage(memoryBackend(), { clock });
    const registry = new WorkerRegistry()
      .register("fatal", () => WorkerResult.failure(new Error("bad input")))
      .register("later", () => WorkerResult.retry(new Error("busy"), { delay: 90_000 }));
    const fatal = await storage.enqueue(new Job("fatal", [], { maxAttempts: 10 }));
    const later = await storage.enqueue(new Job("later", [], { maxAttempts: 10 }));
    const server = testServer(storage, registry, (c) => c.clock(clock));
    const failed = waitForEvents(server, "job:failed");
    const retry = waitForEvents(server, "job:retry");
    await server.start();
    await Promise.all([failed, retry]);
    await server.stop();
    expect((await storage.get(fatal))!).toMatchObject({ state: "failed", attempts: 1 });
    const l = (await storage.get(later))!;
    expect(l.state).toBe("awaiting_retry");
    expect(l.runAt!.getTime()).toBe(clock.now() + 90_000);
  });

  it("backs off exponentially with jitter, capped", () => {
    const p = RetryPolicy.exponential({ baseMs: 1000, maxMs: 10_000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6].map((a) => p.delayFor(a, null))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    const j = RetryPolicy.exponential({ baseMs: 1000, maxMs: 1e9, jitter: 0.5 });
    const samples = Array.from({ length: 200 }, () => j.delayFor(3, null));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(3000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(5000);
    expect(new Set(samples).size).toBeGreaterThan(10);
    expect(RetryPolicy.custom((a) => a * 7).delayFor(3, null)).toBe(21);
  });

  it("uses a worker's custom retry policy; a job's own policy wins", async () => {
    const clock = new ManualClock();
    const storage = new Storage(memoryBackend(), { clock });
    const registry = new WorkerRegistry().register(
      "c",
      () => {
        throw new Error("x");
      },
      { retry: RetryPolicy.custom((attempt) => attempt * 111) },
    );
    const a = await storage.enqueue(new Job("c", [], { maxAttempts: 2 }));
    const b = await storage.enqueue(new Job("c", [], { maxAttempts: 2, retry: RetryPolicy.fixed(5000) }));
    const server = testServer(storage, registry, (c) => c.clock(clock));
    const retries = waitForEvents(server, "job:retry", 2);
    await server.start();
    await retries;
    await server.stop();
    expect((await storage.get(a))!.runAt!.getTime()).toBe(clock.now() + 111);
    expect((await storage.get(b))!.runAt!.getTime()).toBe(clock.now() + 5000);
  });
});

describe("timeouts, unknown names, shutdown", () => {
  it("a server with no workers claims nothing: another server's job is left for it, not failed", async () => {
    const storage = new Storage(memoryBackend());
    const id = await storage.enqueue(new Job("other_service.work", []));
    const producer = testServer(storage, new WorkerRegistry());
    await producer.start();
    await new Promise((r) => setTimeout(r, 150));
    await producer.stop();
    const job = (await storage.get(id))!;
    expect(job.state).toBe("enqueued");
    expect(job.attempts).toBe(0);
    // Once it has workers, it claims.
    const worker = testServer(
      storage,
      new WorkerRegistry().register("other_service.work", () => {}),
    );
    const done = waitForEvents(worker, "job:succeeded");
    await worker.start();
    await done;
    await worker.stop();
  });

  it("aborts a job past its timeout and counts it as a failed attempt", async () => {
    const storage = new Storage(memoryBackend());
    let aborted: unknown;
    const registry = new WorkerRegistry().register("slow", (_job, ctx) => {
      return new Promise((resolve) => {
        ctx.signal.addEventListener("abort", () => {
          aborted = ctx.signal.reason;
          resolve(undefined);
        });
      });
    });
    const id = await storage.enqueue(new Job("slow", [], { timeout: 50, maxAttempts: 1 }));
    const server = testServer(storage, registry);
    const failed = waitForEvents(server, "job:failed");
    await server.start();
    const [e] = await failed;
    await server.stop();
    expect(aborted).toBeInstanceOf(TimeoutError);
    expect(e!.error.code).toBe("TIMEOUT");
    expect((await storage.get(id))!.state).toBe("failed");
  });

  it("workerCount is a true bound: six jobs that ignore their abort signal never overlap at workerCount(1)", async () => {
    const storage = new Storage(memoryBackend());
    let running = 0;
    let most = 0;
    const registry = new WorkerRegistry().register("stubborn", async () => {
      running++;
      most = Math.max(most, running);
      // Ignores ctx.signal: runs on well past its timeout.
      await new Promise((r) => setTimeout(r, 120));
      running--;
    });
    await storage.enqueue(Array.from({ length: 6 }, (_, i) => new Job("stubborn", [i], { timeout: 20, maxAttempts: 1 })));
    const server = testServer(storage, registry, (c) => c.workerCount(1));
    const overruns = waitForEvents(server, "job:overrun", 6);
    const failed = waitForEvents(server, "job:failed", 6);
    await server.start();
    const [reports] = await Promise.all([overruns, failed]);
    // The last one's slot frees when it returns.
    while (running > 0) await new Promise((r) => setTimeout(r, 10));
    await server.stop();
    expect(most).toBe(1);
    expect(reports.map((r) => r.reason)).toEqual(Array(6).fill("TimeoutError"));
    expect((await storage.stats()).states.failed).toBe(6);
  });

  it("a job that ignores the abort signal still ends at its timeout", async () => {
    const storage = new Storage(memoryBackend());
    const registry = new WorkerRegistry().register("stubborn", () => new Promise(() => {}));
    const id = await storage.enqueue(new Job("stubborn", [], { maxAttempts: 1 }));
    const server = testServer(storage, registry, (c) => c.jobTimeout(40));
    const failed = waitForEvents(server, "job:failed");
    await server.start();
    await failed;
    await server.stop(0);
    expect((await storage.get(id))!.error?.code).toBe("TIMEOUT");
  });

  it("an unknown job name fails with a clear error and is not lost", async () => {
    const storage = new Storage(memoryBackend());
    const id = await storage.enqueue(new Job("nobody_handles_this", [42], { maxAttempts: 2, retry: RetryPolicy.fixed(0) }));
    // A server with workers, none for this name (one with none claims nothing).
    const server = testServer(
      storage,
      new WorkerRegistry().register("something_else", () => {}),
    );
    const failed = waitForEvents(server, "job:failed");
    await server.start();
    await failed;
    await server.stop();
    const job = (await storage.get(id))!;
    expect(job.state).toBe("failed");
    expect(job.error?.code).toBe("UNKNOWN_JOB_NAME");
    expect(job.error?.message).toContain("nobody_handles_this");
    expect(job.arguments).toEqual([42]);
    // Not lost: once a worker exists, the job can be requeued and runs.
    await storage.requeue(id);
    const later = testServer(
      storage,
      new WorkerRegistry().register("nobody_handles_this", () => WorkerResult.success("found")),
    );
    const ok = waitForEvents(later, "job:succeeded");
    await later.start();
    await ok;
    await later.stop();
    expect((await storage.get(id))!.result).toBe("found");
  });

  it("stop() lets running jobs finish within the grace period", async () => {
    const storage = new Storage(memoryBackend());
    let finished = false;
    const registry = new WorkerRegistry().register("short", async () => {
      await new Promise((r) => setTimeout(r, 50));
      finished = true;
    });
    const id = await storage.enqueue(new Job("short", []));
    const server = testServer(storage, registry);
    const started = waitForEvents(server, "job:start");
    await server.start();
    await started;
    await server.stop(5000);
    expect(finished).toBe(true);
    expect((await storage.get(id))!.state).toBe("succeeded");
  });

  it("stop() releases what it abandons back to enqueued at once, attempt not counted", async () => {
    const clock = new ManualClock();
    const storage = new Storage(memoryBackend(), { clock });
    let reason: unknown;
    const registry = new WorkerRegistry().register(
      "long",
      (_job, ctx) =>
        new Promise((resolve) =>
          ctx.signal.addEventListener("abort", () => {
            reason = ctx.signal.reason;
            resolve(undefined);
          }),
        ),
    );
    const id = await storage.enqueue(new Job("long", []));
    const server = testServer(storage, registry, (c) => c.clock(clock));
    const started = waitForEvents(server, "job:start");
    await server.start();
    await started;
    await server.stop(20);
    expect(reason).toBeInstanceOf(ShutdownError);
    // The clock never moved: the job is back without waiting for its lease.
    const job = (await storage.get(id))!;
    expect(job.state).toBe("enqueued");
    expect(job.attempts).toBe(0);
    expect(job.history.at(-1)!.reason).toMatch(/released/);
    expect((await storage.stats()).states.processing).toBe(0);
  });

  it("stops claiming once stopped", async () => {
    const storage = new Storage(memoryBackend());
    const server = testServer(
      storage,
      new WorkerRegistry().register("x", () => {}),
    );
    await server.start();
    await server.stop();
    await storage.enqueue(new Job("x", []));
    await new Promise((r) => setTimeout(r, 100));
    expect((await storage.stats()).states.enqueued).toBe(1);
  });
});

describe("leases", () => {
  it("heartbeats keep a long job's lease; another server does not reclaim it", async () => {
    const storage = new Storage(memoryBackend());
    let runs = 0;
    const registry = new WorkerRegistry().register("long", async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 400));
    });
    const id = await storage.enqueue(new Job("long", []));
    const a = testServer(storage, registry, (c) => c.leaseDuration(90));
    const b = testServer(storage, registry, (c) => c.leaseDuration(90));
    const done = waitForEvents(a, "job:succeeded");
    const started = waitForEvents(a, "job:start");
    await a.start();
    await started;
    await b.start();
    await done;
    await Promise.all([a.stop(), b.stop()]);
    expect(runs).toBe(1);
    const job = (await storage.get(id))!;
    expect(job.state).toBe("succeeded");
    expect(job.history.some((h) => h.reason?.includes("lease expired"))).toBe(false);
  });

  it("a worker whose lease is lost is told through its signal, and its outcome is fenced out", async () => {
    const clock = new ManualClock();
    const storage = new Storage(memoryBackend(), { clock });
    const reasons: unknown[] = [];
    const registry = new WorkerRegistry().register(
      "zombie",
      (_job, ctx) =>
        new Promise((resolve) =>
          ctx.signal.addEventListener("abort", () => {
            reasons.push(ctx.signal.reason);
            resolve(WorkerResult.success("zombie result"));
          }),
        ),
    );
    const id = await storage.enqueue(new Job("zombie", [], { maxAttempts: 5 }));
    const server = testServer(storage, registry, (c) => c.clock(clock).leaseDuration(60).enableScheduler(false));
    const started = waitForEvents(server, "job:start");
    const lost = waitForEvents(server, "job:lost");
    await server.start();
    await started;
    // Time passes beyond the lease without a heartbeat getting through; someone reclaims it.
    clock.advance(10_000);
    expect(await storage.driver.reclaimExpired(clock.now(), 10)).toBe(1);
    await lost;
    await server.stop(0);
    // The first run learnt it lost the lease; the server's new claim of the job was released at stop.
    expect(reasons[0]).toMatchObject({ code: "LEASE_LOST" });
    const job = (await storage.get(id))!;
    expect(job.state).toBe("enqueued");
    expect(job.result).toBeUndefined();
  });
});

describe("recurring", () => {
  it("two servers fire a recurring job once per slot", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1, 0, 0, 30));
    const storage = new Storage(memoryBackend(), { clock });
    await storage.addOrUpdateRecurring("minutely", "* * * * *", "rec", ["r"]);
    const runs: string[] = [];
    const registry = new WorkerRegistry().register("rec", (job) => {
      runs.push(String(job.metadata.slot));
    });
    const a = testServer(storage, registry, (c) => c.clock(clock));
    const b = testServer(storage, registry, (c) => c.clock(clock));
    await Promise.all([a.start(), b.start()]);
    for (let minute = 1; minute <= 3; minute++) {
      clock.set(Date.UTC(2030, 0, 1, 0, minute, 0));
      const ranA = waitForEvents(a, "job:succeeded");
      const ranB = waitForEvents(b, "job:succeeded");
      await Promise.race([ranA, ranB]);
      // Give both schedulers a few more passes at the same slot.
      await new Promise((r) => setTimeout(r, 150));
    }
    await Promise.all([a.stop(), b.stop()]);
    expect(runs).toEqual(["2030-01-01T00:01:00.000Z", "2030-01-01T00:02:00.000Z", "2030-01-01T00:03:00.000Z"]);
  });
});

describe("tick (short-lived invocations)", () => {
  it("promotes, reclaims, fires and processes within one call", async () => {
    const clock = new ManualClock();
    const storage = new Storage(memoryBackend(), { clock });
    const registry = new WorkerRegistry().register("t", () => WorkerResult.success());
    await storage.enqueue([new Job("t", []), new Job("t", [], { delay: 1000 }), new Job("t", [])]);
    await storage.driver.claim({ queues: ["default"], limit: 1, owner: "dead", leaseMs: 500, now: clock.now() });
    clock.advance(1001);
    const r = await tick({ storage, registry, deadline: clock.now() + 10_000, clock });
    expect(r).toMatchObject({ promoted: 1, reclaimed: 1, processed: 3, succeeded: 3, released: 0, deferred: 0 });
    expect((await storage.stats()).states.succeeded).toBe(3);
  });

  it("fails a job whose timeout could never fit an invocation's budget, instead of handing it back forever", async () => {
    const storage = new Storage(memoryBackend());
    let ran = false;
    const registry = new WorkerRegistry().register("big", () => {
      ran = true;
    });
    const id = await storage.enqueue(new Job("big", [], { timeout: 60_000, maxAttempts: 5 }));
    const r = await tick({ storage, registry, deadline: Date.now() + 5000, safetyMs: 100, durations: new DurationStats() });
    expect(ran).toBe(false);
    expect(r).toMatchObject({ deferred: 0, failed: 1 });
    const job = (await storage.get(id))!;
    expect(job.state).toBe("failed");
    expect(job.error).toMatchObject({ name: "BudgetExceededError", code: "BUDGET_EXCEEDED" });
    expect(job.error!.message).toMatch(/expected to run 60000 ms \(its timeout\)/);
  });

  it("hands back a job that fits a whole budget but not what is left, keeping its place and its attempt", async () => {
    const storage = new Storage(memoryBackend());
    const ran: string[] = [];
    const registry = new WorkerRegistry()
      .register("first", async () => {
        ran.push("first");
        await new Promise((r) => setTimeout(r, 300));
      })
      .register("second", () => {
        ran.push("second");
      });
    await storage.enqueue(new Job("first", [], { priority: 1 }));
    const second = await storage.enqueue(new Job("second", [], { timeout: 400 }));
    const third = await storage.enqueue(new Job("first", []));
    const r = await tick({ storage, registry, deadline: Date.now() + 600, safetyMs: 100, concurrency: 1, durations: new DurationStats() });
    expect(ran).toEqual(["first"]);
    expect(r.deferred).toBe(1);
    expect((await storage.get(second))!).toMatchObject({ state: "enqueued", attempts: 0 });
    // It kept its place ahead of the job enqueued after it: the next invocation starts it first.
    const next = await tick({ storage, registry, deadline: Date.now() + 5000, concurrency: 1, maxJobs: 1, durations: new DurationStats() });
    expect(next.succeeded).toBe(1);
    expect((await storage.get(second))!.state).toBe("succeeded");
    expect((await storage.get(third))!.state).toBe("enqueued");
  });

  it("a run cut off at the deadline after most of a budget counts as an attempt, and the next invocation starts it first", async () => {
    const storage = new Storage(memoryBackend());
    let reason: unknown;
    const registry = new WorkerRegistry().register(
      "long",
      (_job, ctx) =>
        new Promise((resolve) =>
          ctx.signal.addEventListener("abort", () => {
            reason = ctx.signal.reason;
            resolve(undefined);
          }),
        ),
    );
    const id = await storage.enqueue(new Job("long", []));
    const r = await tick({ storage, registry, deadline: Date.now() + 300, safetyMs: 100, durations: new DurationStats() });
    expect(reason).toBeInstanceOf(DeadlineError);
    expect(r.released).toBe(1);
    const job = (await storage.get(id))!;
    expect(job).toMatchObject({ state: "enqueued", attempts: 1 });
    expect(job.history.at(-1)!.reason).toMatch(/cut off at the invocation's deadline .*attempt 1 of 3 counted/);
    // The next invocation finishes it.
    const next = await tick({ storage, registry: new WorkerRegistry().register("long", () => {}), deadline: Date.now() + 5000 });
    expect(next.succeeded).toBe(1);
  });

  it("a run started late and cut off gives its attempt back", async () => {
    const storage = new Storage(memoryBackend());
    const registry = new WorkerRegistry()
      .register("first", () => new Promise((r) => setTimeout(r, 450)))
      .register("late", (_job, ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(undefined))));
    await storage.enqueue(new Job("first", [], { priority: 1 }));
    const late = await storage.enqueue(new Job("late", []));
    await tick({ storage, registry, deadline: Date.now() + 600, safetyMs: 100, concurrency: 1, durations: new DurationStats() });
    expect((await storage.get(late))!).toMatchObject({ state: "enqueued", attempts: 0 });
  });

  it("a job that always outgrows the budget ends failed with BudgetExceededError within its attempts, never looping", async () => {
    const storage = new Storage(memoryBackend());
    let runs = 0;
    const registry = new WorkerRegistry().register("forever", (_job, ctx) => {
      runs++;
      return new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(undefined)));
    });
    const id = await storage.enqueue(new Job("forever", [], { maxAttempts: 3 }));
    const durations = new DurationStats();
    let ticks = 0;
    while ((await storage.get(id))!.state !== "failed" && ticks < 10) {
      ticks++;
      await tick({ storage, registry, deadline: Date.now() + 250, safetyMs: 50, durations });
    }
    const job = (await storage.get(id))!;
    expect(job.state).toBe("failed");
    expect(job.error?.name).toBe("BudgetExceededError");
    expect(ticks).toBeLessThanOrEqual(3);
    expect(runs).toBeLessThanOrEqual(3);
  });

  it("duration estimates persist in the store: a cold isolate knows a job will not fit", async () => {
    const storage = new Storage(memoryBackend());
    let runs = 0;
    const registry = new WorkerRegistry().register("slow", async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 300));
    });
    await storage.enqueue(new Job("slow", []));
    await tick({ storage, registry, deadline: Date.now() + 5000, durations: new DurationStats() });
    expect(runs).toBe(1);
    const estimates = await storage.driver.readEstimates();
    expect(estimates.slow).toBeGreaterThanOrEqual(250);
    // A fresh isolate (no samples of its own) with a budget of 200 ms.
    const id = await storage.enqueue(new Job("slow", []));
    const r = await tick({ storage, registry, deadline: Date.now() + 300, safetyMs: 100, durations: new DurationStats() });
    expect(runs).toBe(1);
    expect(r.failed).toBe(1);
    expect((await storage.get(id))!.error?.name).toBe("BudgetExceededError");
  });

  it("a killed invocation's job is reclaimed after its lease and completes next time", async () => {
    const clock = new ManualClock();
    const storage = new Storage(memoryBackend(), { clock });
    const id = await storage.enqueue(new Job("k", []));
    // An invocation claims it and is then killed: nothing is written back.
    await storage.driver.claim({ queues: ["default"], limit: 10, owner: "killed", leaseMs: 30_000, now: clock.now() });
    const registry = new WorkerRegistry().register("k", () => WorkerResult.success("done"));
    const early = await tick({ storage, registry, deadline: clock.now() + 2000, clock });
    expect(early.processed).toBe(0);
    clock.advance(30_001);
    const later = await tick({ storage, registry, deadline: clock.now() + 2000, clock });
    expect(later).toMatchObject({ reclaimed: 1, succeeded: 1 });
    expect((await storage.get(id))!.result).toBe("done");
  });
});

describe("config", () => {
  it("validates builder input", () => {
    expect(() => new ServerConfig().workerCount(0)).toThrow(/workerCount/);
    expect(() => new ServerConfig().queues(["a:b"])).toThrow(/queue/);
    expect(() => new ServerConfig().queues([])).toThrow(/queues/);
    const c = new ServerConfig("s")
      .workerCount(3)
      .queues(["critical", "default"])
      .pollingInterval(250)
      .leaseDuration(9000)
      .fetchBatchSize(7)
      .jobTimeout(1000)
      .enableScheduler(false)
      .resolve();
    expect(c).toMatchObject({
      serverId: "s",
      workerCount: 3,
      queues: ["critical", "default"],
      pollingIntervalMs: 250,
      leaseMs: 9000,
      fetchBatchSize: 7,
      jobTimeoutMs: 1000,
      enableScheduler: false,
    });
    expect(silentLogger).toBeDefined();
  });
});

describe("prefetch", () => {
  it("holds claimed jobs ahead of busy workers, renews their leases, and releases them at once on stop", async () => {
    const clock = new ManualClock();
    const storage = new Storage(memoryBackend(), { clock });
    const gate = new Promise<void>(() => {});
    const registry = new WorkerRegistry().register("block", (_job, ctx) =>
      new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve())).then(() => gate),
    );
    await storage.enqueue(Array.from({ length: 8 }, (_, i) => new Job("block", [i])));
    const server = testServer(storage, registry, (c) => c.clock(clock).workerCount(1).prefetch(3).leaseDuration(300).enableScheduler(false));
    const started = waitForEvents(server, "job:start");
    await server.start();
    await started;
    // One runs, three are held: four leases, four jobs in processing, four still waiting.
    for (;;) {
      const st = await storage.stats();
      if (st.states.processing === 4) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect((await storage.stats()).states.enqueued).toBe(4);
    const held = (await storage.list({ state: "processing" })).items;
    const before = Math.max(...held.map((j) => j.leaseUntil!.getTime()));
    clock.advance(250);
    // A heartbeat (every lease/3) renews held leases too.
    for (;;) {
      const now = (await storage.list({ state: "processing" })).items.map((j) => j.leaseUntil!.getTime());
      if (now.every((t) => t > before)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(0);
    await server.stop(0);
    const st = await storage.stats();
    expect(st.states.processing).toBe(0);
    expect(st.states.enqueued).toBe(8);
    const jobs = (await storage.list({})).items;
    expect(jobs.every((j) => j.attempts === 0)).toBe(true);
  });

  it("runs every job exactly once with prefetch on many workers", async () => {
    const storage = new Storage(memoryBackend());
    const runs = new Map<number, number>();
    const registry = new WorkerRegistry().register("p", async (job) => {
      runs.set(job.arguments[0] as number, (runs.get(job.arguments[0] as number) ?? 0) + 1);
    });
    await storage.enqueue(Array.from({ length: 2000 }, (_, i) => new Job("p", [i])));
    const server = testServer(storage, registry, (c) => c.workerCount(8).prefetch(50).fetchBatchSize(40));
    const done = waitForEvents(server, "job:succeeded", 2000);
    await server.start();
    await done;
    await server.stop();
    expect(runs.size).toBe(2000);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
  });
});

describe("prefetch claiming", () => {
  it("claims again whenever a full fetch batch fits the buffer, not only when half of it is free", async () => {
    const storage = new Storage(memoryBackend());
    const registry = new WorkerRegistry().register("block", () => new Promise<void>(() => {}));
    await storage.enqueue(Array.from({ length: 30 }, (_, i) => new Job("block", [i])));
    const processor = new Processor(storage, registry, {
      serverId: "s",
      concurrency: 1,
      prefetch: 10,
      queues: ["default"],
      leaseMs: 30_000,
      fetchBatchSize: 2,
      jobTimeoutMs: undefined,
      retryPolicy: defaultRetryPolicy,
      clock: new ManualClock(),
      logger: silentLogger,
      events: new Emitter<JobEventMap>(),
    });
    let claimed = 0;
    while (processor.wantsClaim()) claimed += (await processor.fill()).claimed;
    // 1 running + 10 held is the most it may hold; batches of 2 leave 1 slot that no batch fills.
    expect(claimed).toBe(10);
    expect(processor.runningCount).toBe(1);
    expect(processor.bufferedCount).toBe(9);
    expect((await storage.stats()).states.processing).toBe(10);
    // Held and running jobs go back on drain.
    await processor.drain(0);
    expect((await storage.stats()).states.enqueued).toBe(30);
  });
});

describe("claims in flight", () => {
  it("with prefetch and a backlog, overlaps claims, never holding more than workers + prefetch", async () => {
    const storage = new SlowClaims(15);
    await runBacklog(storage, (c) => c.workerCount(4).prefetch(60).fetchBatchSize(60), 600);
    expect(storage.maxInFlight).toBe(MAX_CLAIMS_IN_FLIGHT);
    expect(MAX_CLAIMS_IN_FLIGHT).toBeGreaterThan(1);
    expect(storage.maxHeld).toBeLessThanOrEqual(4 + 60);
  });

  it("without prefetch, claims one batch at a time", async () => {
    const storage = new SlowClaims(5);
    await runBacklog(storage, (c) => c.workerCount(4).prefetch(0), 200);
    expect(storage.maxInFlight).toBe(1);
    expect(storage.maxHeld).toBeLessThanOrEqual(4);
  });

  it("an idle server with prefetch sends one claim at a time", async () => {
    const storage = new SlowClaims(5);
    const server = testServer(
      new Storage(storage),
      new WorkerRegistry().register("w", () => {}),
      (c) => c.workerCount(4).prefetch(60).fetchBatchSize(60),
    );
    await server.start();
    await new Promise((r) => setTimeout(r, 300));
    await server.stop();
    expect(storage.claims).toBeGreaterThan(1);
    expect(storage.maxInFlight).toBe(1);
  });
});
