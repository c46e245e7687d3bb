/**
 * A five-step durable workflow (reserve, charge, a sleep "cool-off", an
 * event wait "approval", ship) driven by the Worker's cron trigger in
 * workerd, one tick at a time on a ManualClock, on every store (D1,
 * Upstash, Neon, memory).
 *
 * Invocations die between steps and inside them. A killed invocation is
 * modelled as the store sees one: from the kill point on, nothing it sends
 * reaches the store (its calls never answer) and its code never goes on
 * (the worker hangs for good); its claim holds until the lease runs out.
 * Another kind is a claim whose holder never writes again (as in
 * cron.worker.test.ts). A step whose function is still running at the
 * invocation's deadline is aborted and the run released.
 *
 * Each step's function counts its side effect in the store's kv as its
 * last act, so a count is a completed run of the step; the isolate also
 * counts how often each function was entered. At the end each counter is
 * exactly 1, the job succeeded with the steps' results, and its history
 * holds each step transition once.
 *
 * The second test is the deadline between steps: a step whose p95 does not
 * fit what is left of the invocation is not started, and the next tick
 * goes on from it.
 */
import { expect, it } from "vitest";
import { Client } from "../../src/core/client.js";
import { ManualClock } from "../../src/core/clock.js";
import type { StorageDriver } from "../../src/core/driver.js";
import { Job, JobState } from "../../src/core/job.js";
import { WorkerRegistry, WorkerResult, type WorkerContext } from "../../src/core/registry.js";
import { Storage } from "../../src/core/storage.js";
import type { CloudflareConfig } from "../../src/adapters/runtime/cloudflare/index.js";
import { BACKENDS, makeStorage, suiteFor } from "./backends.js";
import { harness } from "./fixtures/worker.js";
import { api, runCron } from "./helpers.js";

const T0 = Date.UTC(2030, 0, 1, 0, 0, 30);
const LEASE_MS = 30_000;
const COOL_OFF_MS = 60_000;
const APPROVAL_TIMEOUT_MS = 3_600_000;
/** Counters live a month: longer than any test moves its clock. */
const COUNTER_WINDOW_MS = 30 * 24 * 3_600_000;

type RunStep = "reserve" | "charge" | "ship";
type KillPoint = "between reserve and charge" | "inside charge" | "between cool-off and approval" | "inside ship";

/**
 * The storage of an invocation that can be killed: it forwards every call
 * to the real store until `kill()`; from then on no call reaches the store
 * and none ever answers. `quiet()` waits for the calls made before the kill.
 */
function mortalStorage(storage: Storage, clock: ManualClock): { storage: Storage; kill(): void; quiet(): Promise<void> } {
  let dead = false;
  const inFlight = new Set<Promise<unknown>>();
  const driver = new Proxy(storage.driver, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (dead) return new Promise(() => {});
        const p = Promise.resolve((value as (...a: unknown[]) => unknown).apply(target, args));
        inFlight.add(p);
        const forget = () => void inFlight.delete(p);
        p.then(forget, forget);
        return p;
      };
    },
  }) as StorageDriver;
  return {
    storage: new Storage(driver, { clock }),
    kill: () => void (dead = true),
    quiet: async () => void (await Promise.allSettled([...inFlight])),
  };
}

/** Rejects when `signal` aborts: a step that runs until its invocation's deadline. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** The workflow, its counters, and what the next invocation does to it. */
class Workflow {
  /** Step functions entered, by job. */
  private readonly entered = new Map<string, Record<RunStep, number>>();
  /** Where the next invocation dies (once). */
  kill: KillPoint | undefined;
  /** A step whose function runs until the invocation's deadline (once). */
  hang: RunStep | undefined;
  /** Time each step's function takes on the test's clock. */
  takes: Partial<Record<RunStep, number>> = {};
  /** The invocation that dies at `kill`. */
  dying: { kill(): void; reached(): void } | undefined;

  constructor(
    readonly name: string,
    private readonly storage: Storage,
    private readonly clock: ManualClock,
  ) {}

  registry(): WorkerRegistry {
    return new WorkerRegistry().register(this.name, async (job: Job, ctx: WorkerContext) => {
      const order = job.arguments[0] as number;
      const reserved = await ctx.step.run("reserve", () => this.work(job, ctx, "reserve", { sku: "A-1" }));
      await this.point("between reserve and charge");
      const charge = await ctx.step.run("charge", () => this.work(job, ctx, "charge", `ch_${order}`));
      await ctx.step.sleep("cool-off", COOL_OFF_MS);
      await this.point("between cool-off and approval");
      const approval = await ctx.step.waitForEvent<{ by: string }>("approval", {
        event: "order.approved",
        match: { order },
        timeout: APPROVAL_TIMEOUT_MS,
      });
      const shipped = await ctx.step.run("ship", () => this.work(job, ctx, "ship", { by: approval?.data.by ?? null }));
      return WorkerResult.success({ reserved, charge, shipped });
    });
  }

