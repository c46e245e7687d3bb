/**
 * A five-step durable workflow (reserve, charge, a sleep "cool-off", an
 * event wait "approval", ship; fixtures/five-step-workflow.ts) through the
 * Lambda handlers (createLambdaHandlers) with the events AWS sends, on
 * Redis and PostgreSQL.
 *
 * Killed invocations are real: a process runs the scheduled handler
 * (fixtures/five-step-invocation.ts) and the test SIGKILLs it between
 * reserve and charge, inside charge, between the sleep and the wait, and
 * inside ship. Another invocation runs charge into its deadline (the
 * remaining time Lambda reports) and is released. The invocations run on a
 * timeline of clock offsets (SkewedClock), each past the last one's lease
 * or the sleep, so no test waits for a lease. The event comes through the
 * Function URL (POST /api/events). Each step's function counts in the
 * store that it was entered and that it completed (the killed processes'
 * memory is gone): at the end every completed count is exactly 1 and the
 * workflow succeeded.
 *
 * The second test is the deadline between steps: a step whose p95 does not
 * fit what is left of the invocation is not started, and the next
 * invocation goes on from it; the event is sent by a Client and its
 * wake-up delivered by the SQS handler. It runs on memory too.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Client, Job, JobState, Storage, memoryBackend, silentLogger, systemClock, type WakeUp } from "../../src/index.js";
import { SkewedClock } from "../../src/core/clock.js";
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { encodeWakeUp } from "../../src/adapters/runtime/serverless/wake-up.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { functionUrlEvent, lambdaContext, scheduledEvent, sqsEvent } from "./aws-events.js";
import { COOL_OFF_MS, fiveStepWorkflow, stepCounts, type KillPoint, type WorkflowControl } from "./fixtures/five-step-workflow.js";

const LEASE_MS = 30_000;
/** From one invocation to the next on the timeline: past a lease, with room for the real seconds a process takes. */
const PAST_LEASE_MS = LEASE_MS + 15_000;
const TOKEN = "lambda-workflow-token-0123456789abcdef";
const FIXTURE = join(import.meta.dirname, "fixtures", "five-step-invocation.ts");

/** Runs a scheduled invocation in a process of its own, at `offsetMs` on the timeline, until it reaches `at`; SIGKILLs it there. Resolves with the job id. */
function killedInvocation(at: KillPoint, offsetMs: number, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, ...env, QML_WF_KILL_AT: at, QML_WF_OFFSET_MS: String(offsetMs), QML_WF_LEASE_MS: String(LEASE_MS) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d) => (err += String(d)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += String(d);
      const m = new RegExp(`AT ${at} (\\S+)\\n`).exec(out);
      if (m) {
        child.kill("SIGKILL");
        void exited.then(() => resolve(m[1]!));
      }
    });
    child.once("exit", (code) => {
      if (!new RegExp(`AT ${at} `).test(out)) reject(new Error(`the invocation exited (${code}) before reaching ${at}: ${out}${err}`));
    });
  });
}

const stepsOf = (job: { steps: Array<{ id: string; status: string }> }) => job.steps.map((s) => `${s.id}:${s.status}`);
const reasons = (job: { history: Array<{ reason?: string }> }) => job.history.map((h) => h.reason ?? "");
const count = (job: { history: Array<{ reason?: string }> }, text: string) => reasons(job).filter((r) => r.startsWith(text)).length;

