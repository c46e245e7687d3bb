/**
 * Durable steps through the engine (ctx.step, src/core/steps.ts), on every
 * backend and driver (conformance.ts runs this inside each backend's
 * describe): a server runs the workflows; the ManualClock is moved to end
 * sleeps and waits, so nothing here sleeps for real beyond polling.
 */
import { describe, expect, it } from "vitest";
import {
  BackgroundJobServer,
  DuplicateStepIdError,
  Job,
  JobState,
  RetryPolicy,
  ServerConfig,
  StepResultTooLargeError,
  WorkerRegistry,
  WorkerResult,
  silentLogger,
  type ManualClock,
  type Storage,
  type WorkerContext,
} from "../../src/index.js";

type Fresh = () => Promise<{ storage: Storage; clock: ManualClock }>;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function runStepsEngineConformance(fresh: Fresh): void {
  async function serve(storage: Storage, clock: ManualClock, registry: WorkerRegistry): Promise<BackgroundJobServer> {
    const server = new BackgroundJobServer(storage, registry, new ServerConfig("steps").workerCount(2).pollingInterval(10).clock(clock).logger(silentLogger));
    await server.start();
    return server;
  }
  const stateOf = (storage: Storage, id: string, state: JobState) => async () => {
    const j = await storage.get(id);
    return j?.state === state ? j : undefined;
  };

  describe("durable steps: the engine", () => {
    it("a five-step workflow: each step's work runs once across a failed try, a sleep and an event wait", async () => {
      const { storage, clock } = await fresh();
      const runs = { reserve: 0, charge: 0, ship: 0, handler: 0 };
      let declineOnce = true;
      const registry = new WorkerRegistry().register("order", async (job: Job, ctx: WorkerContext) => {
        runs.handler++;
        const order = job.arguments[0] as number;
        const reserved = await ctx.step.run("reserve", () => {
          runs.reserve++;
          return { sku: "A-1", order };
        });
        const charge = await ctx.step.run("charge", async () => {
          runs.charge++;
          if (declineOnce) {
            declineOnce = false;
            throw new Error("card declined, try again");
          }
          return `ch_${order}`;
        });
        await ctx.step.sleep("cool-off", 60_000);
        const approval = await ctx.step.waitForEvent<{ order: number; by: string }>("approval", {
          event: "order.approved",
          match: { order },
          timeout: 3_600_000,
        });
        const shipped = await ctx.step.run("ship", () => {
          runs.ship++;
          return { to: approval?.data.by };
        });
        return WorkerResult.success({ reserved, charge, shipped });
      });
      const id = await storage.enqueue(new Job("order", [7], { maxAttempts: 3, retry: RetryPolicy.fixed(0) }));
      const server = await serve(storage, clock, registry);
      try {
        // Try 1 fails in "charge"; try 2 completes it and goes to sleep for a minute.
        const sleeping = await until("the sleep", stateOf(storage, id, JobState.Scheduled));
        expect(sleeping.runAt!.getTime()).toBe(clock.now() + 60_000);
        expect(runs).toMatchObject({ reserve: 1, charge: 2, ship: 0 });
        expect(sleeping.attempts).toBe(1);
        expect(sleeping.steps.map((s) => [s.id, s.status])).toEqual([
          ["reserve", "completed"],
          ["charge", "completed"],
          ["cool-off", "waiting"],
        ]);
        expect(sleeping.steps[1]!.failures).toBe(1);
        // The minute passes: it wakes and waits for the approval.
        clock.advance(60_000);
        const waiting = await until("the event wait", async () => {
          const j = await storage.get(id);
          return j?.state === JobState.Scheduled && j.steps.some((s) => s.id === "approval") ? j : undefined;
        });
        expect(waiting.runAt!.getTime()).toBe(clock.now() + 3_600_000);
        expect(waiting.steps.find((s) => s.id === "cool-off")!.status).toBe("completed");
        // An event for another order is not delivered; the matching one is, and wakes it.
        expect(await storage.sendEvent("order.approved", { order: 8, by: "eve" })).toEqual({ delivered: [] });
        expect(await storage.sendEvent("order.shipped", { order: 7 })).toEqual({ delivered: [] });
        expect(await storage.sendEvent("order.approved", { order: 7, by: "ann" })).toEqual({ delivered: [id] });
        const done = await until("success", stateOf(storage, id, JobState.Succeeded));
        expect(done.result).toEqual({ reserved: { sku: "A-1", order: 7 }, charge: "ch_7", shipped: { to: "ann" } });
        expect(runs).toMatchObject({ reserve: 1, charge: 2, ship: 1 });
        expect(runs.handler).toBe(4);
        const approval = done.steps.find((s) => s.id === "approval")!;
        expect(approval).toMatchObject({
          kind: "wait",
          status: "completed",
          event: "order.approved",
          result: { name: "order.approved", data: { order: 7, by: "ann" } },
        });
        const reasons = done.history.map((h) => h.reason ?? "");
        for (const r of [
          /step "reserve" completed/,
          /step "charge" failed: card declined/,
          /sleeping: step "cool-off"/,
          /event "order.approved" received/,
          /step "ship" completed/,
        ])
          expect(reasons.some((x) => r.test(x))).toBe(true);
        // The event was taken: sending it again reaches no one.
        expect(await storage.sendEvent("order.approved", { order: 7, by: "ann" })).toEqual({ delivered: [] });
      } finally {
        await server.stop();
      }
    });

    it("waitForEvent returns null once its timeout passes", async () => {
      const { storage, clock } = await fresh();
      const registry = new WorkerRegistry().register("wait", async (_job, ctx) => {
        const ev = await ctx.step.waitForEvent("w", { event: "never", timeout: 5_000 });
        return WorkerResult.success({ got: ev });
      });
      const id = await storage.enqueue(new Job("wait"));
      const server = await serve(storage, clock, registry);
      try {
        await until("the wait", stateOf(storage, id, JobState.Scheduled));
        clock.advance(5_000);
        const done = await until("success", stateOf(storage, id, JobState.Succeeded));
        expect(done.result).toEqual({ got: null });
        expect(done.history.some((h) => /timed out waiting for event "never"/.test(h.reason ?? ""))).toBe(true);
        expect(await storage.sendEvent("never", {})).toEqual({ delivered: [] });
      } finally {
        await server.stop();
      }
    });

    it("an event sent after the job noted its wait and before its suspension was written still wakes it", async () => {
      const { storage, clock } = await fresh();
      const driver = storage.driver;
      const complete = driver.complete.bind(driver);
      let sent: Promise<unknown> | undefined;
      // The event goes out in the window: the job is still processing, so the sender can only store it.
      driver.complete = async (outcomes, now) => {
        if (!sent && outcomes.some((o) => o.state === JobState.Scheduled)) {
          sent = storage.sendEvent("go", { n: 1 });
          expect(await sent).toEqual({ delivered: [outcomes[0]!.id] });
        }
        return complete(outcomes, now);
      };
      const registry = new WorkerRegistry().register("race", async (_job, ctx) =>
        WorkerResult.success((await ctx.step.waitForEvent("w", { event: "go", timeout: 3_600_000 }))?.data),
      );
      const id = await storage.enqueue(new Job("race"));
      const server = await serve(storage, clock, registry);
      try {
        const done = await until("success", stateOf(storage, id, JobState.Succeeded));
        expect(done.result).toEqual({ n: 1 });
      } finally {
        await server.stop();
      }
    });

    it("a step's own retries suspend the job between tries without using the job's attempts", async () => {
      const { storage, clock } = await fresh();
      let tries = 0;
      const registry = new WorkerRegistry().register("flaky", async (_job, ctx) =>
        WorkerResult.success(
          await ctx.step.run(
            "call",
            () => {
              if (++tries < 3) throw new Error(`try ${tries} failed`);
              return tries;
            },
            { maxAttempts: 5, retry: RetryPolicy.fixed(1_000) },
          ),
        ),
      );
      const id = await storage.enqueue(new Job("flaky", [], { maxAttempts: 1 }));
      const server = await serve(storage, clock, registry);
      try {
        for (const n of [1, 2]) {
          const j = await until(`suspension ${n}`, async () => {
            const r = await storage.get(id);
            return r?.state === JobState.Scheduled && r.steps[0]?.failures === n ? r : undefined;
          });
          expect(j.runAt!.getTime()).toBe(clock.now() + 1_000);
          clock.advance(1_000);
        }
        const done = await until("success", stateOf(storage, id, JobState.Succeeded));
        expect(done.result).toBe(3);
        expect(done.attempts).toBe(1);
      } finally {
        await server.stop();
      }
    });

    it("a repeated step id and an oversized result fail the job at once, with typed errors", async () => {
      const { storage, clock } = await fresh();
      const registry = new WorkerRegistry()
        .register("twice", async (_job, ctx) => {
          await ctx.step.run("same", () => 1);
          await ctx.step.run("same", () => 2);
        })
        .register("huge", async (_job, ctx) => WorkerResult.success(await ctx.step.run("big", () => "x".repeat(100_000))));
      const twice = await storage.enqueue(new Job("twice", [], { maxAttempts: 5 }));
      const huge = await storage.enqueue(new Job("huge", [], { maxAttempts: 5 }));
      const server = await serve(storage, clock, registry);
      try {
        const a = await until("twice fails", stateOf(storage, twice, JobState.Failed));
        expect(a.error!.name).toBe(new DuplicateStepIdError("same").name);
        expect(a.attempts).toBe(1);
        const b = await until("huge fails", stateOf(storage, huge, JobState.Failed));
        expect(b.error!.name).toBe(new StepResultTooLargeError("big", "").name);
        expect(b.error!.message).toMatch(/the limit is/);
        expect(b.attempts).toBe(1);
      } finally {
        await server.stop();
      }
    });
  });
}