  /** How often each step's function completed for `jobId`, from the store. */
  async completed(jobId: string): Promise<Record<RunStep, number>> {
    const count = async (step: RunStep) => Number((await this.storage.kv.get(counterKey(jobId, step))) ?? 0);
    return { reserve: await count("reserve"), charge: await count("charge"), ship: await count("ship") };
  }

  /** How often each step's function was entered for `jobId`, in this isolate. */
  started(jobId: string): Record<RunStep, number> {
    return { ...(this.entered.get(jobId) ?? { reserve: 0, charge: 0, ship: 0 }) };
  }

  private async work<T>(job: Job, ctx: WorkerContext, step: RunStep, result: T): Promise<T> {
    const entered = this.entered.get(job.id) ?? { reserve: 0, charge: 0, ship: 0 };
    entered[step]++;
    this.entered.set(job.id, entered);
    await this.point(`inside ${step}` as KillPoint);
    if (this.hang === step) {
      this.hang = undefined;
      await untilAborted(ctx.signal);
    }
    const ms = this.takes[step];
    if (ms) this.clock.advance(ms);
    // The side effect, kept where it outlives the invocation, as the function's last act.
    await this.storage.kv.hit(counterKey(job.id, step), COUNTER_WINDOW_MS);
    return result;
  }

  /** Dies here if this is the kill point: the invocation's code goes no further. */
  private point(where: KillPoint): Promise<void> | undefined {
    if (this.kill !== where) return undefined;
    const dying = this.dying;
    if (!dying) throw new Error(`the test set a kill point (${where}) without a dying invocation`);
    this.kill = undefined;
    dying.kill();
    dying.reached();
    return new Promise(() => {});
  }
}

const counterKey = (jobId: string, step: RunStep) => `wf-test:${jobId}:${step}`;

let workflows = 0;

async function setUp(backend: (typeof BACKENDS)[number], config: CloudflareConfig = {}) {
  const clock = new ManualClock(T0);
  const storage = await makeStorage(backend, clock);
  const base: CloudflareConfig = { clock, leaseMs: LEASE_MS, ...config };
  harness.reset(storage, base);
  // A name of its own: step time estimates are kept per job name, in the isolate too.
  const wf = new Workflow(`wf_order_${backend}_${++workflows}`, storage, clock);
  harness.registry = wf.registry();
  const defaults = harness.config;

  /** One cron tick, awaited to its end. */
  const tick = async (override: CloudflareConfig = {}) => {
    harness.config = { ...defaults, ...override };
    try {
      await runCron(clock);
    } finally {
      harness.config = defaults;
    }
  };

  /**
   * A cron tick that dies at `where`. It runs on a clock of its own, stopped
   * at the kill (a dead invocation measures nothing more), and is never
   * awaited: it does not end.
   */
  const killedTick = async (where: KillPoint) => {
    const stopped = new ManualClock(clock.now());
    const mortal = mortalStorage(storage, stopped);
    let reached!: () => void;
    const atKill = new Promise<"killed">((resolve) => (reached = () => resolve("killed")));
    wf.kill = where;
    wf.dying = { kill: mortal.kill, reached };
    harness.openStore = () => mortal.storage;
    harness.config = { ...defaults, clock: stopped };
    try {
      const run = runCron(stopped).then(
        () => "finished without reaching the kill point",
        (e: unknown) => `failed: ${String(e)}`,
      );
      expect(await Promise.race([atKill, run])).toBe("killed");
      await mortal.quiet();
    } finally {
      harness.openStore = undefined;
      harness.config = defaults;
      wf.dying = undefined;
      wf.kill = undefined;
    }
  };

  const read = async (id: string) => {
    const job = await storage.get(id);
    if (!job) throw new Error(`job ${id} is gone`);
    return job;
  };
  return { clock, storage, wf, tick, killedTick, read };
}

const stepsOf = (job: { steps: Array<{ id: string; status: string }> }) => job.steps.map((s) => `${s.id}:${s.status}`);
const reasons = (job: { history: Array<{ reason?: string }> }) => job.history.map((h) => h.reason ?? "");
const once = (job: { history: Array<{ reason?: string }> }, text: string) => reasons(job).filter((r) => r.startsWith(text)).length;