async function workflowOverKilledInvocations(storage: Storage, name: string, childEnv: Record<string, string>): Promise<void> {
  const env = { ...childEnv, QML_WF_JOB: name };
  const control: WorkflowControl = {};
  const registry = fiveStepWorkflow(name, storage, control);
  /** A warm container's handlers at `offsetMs` on the timeline. */
  const at = (offsetMs: number) => {
    const clock = new SkewedClock(systemClock, offsetMs);
    const h = createLambdaHandlers({
      storage: () => storage,
      registry,
      clock,
      leaseMs: LEASE_MS,
      safetyMs: 200,
      logger: silentLogger,
      http: { auth: { adminTokens: [TOKEN] } },
    });
    return { clock, h };
  };
  /** An EventBridge tick at `offsetMs`, with `remainingMs` of the function's time. */
  const tick = (offsetMs: number, remainingMs = 20_000) => {
    const { clock, h } = at(offsetMs);
    return h.scheduleHandler(scheduledEvent(new Date(clock.now())), lambdaContext(remainingMs, clock));
  };
  /** An event posted to the Function URL. */
  const post = async (offsetMs: number, data: unknown) => {
    const res = await at(offsetMs).h.httpHandler(
      functionUrlEvent({
        method: "POST",
        path: "/api/events",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "order.approved", data }),
      }),
      lambdaContext(5000),
    );
    return { status: res.statusCode, body: JSON.parse(res.body) as unknown };
  };

  const id = await storage.enqueue(new Job(name, [7], { maxAttempts: 10 }));
  const read = async () => (await storage.get(id))!;
  const counts = () => stepCounts(storage, id);
  let t = 0;

  // 1. Killed between reserve and charge: reserve's result is stored, the dead invocation's claim holds.
  expect(await killedInvocation("between-reserve-and-charge", t, env)).toBe(id);
  let job = await read();
  expect(job.state).toBe(JobState.Processing);
  expect(job.leaseOwner).toMatch(/^lambda:qml-doomed:/);
  expect(stepsOf(job)).toEqual(["reserve:completed"]);
  expect(await counts()).toEqual({ entered: { reserve: 1, charge: 0, ship: 0 }, completed: { reserve: 1, charge: 0, ship: 0 } });
  const firstOwner = job.leaseOwner;

  // 2. A tick while that lease holds takes nothing.
  expect(await tick(t)).toMatchObject({ reclaimed: 0, processed: 0 });
  job = await read();
  expect(job.state).toBe(JobState.Processing);
  expect(job.leaseOwner).toBe(firstOwner);

  // 3. Past the lease, the next invocation is killed inside charge: reserve is not run again, charge did not complete.
  t += PAST_LEASE_MS;
  expect(await killedInvocation("inside-charge", t, env)).toBe(id);
  job = await read();
  expect(job.state).toBe(JobState.Processing);
  expect(job.leaseOwner).toMatch(/^lambda:qml-doomed:/);
  expect(job.leaseOwner).not.toBe(firstOwner);
  expect(stepsOf(job)).toEqual(["reserve:completed"]);
  expect(await counts()).toEqual({ entered: { reserve: 1, charge: 1, ship: 0 }, completed: { reserve: 1, charge: 0, ship: 0 } });

  // 4. Past that lease, charge runs into the invocation's deadline (2.5 s left): aborted and released; the step did not fail.
  // (Having had its whole budget, the run counts as an attempt: Processor.cutOff.)
  t += PAST_LEASE_MS;
  control.hang = "charge";
  expect(await tick(t, 2500)).toMatchObject({ reclaimed: 1, processed: 1, released: 1, failed: 0, retried: 0 });
  job = await read();
  expect(control.hang).toBeUndefined();
  expect(job.state).toBe(JobState.Enqueued);
  expect(job.history.at(-1)!.reason).toMatch(/^released: cut off at the invocation's deadline/);
  expect(stepsOf(job)).toEqual(["reserve:completed"]);
  expect(await counts()).toEqual({ entered: { reserve: 1, charge: 2, ship: 0 }, completed: { reserve: 1, charge: 0, ship: 0 } });

  // 5. The next invocation completes charge and the run sleeps: scheduled for the end of the sleep.
  expect(await tick(t)).toMatchObject({ processed: 1, failed: 0 });
  job = await read();
  expect(job.state).toBe(JobState.Scheduled);
  expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);
  expect(job.runAt?.getTime()).toBe(job.steps[2]!.until);
  expect(job.steps[2]!.until! - job.steps[2]!.startedAt).toBe(COOL_OFF_MS);
  expect(await counts()).toEqual({ entered: { reserve: 1, charge: 3, ship: 0 }, completed: { reserve: 1, charge: 1, ship: 0 } });

  // 6. Half-way through the sleep a tick leaves it alone.
  expect(await tick(t + COOL_OFF_MS / 2)).toMatchObject({ promoted: 0, processed: 0 });
  expect((await read()).state).toBe(JobState.Scheduled);

  // 7. After the sleep, the invocation that goes on is killed between the sleep and the wait.
  t += COOL_OFF_MS + 15_000;
  expect(await killedInvocation("between-cool-off-and-approval", t, env)).toBe(id);
  job = await read();
  expect(job.state).toBe(JobState.Processing);
  expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:completed"]);

  // 8. Past its lease, a tick runs on to the wait: scheduled until the wait's timeout.
  t += PAST_LEASE_MS;
  expect(await tick(t)).toMatchObject({ reclaimed: 1, processed: 1 });
  job = await read();
  expect(job.state).toBe(JobState.Scheduled);
  expect(job.steps.at(-1)).toMatchObject({ id: "approval", kind: "wait", status: "waiting", event: "order.approved", match: { order: 7 } });
  expect(job.runAt?.getTime()).toBe(job.steps.at(-1)!.until);

  // 9. Events through the Function URL: another order's approval reaches nobody; this order's wakes the job, once.
  expect(await post(t, { order: 8, by: "bob" })).toEqual({ status: 202, body: { name: "order.approved", delivered: [] } });
  expect(await post(t, { order: 7, by: "ann" })).toEqual({ status: 202, body: { name: "order.approved", delivered: [id] } });
  expect(await post(t, { order: 7, by: "eve" })).toEqual({ status: 202, body: { name: "order.approved", delivered: [] } });
  job = await read();
  expect(job.state).toBe(JobState.Enqueued);
  expect(job.history.at(-1)!.reason).toBe('event "order.approved" received');

  // 10. The invocation that takes the woken job is killed inside ship, after the wait took the event.
  expect(await killedInvocation("inside-ship", t, env)).toBe(id);
  job = await read();
  expect(job.state).toBe(JobState.Processing);
  expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:completed", "approval:completed"]);
  expect(job.steps[3]!.result).toMatchObject({ name: "order.approved", data: { order: 7, by: "ann" } });
  expect(await counts()).toEqual({ entered: { reserve: 1, charge: 3, ship: 1 }, completed: { reserve: 1, charge: 1, ship: 0 } });

  // 11. Past that lease, a tick finishes the workflow.
  t += PAST_LEASE_MS;
  expect(await tick(t)).toMatchObject({ reclaimed: 1, processed: 1, succeeded: 1 });
  job = await read();
  expect(job.state).toBe(JobState.Succeeded);
  expect(job.result).toEqual({ reserved: { sku: "A-1" }, charge: "ch_7", shipped: { by: "ann" } });
  expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:completed", "approval:completed", "ship:completed"]);

  // Every step's work done exactly once, though charge was entered three times and ship twice.
  expect(await counts()).toEqual({ entered: { reserve: 1, charge: 3, ship: 2 }, completed: { reserve: 1, charge: 1, ship: 1 } });
  // The history: each step transition once, the four killed invocations' leases, the release at the deadline, the wake-up.
  for (const transition of [
    'step "reserve" completed',
    'step "charge" completed',
    'step "cool-off" sleeps until',
    'step "cool-off" slept',
    'step "approval" waits for event "order.approved"',
    'step "approval" received event "order.approved"',
    'step "ship" completed',
    'event "order.approved" received',
    "released: cut off at the invocation's deadline",
    "succeeded",
  ])
    expect([transition, count(job, transition)]).toEqual([transition, 1]);
  expect(count(job, "released")).toBe(1);
  expect(count(job, "lease expired")).toBe(4);
  const killed = new Set(job.history.filter((h) => h.worker?.startsWith("lambda:qml-doomed:")).map((h) => h.worker!.split("/")[0]));
  expect(killed.size).toBe(4);
}

async function stepOverTheDeadline(storage: Storage, name: string): Promise<void> {
  const clock = new SkewedClock(systemClock, 0);
  const control: WorkflowControl = { clock, takes: { reserve: 5_000, charge: 25_000 } };
  const registry = fiveStepWorkflow(name, storage, control);
  const h = createLambdaHandlers({ storage: () => storage, registry, clock, leaseMs: LEASE_MS, safetyMs: 1000, logger: silentLogger });
  /** A tick with a minute of the function's time (59 s for jobs). */
  const tick = () => h.scheduleHandler(scheduledEvent(new Date(clock.now())), lambdaContext(60_000, clock));
  const read = async (id: string) => (await storage.get(id))!;

  // An earlier order teaches the store and this container what each step takes: charge 25 s (under half the budget: a release before it counts no attempt).
  const earlier = await storage.enqueue(new Job(name, [1], { maxAttempts: 10 }));
  await tick();
  expect(stepsOf(await read(earlier))).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);
  expect((await storage.driver.readEstimates())[`${name}#charge`]).toBeGreaterThanOrEqual(25_000);

  // This order's reserve takes 35 s of the 59: charge's p95 no longer fits, so it is not started.
  control.takes = { reserve: 35_000, charge: 25_000 };
  const id = await storage.enqueue(new Job(name, [2], { maxAttempts: 10 }));
  await tick();
  let job = await read(id);
  expect(job.state).toBe(JobState.Enqueued);
  expect(job.attempts).toBe(0);
  expect(stepsOf(job)).toEqual(["reserve:completed"]);
  expect(reasons(job).filter((r) => /^released between steps: step "charge" \(p95 \d+ ms\) would not finish/.test(r))).toHaveLength(1);
  expect(await stepCounts(storage, id)).toEqual({ entered: { reserve: 1, charge: 0, ship: 0 }, completed: { reserve: 1, charge: 0, ship: 0 } });

  // The next invocation, with its whole time, goes on from charge.
  await tick();
  job = await read(id);
  expect(job.state).toBe(JobState.Scheduled);
  expect(stepsOf(job)).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);
  expect(await stepCounts(storage, id)).toEqual({ entered: { reserve: 1, charge: 1, ship: 0 }, completed: { reserve: 1, charge: 1, ship: 0 } });

  // Past the sleep both orders wait. A Client sends this order's approval; its wake-up, delivered by SQS, finishes the job.
  clock.offsetMs += COOL_OFF_MS;
  await tick();
  for (const j of [earlier, id]) expect((await read(j)).steps.at(-1)).toMatchObject({ id: "approval", status: "waiting" });
  const wakeUps: WakeUp[] = [];
  const client = new Client({ storage, notifier: { notify: async (w) => void wakeUps.push(...w) } });
  expect(await client.sendEvent("order.approved", { order: 2, by: "cy" })).toEqual({ delivered: [id] });
  expect(wakeUps.map((w) => w.id)).toEqual([id]);
  const sqs = sqsEvent(wakeUps.map((w) => ({ body: encodeWakeUp({ queue: w.queue, ids: [w.id], runAt: w.runAt }) })));
  expect(await h.sqsHandler(sqs, lambdaContext(60_000, clock))).toEqual({ batchItemFailures: [] });
  job = await read(id);
  expect(job.state).toBe(JobState.Succeeded);
  expect(job.result).toEqual({ reserved: { sku: "A-1" }, charge: "ch_2", shipped: { by: "cy" } });
  expect(await stepCounts(storage, id)).toEqual({ entered: { reserve: 1, charge: 1, ship: 1 }, completed: { reserve: 1, charge: 1, ship: 1 } });
  // The earlier order still waits for its own approval.
  expect((await read(earlier)).state).toBe(JobState.Scheduled);
  expect(await stepCounts(storage, earlier)).toEqual({ entered: { reserve: 1, charge: 1, ship: 0 }, completed: { reserve: 1, charge: 1, ship: 0 } });
}