for (const backend of BACKENDS) {
  suiteFor(backend, `durable workflow over cron ticks on ${backend}`, () => {
    it("five steps over invocations killed between and inside steps and one cut off at its deadline: every step ran once and the workflow finished", async () => {
      const { clock, storage, wf, tick, killedTick, read } = await setUp(backend);
      const id = await storage.enqueue(new Job(wf.name, [7], { maxAttempts: 10 }));

      // 1. Killed between reserve and charge: reserve's result is stored, its claim holds.
      await killedTick("between reserve and charge");
      let job = await read(id);
      expect(job.state).toBe(JobState.Processing);
      expect(job.leaseOwner).toMatch(/^cf-cron-/);
      expect(stepsOf(job)).toEqual(["reserve:completed"]);
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 0, ship: 0 });
      const deadOwner = job.leaseOwner;

      // 2. A tick while the dead invocation's lease holds takes nothing.
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Processing);
      expect(job.leaseOwner).toBe(deadOwner);
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 0, ship: 0 });

      // 3. Past the lease, the next invocation is killed inside charge: reserve is not run again, charge did not complete.
      clock.advance(LEASE_MS + 1);
      await killedTick("inside charge");
      job = await read(id);
      expect(job.state).toBe(JobState.Processing);
      expect(job.leaseOwner).not.toBe(deadOwner);
      expect(stepsOf(job)).toEqual(["reserve:completed"]);
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 1, ship: 0 });
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 0, ship: 0 });

      // 4. Past that lease, charge runs into the invocation's deadline: aborted, the run released, the step not failed, no attempt used.
      clock.advance(LEASE_MS + 1);
      wf.hang = "charge";
      await tick({ budgetMs: 4000, safetyMs: 500 });
      job = await read(id);
      expect(wf.hang).toBeUndefined();
      expect(job.state).toBe(JobState.Enqueued);
      expect(job.leaseOwner).toBeUndefined();
      expect(job.history.at(-1)!.reason).toContain("invocation deadline");
      expect(stepsOf(job)).toEqual(["reserve:completed"]);
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 2, ship: 0 });
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 0, ship: 0 });
      const attemptsBefore = job.attempts;

      // 5. The next tick completes charge and the run sleeps: the job is scheduled for the end of the sleep.
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Scheduled);
      expect(job.runAt?.getTime()).toBe(clock.now() + COOL_OFF_MS);
      expect(job.attempts).toBe(attemptsBefore);
      expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);
      expect(job.steps[1]).toMatchObject({ result: "ch_7" });
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 1, ship: 0 });

      // 6. Half-way through the sleep a tick leaves it alone.
      clock.advance(COOL_OFF_MS / 2);
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Scheduled);
      expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);

      // 7. The sleep is over: the invocation that goes on is killed between the sleep and the wait.
      clock.advance(COOL_OFF_MS / 2);
      await killedTick("between cool-off and approval");
      job = await read(id);
      expect(job.state).toBe(JobState.Processing);
      expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:completed"]);

      // 8. Past its lease, a tick runs on to the wait: the job is scheduled until the wait's timeout.
      clock.advance(LEASE_MS + 1);
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Scheduled);
      expect(job.runAt?.getTime()).toBe(clock.now() + APPROVAL_TIMEOUT_MS);
      expect(job.steps.at(-1)).toMatchObject({ id: "approval", kind: "wait", status: "waiting", event: "order.approved", match: { order: 7 } });
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 3, ship: 0 });

      // 9. Events through the Worker's API: another order's approval reaches nobody; this order's wakes the job, once.
      const other = await api<{ delivered: string[] }>("/api/events", { body: { name: "order.approved", data: { order: 8, by: "bob" } } });
      expect(other).toEqual({ status: 202, body: { name: "order.approved", delivered: [] } });
      const sent = await api<{ delivered: string[] }>("/api/events", { body: { name: "order.approved", data: { order: 7, by: "ann" } } });
      expect(sent).toEqual({ status: 202, body: { name: "order.approved", delivered: [id] } });
      const again = await api<{ delivered: string[] }>("/api/events", { body: { name: "order.approved", data: { order: 7, by: "eve" } } });
      expect(again.body.delivered).toEqual([]);
      job = await read(id);
      expect(job.state).toBe(JobState.Enqueued);
      expect(job.history.at(-1)!.reason).toBe('event "order.approved" received');

      // 10. An invocation claims the woken job and is killed before it writes anything (a claim whose holder never writes again).
      const [claimed] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "cf-queue-killed", leaseMs: LEASE_MS, now: clock.now() });
      expect(claimed?.id).toBe(id);
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Processing);
      expect(job.leaseOwner).toBe("cf-queue-killed");
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 3, ship: 0 });

      // 11. Past its lease, the next invocation takes the event and is killed inside ship.
      clock.advance(LEASE_MS + 1);
      await killedTick("inside ship");
      job = await read(id);
      expect(job.state).toBe(JobState.Processing);
      expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:completed", "approval:completed"]);
      expect(job.steps[3]!.result).toMatchObject({ name: "order.approved", data: { order: 7, by: "ann" } });
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 3, ship: 1 });
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 1, ship: 0 });

      // 12. Past that lease, a tick finishes the workflow.
      clock.advance(LEASE_MS + 1);
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Succeeded);
      expect(job.result).toEqual({ reserved: { sku: "A-1" }, charge: "ch_7", shipped: { by: "ann" } });
      expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:completed", "approval:completed", "ship:completed"]);

      // Every step's work done exactly once, though charge was entered three times and ship twice.
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 1, ship: 1 });
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 3, ship: 2 });

      // The history: each step transition once, the five lost leases, the release at the deadline, the wake-up.
      for (const transition of [
        'step "reserve" completed',
        'step "charge" completed',
        'step "cool-off" sleeps until',
        'step "cool-off" slept',
        'step "approval" waits for event "order.approved"',
        'step "approval" received event "order.approved"',
        'step "ship" completed',
        'event "order.approved" received',
        "released: invocation deadline",
        "succeeded",
      ])
        expect([transition, once(job, transition)]).toEqual([transition, 1]);
      expect(once(job, "lease expired")).toBe(5);
      expect(reasons(job).filter((r) => r.startsWith("step ")).length).toBe(7);
      expect(job.history.filter((h) => h.state === JobState.Scheduled).map((h) => h.reason)).toEqual([
        expect.stringMatching(/^sleeping: step "cool-off"/),
        expect.stringMatching(/^waiting: step "approval" for event "order.approved"/),
      ]);
    });

    it("a step whose p95 does not fit what is left of the invocation is not started; the next tick goes on from it", async () => {
      const { clock, storage, wf, tick, read } = await setUp(backend, { budgetMs: 60_000, safetyMs: 1000 });
      // An earlier order teaches the store and the isolate what each step takes: charge 25 s (under half the budget: a release before it counts no attempt).
      wf.takes = { reserve: 5_000, charge: 25_000 };
      const earlier = await storage.enqueue(new Job(wf.name, [1], { maxAttempts: 10 }));
      await tick();
      expect(stepsOf(await read(earlier))).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);
      expect((await storage.driver.readEstimates())[`${wf.name}#charge`]).toBe(25_000);

      // This order's reserve takes 35 s of the tick's 59: charge's 25 s no longer fit, so it is not started.
      wf.takes = { reserve: 35_000, charge: 25_000 };
      const id = await storage.enqueue(new Job(wf.name, [2], { maxAttempts: 10 }));
      await tick();
      let job = await read(id);
      expect(job.state).toBe(JobState.Enqueued);
      expect(job.attempts).toBe(0);
      expect(stepsOf(job)).toEqual(["reserve:completed"]);
      expect(once(job, 'released between steps: step "charge" (p95 25000 ms) would not finish')).toBe(1);
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 0, ship: 0 });
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 0, ship: 0 });

      // The next tick, with its whole budget, goes on from charge.
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Scheduled);
      expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 1, ship: 0 });

      // Past the sleep both orders wait; the approval sent by a Client wakes this one only, and a tick finishes it.
      clock.advance(COOL_OFF_MS);
      await tick();
      for (const j of [earlier, id]) expect((await read(j)).steps.at(-1)).toMatchObject({ id: "approval", status: "waiting" });
      expect(await new Client({ storage }).sendEvent("order.approved", { order: 2, by: "cy" })).toEqual({ delivered: [id] });
      await tick();
      job = await read(id);
      expect(job.state).toBe(JobState.Succeeded);
      expect(job.result).toEqual({ reserved: { sku: "A-1" }, charge: "ch_2", shipped: { by: "cy" } });
      expect(await wf.completed(id)).toEqual({ reserve: 1, charge: 1, ship: 1 });
      expect(wf.started(id)).toEqual({ reserve: 1, charge: 1, ship: 1 });
      const waiting = await read(earlier);
      expect(waiting.state).toBe(JobState.Scheduled);
      expect(await wf.completed(earlier)).toEqual({ reserve: 1, charge: 1, ship: 0 });
    });
  });
}