describe("a durable workflow through the Lambda handlers, on memory", () => {
  it("a step whose p95 does not fit what is left of the invocation is not started; the next invocation goes on from it", async () => {
    await stepOverTheDeadline(new Storage(memoryBackend()), "order_p95_memory");
  });
});

const keys = prefixes("lambda-wf5");
describeWithService("redis", await serviceUp("redis"), "a durable workflow through the Lambda handlers, on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  const withStorage = async (fn: (storage: Storage, ns: string) => Promise<void>) => {
    const ns = keys.next();
    const storage = new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(ns)));
    try {
      await storage.migrate();
      await fn(storage, ns);
    } finally {
      await storage.close();
    }
  };
  it("five steps over invocations killed (SIGKILL) between and inside steps and one cut off at its deadline: every step ran once and it finished", async () => {
    await withStorage((storage, ns) =>
      workflowOverKilledInvocations(storage, "order_kill_redis", { QML_WF_BACKEND: "redis", QML_WF_URL: REDIS_URL, QML_WF_NAMESPACE: ns }),
    );
  }, 90_000);
  it("a step whose p95 does not fit what is left of the invocation is not started; the next invocation goes on from it", async () => {
    await withStorage((storage) => stepOverTheDeadline(storage, "order_p95_redis"));
  });
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "a durable workflow through the Lambda handlers, on postgres", () => {
  afterAll(() => janitor.dropAll());
  const withStorage = async (fn: (storage: Storage, schema: string) => Promise<void>) => {
    const schema = janitor.next();
    const storage = new Storage(
      postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withMaxConnections(2).withAutoMigrate(true)),
    );
    try {
      await fn(storage, schema);
    } finally {
      await storage.close();
    }
  };
  it("five steps over invocations killed (SIGKILL) between and inside steps and one cut off at its deadline: every step ran once and it finished", async () => {
    await withStorage((storage, schema) =>
      workflowOverKilledInvocations(storage, "order_kill_postgres", { QML_WF_BACKEND: "postgres", QML_WF_URL: DATABASE_URL, QML_WF_NAMESPACE: schema }),
    );
  }, 90_000);
  it("a step whose p95 does not fit what is left of the invocation is not started; the next invocation goes on from it", async () => {
    await withStorage((storage) => stepOverTheDeadline(storage, "order_p95_postgres"));
  });
});
