/**
 * The serverless consumer's contract, one case per row of its decision
 * table (src/adapters/runtime/serverless/consumer.ts) and per failure
 * path, run by each runtime through its own platform events: in workerd
 * through the Queue handler (test/workers/consumer.worker.test.ts), and
 * through the Lambda handlers with real SQS and EventBridge event shapes
 * (test/lambda/*.test.ts), on every store each of them runs on.
 *
 * A runtime joins by giving a harness (as a backend joins the storage
 * suite in test/storage/conformance.ts): it starts its runtime over a
 * fresh store, hands it wake-ups as its platform would, and says what the
 * platform was told (acked, or back on the queue) and what the consumer
 * decided (from its "wake-up settled" log lines). Retry delays are checked
 * where the platform carries one per message (Workers); SQS brings a
 * message back after its visibility timeout instead.
 *
 * Must run in workerd too: Web Standards only, no node: import.
 */
import { afterEach, expect, it } from "vitest";
import { ManualClock, type Clock } from "../../src/core/clock.js";
import { createClient, type Notifier, type WakeUp } from "../../src/core/client.js";
import type { StorageDriver } from "../../src/core/driver.js";
import { StorageUnavailableError } from "../../src/core/errors.js";
import { Job, JobState } from "../../src/core/job.js";
import type { Logger } from "../../src/core/logger.js";
import { WorkerRegistry, WorkerResult } from "../../src/core/registry.js";
import { Storage } from "../../src/core/storage.js";
import type { ServerlessConfig } from "../../src/adapters/runtime/serverless/config.js";
import type { Decision } from "../../src/adapters/runtime/serverless/consumer.js";
import { wakeUpMessage, type WakeUpMessage } from "../../src/adapters/runtime/serverless/wake-up.js";
import { memoryBackend } from "../../src/adapters/storage/memory/index.js";

/** A wake-up the runtime's notifier sent, as it went on the wire. */
export interface SentWakeUp {
  message: WakeUpMessage;
  delaySeconds: number;
}

/** What became of one message. */
export interface Answer {
  /** What the platform was told: acknowledged, or back on the queue (retry, dead-letter). */
  settled: "ack" | "back";
  /** The decision the consumer logged for it. */
  decision: Decision | undefined;
  /** The retry delay, where the platform carries one (Workers). */
  delaySeconds?: number;
}

export interface DeliverOptions {
  /** Delivery attempt (default 1). */
  attempts?: number;
  /** When the message was first sent, on the test's clock (default a minute ago). */
  sentAt?: number;
}

export interface RuntimeUnderTest {
  /** A fresh store: the one the runtime works on, unless `open` gave it another. */
  storage: Storage;
  /** Hands `bodies` (wake-ups, or anything else) to the consumer as one platform batch. */
  deliver(bodies: unknown[], options?: DeliverOptions): Promise<Answer[]>;
  /** One scheduled invocation (cron, EventBridge), awaited to its end. */
  schedule(): Promise<void>;
  /** Wake-ups the runtime's notifier sent so far. */
  readonly sent: SentWakeUp[];
  /** Log lines the runtime wrote. */
  readonly logs: LogLine[];
}

export interface StartOptions {
  clock: ManualClock;
  registry: WorkerRegistry;
  config?: ServerlessConfig;
  /** Builds the runtime's store instead of the harness's fresh one (a store that fails). */
  open?: () => Storage | Promise<Storage>;
}

export interface ConsumerHarness {
  /** The notifier's longest delay on this platform (Queues 12 h, SQS 15 min). */
  horizonMs: number;
  /** Whether a retried message carries its own delay (Workers yes, SQS no). */
  retryDelays: boolean;
  /** A fresh, migrated, isolated store on `clock`. */
  freshStorage(clock: Clock): Promise<Storage>;
  /** Starts the runtime over a fresh store (or over what `options.open` builds). */
  start(options: StartOptions): Promise<RuntimeUnderTest>;
  /** A store that answers nothing (default: every call refused as unavailable). */
  unreachableStorage?(): Storage;
  /** Releases what the last test's runtime and stores hold (after each test). */
  cleanup?(): Promise<void>;
}

export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every line (children share the list). */
export function recordingLogger(lines: LogLine[], fields: Record<string, unknown> = {}): Logger {
  const at =
    (level: LogLine["level"]) =>
    (msg: string, f: Record<string, unknown> = {}) =>
      void lines.push({ level, msg, fields: { ...fields, ...f } });
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (f) => recordingLogger(lines, { ...fields, ...f }) };
}

/** The decision the consumer logged for each message id. */
export function decisionsIn(lines: LogLine[]): Map<string, Decision> {
  const out = new Map<string, Decision>();
  for (const l of lines) if (l.msg === "wake-up settled") out.set(String(l.fields.messageId), l.fields.decision as Decision);
  return out;
}

/** A store that is down: every driver call is refused as unavailable. */
export function unreachableStorage(): Storage {
  const driver = memoryBackend();
  const down = new Proxy(driver, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function" || prop === "close") return v;
      return () => Promise.reject(new StorageUnavailableError("store down (test)"));
    },
  }) as StorageDriver;
  return new Storage(down);
}

const T0 = Date.UTC(2030, 0, 1);
const SECOND = 1000;

export function runConsumerSuite(label: string, h: ConsumerHarness): void {
  const wake = (queue: string, ids: string[], runAt = T0) => wakeUpMessage(queue, ids, runAt);
  const has = (id: string) => (w: SentWakeUp) => w.message.ids.includes(id);
  afterEach(async () => {
    await h.cleanup?.();
  });

  async function start(o: { registry?: WorkerRegistry; config?: ServerlessConfig; open?: () => Storage | Promise<Storage> } = {}) {
    const clock = new ManualClock(T0);
    const registry =
      o.registry ??
      new WorkerRegistry()
        .register("echo", (job) => WorkerResult.success({ echo: job.arguments }))
        .register("doomed", () => WorkerResult.failure(new Error("bad input")));
    const rt = await h.start({ clock, registry, ...(o.config ? { config: o.config } : {}), ...(o.open ? { open: o.open } : {}) });
    return { clock, rt, storage: rt.storage };
  }

  // ------------------------------------------------------------------ ack

  it(`${label}: a due job runs in the consumer's tick, then its wake-up is acked`, async () => {
    const { rt, storage } = await start();
    const id = await storage.enqueue(new Job("echo", ["q"]));
    expect(await rt.deliver([wake("default", [id])])).toEqual([{ settled: "ack", decision: "ack" }]);
    expect(await storage.get(id)).toMatchObject({ state: JobState.Succeeded, result: { echo: ["q"] }, attempts: 1 });
  });

  it(`${label}: wake-ups for finished (succeeded, failed, deleted) and gone jobs are acked`, async () => {
    const { rt, storage } = await start();
    const [done, doomed] = await storage.enqueue([new Job("echo"), new Job("doomed")]);
    await rt.deliver([wake("default", [done!, doomed!])]);
    const deleted = await storage.enqueue(new Job("echo", [], { delay: 60 * SECOND }));
    await storage.delete(deleted);
    expect((await storage.get(doomed!))?.state).toBe(JobState.Failed);
    const sent = rt.sent.length;

    const answers = await rt.deliver([
      wake("default", [done!]),
      wake("default", [doomed!]),
      wake("default", [deleted]),
      wake("default", [crypto.randomUUID()]),
    ]);
    expect(answers).toEqual(Array.from({ length: 4 }, () => ({ settled: "ack", decision: "ack" })));
    expect(rt.sent.slice(sent)).toEqual([]);
  });

  it(`${label}: a job not visible yet, on a first delivery sent moments ago, is retried in 2 s (a replica may lag the insert)`, async () => {
    const { rt, clock } = await start();
    const [answer] = await rt.deliver([wake("default", [crypto.randomUUID()])], { sentAt: clock.now() - SECOND });
    expect(answer).toMatchObject({ settled: "back", decision: "retry" });
    if (h.retryDelays) expect(answer!.delaySeconds).toBe(2);
    // Once: the second delivery of a job still absent is acked.
    expect(await rt.deliver([wake("default", [crypto.randomUUID()])], { attempts: 2, sentAt: clock.now() - SECOND })).toEqual([
      { settled: "ack", decision: "ack" },
    ]);
  });

  it(`${label}: a job in a paused queue is not run and its wake-up is acked; resumed, the scheduled tick runs it`, async () => {
    const { rt, storage } = await start();
    await storage.pauseQueue("default");
    const id = await storage.enqueue(new Job("echo", ["p"]));
    expect(await rt.deliver([wake("default", [id])])).toEqual([{ settled: "ack", decision: "ack" }]);
    expect((await storage.get(id))?.state).toBe(JobState.Enqueued);
    await storage.resumeQueue("default");
    await rt.schedule();
    expect((await storage.get(id))?.state).toBe(JobState.Succeeded);
  });

  it(`${label}: a job waiting for a slot of its concurrency key is acked, not retried; the next claim after the slot frees runs it`, async () => {
    const { rt, storage, clock } = await start();
    const limit = { concurrency: { key: "customer:7", limit: 1 } };
    await storage.enqueue(new Job("echo", ["first"], limit));
    const [held] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "elsewhere", leaseMs: 30 * SECOND, now: clock.now() });
    const id = await storage.enqueue(new Job("echo", ["second"], limit));
    expect(await rt.deliver([wake("default", [id])])).toEqual([{ settled: "ack", decision: "ack" }]);
    expect((await storage.get(id))?.state).toBe(JobState.Enqueued);
    await storage.driver.complete([{ id: held!.id, token: held!.leaseToken, state: JobState.Succeeded, reason: "done", worker: "elsewhere" }], clock.now());
    await rt.schedule();
    expect((await storage.get(id))?.state).toBe(JobState.Succeeded);
  });

  it(`${label}: a job the rate limit put off gets a fresh wake-up for its start, then the message is acked`, async () => {
    const { rt, storage, clock } = await start();
    const rate = { rateLimit: { key: "api", limit: 1, interval: 60 * SECOND } };
    const [a, b] = await storage.enqueue([new Job("echo", ["a"], rate), new Job("echo", ["b"], rate)]);
    expect(await rt.deliver([wake("default", [a!, b!])])).toEqual([{ settled: "ack", decision: "rearm" }]);
    const later = (await storage.get(b!))!;
    expect(later.state).toBe(JobState.Scheduled);
    expect(rt.sent.filter(has(b!))).toEqual([
      { message: wake("default", [b!], later.runAt!.getTime()), delaySeconds: Math.ceil((later.runAt!.getTime() - clock.now()) / SECOND) },
    ]);
    expect((await storage.get(a!))?.state).toBe(JobState.Succeeded);
  });

  // ---------------------------------------------------------------- rearm

  it(`${label}: a job not due yet gets a fresh wake-up for its due time, then the message is acked`, async () => {
    const { rt, storage, clock } = await start();
    const runAt = clock.now() + Math.floor(h.horizonMs / 2) + 500;
    const id = await storage.enqueue(new Job("echo", [], { runAt: new Date(runAt) }));

    expect(await rt.deliver([wake("default", [id])])).toEqual([{ settled: "ack", decision: "rearm" }]);
    expect(rt.sent.filter(has(id))).toEqual([{ message: wake("default", [id], runAt), delaySeconds: Math.ceil((runAt - clock.now()) / SECOND) }]);
    expect((await storage.get(id))?.state).toBe(JobState.Scheduled);
  });

  it(`${label}: a job due beyond the notifier's longest delay is acked with no fresh wake-up: the scheduled tick promotes it`, async () => {
    const { rt, storage, clock } = await start();
    const runAt = clock.now() + h.horizonMs + 60 * SECOND;
    const id = await storage.enqueue(new Job("echo", [], { runAt: new Date(runAt) }));

    expect(await rt.deliver([wake("default", [id])])).toEqual([{ settled: "ack", decision: "ack" }]);
    expect(rt.sent.filter(has(id))).toEqual([]);

    clock.set(runAt);
    await rt.schedule();
    expect((await storage.get(id))?.state).toBe(JobState.Succeeded);
  });

  it(`${label}: a job under a live lease elsewhere gets a fresh wake-up for the lease's end, then the message is acked`, async () => {
    const { rt, storage, clock } = await start();
    const id = await storage.enqueue(new Job("echo"));
    const [held] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "elsewhere", leaseMs: 30 * SECOND, now: clock.now() });

    expect(await rt.deliver([wake("default", [id])])).toEqual([{ settled: "ack", decision: "rearm" }]);
    const at = held!.leaseUntil! + SECOND;
    expect(rt.sent.filter(has(id))).toEqual([{ message: wake("default", [id], at), delaySeconds: 31 }]);
    expect(await storage.get(id)).toMatchObject({ state: JobState.Processing, leaseOwner: "elsewhere" });
  });

  // ---------------------------------------------------------------- retry

  it(`${label}: an expired lease met by a wake-up is reclaimed and the message retried; the next delivery runs the job`, async () => {
    const { rt, storage, clock } = await start();
    const id = await storage.enqueue(new Job("echo", ["orphan"]));
    await storage.driver.claim({ queues: ["default"], limit: 1, owner: "died", leaseMs: 30 * SECOND, now: clock.now() });
    clock.advance(30 * SECOND + 1);

    const [first] = await rt.deliver([wake("default", [id])]);
    expect(first).toMatchObject({ settled: "back", decision: "retry" });
    if (h.retryDelays) expect(first!.delaySeconds).toBe(1);
    expect((await storage.get(id))?.state).toBe(JobState.Enqueued);

    expect(await rt.deliver([wake("default", [id])], { attempts: 2 })).toEqual([{ settled: "ack", decision: "ack" }]);
    expect(await storage.get(id)).toMatchObject({ state: JobState.Succeeded, attempts: 2 });
  });

  it(`${label}: a due job the tick did not run (maxJobs reached) is retried, with backoff by delivery`, async () => {
    const { rt, storage } = await start({ config: { maxJobs: 1 } });
    const [a, b] = await storage.enqueue([new Job("echo", ["a"]), new Job("echo", ["b"])]);
    const first = await rt.deliver([wake("default", [a!]), wake("default", [b!])]);
    expect(first.map((x) => [x.settled, x.decision])).toEqual([
      ["ack", "ack"],
      ["back", "retry"],
    ]);
    expect(await storage.get(b!)).toMatchObject({ state: JobState.Enqueued, attempts: 0 });

    const [c, d] = await storage.enqueue([new Job("echo", ["c"]), new Job("echo", ["d"])]);
    const third = await rt.deliver([wake("default", [b!]), wake("default", [c!, d!])], { attempts: 3 });
    expect(third.map((x) => [x.settled, x.decision])).toEqual([
      ["ack", "ack"],
      ["back", "retry"],
    ]);
    if (h.retryDelays) expect([first[1]!.delaySeconds, third[1]!.delaySeconds]).toEqual([1, 4]);
  });

  it(`${label}: a message names many jobs and the most urgent need wins (retry > rearm > ack)`, async () => {
    const { rt, storage, clock } = await start({ config: { maxJobs: 1 } });
    const later = clock.now() + 120 * SECOND;
    const [done, waiting] = await storage.enqueue([new Job("echo"), new Job("echo", [], { runAt: new Date(later) })]);
    await rt.deliver([wake("default", [done!])]);
    const sent = rt.sent.length;

    // Finished + not due: a fresh wake-up for the waiting one only, then ack.
    expect(await rt.deliver([wake("default", [done!, waiting!])])).toEqual([{ settled: "ack", decision: "rearm" }]);
    expect(rt.sent.slice(sent)).toEqual([{ message: wake("default", [waiting!], later), delaySeconds: 120 }]);

    // + a due job the tick did not run (another took its one slot): the whole message comes back, nothing is re-armed.
    const [, unrun] = await storage.enqueue([new Job("echo", ["first"]), new Job("echo", ["second"])]);
    const before = rt.sent.length;
    const [answer] = await rt.deliver([wake("default", [done!, waiting!, unrun!])]);
    expect(answer).toMatchObject({ settled: "back", decision: "retry" });
    expect(rt.sent.slice(before).filter(has(waiting!))).toEqual([]);
  });

  // -------------------------------------------------------- store failures

  it(`${label}: the store unreachable at a cold start: every wake-up retried, none lost; the next invocation builds it and runs the job`, async () => {
    const clock = new ManualClock(T0);
    const storage = await h.freshStorage(clock);
    let builds = 0;
    const { rt } = await start({
      open: () => {
        builds++;
        if (builds === 1) throw new StorageUnavailableError("store unreachable (first cold start)");
        return storage;
      },
    });
    const id = await storage.enqueue(new Job("echo", ["later"]));

    const [down] = await rt.deliver([wake("default", [id])]);
    expect(down).toMatchObject({ settled: "back", decision: "retry" });
    if (h.retryDelays) expect(down!.delaySeconds).toBe(1);
    expect(rt.logs.some((l) => l.level === "error" && l.msg.startsWith("store unavailable") && l.fields.error instanceof StorageUnavailableError)).toBe(true);

    expect(await rt.deliver([wake("default", [id])], { attempts: 2 })).toEqual([{ settled: "ack", decision: "ack" }]);
    expect((await storage.get(id))?.state).toBe(JobState.Succeeded);
  });

  it(`${label}: a store that answers nothing: every wake-up retried with a growing delay, none acked`, async () => {
    const { rt } = await start({ open: () => (h.unreachableStorage ?? unreachableStorage)() });
    const body = wake("default", [crypto.randomUUID()]);
    const first = await rt.deliver([body, body]);
    const third = await rt.deliver([body], { attempts: 3 });
    expect([...first, ...third].map((a) => [a.settled, a.decision])).toEqual([
      ["back", "retry"],
      ["back", "retry"],
      ["back", "retry"],
    ]);
    if (h.retryDelays) expect([...first, ...third].map((a) => a.delaySeconds)).toEqual([1, 1, 4]);
  });

  // ---------------------------------------------------------- dead-letter

  it(`${label}: messages that are not qml wake-ups are dead-lettered, and logged once`, async () => {
    const { rt } = await start();
    const foreign = [
      "not a wake-up",
      { id: 42 },
      // The unversioned format Workers sent before.
      { id: crypto.randomUUID(), queue: "default", runAt: T0 },
      { v: 2, queue: "default", ids: [crypto.randomUUID()], runAt: T0 },
      { v: 1, queue: "default", ids: ["a\u0000b"], runAt: T0 },
      { v: 1, queue: "default", ids: [crypto.randomUUID()], runAt: T0, extra: true },
    ];
    const first = await rt.deliver(foreign);
    expect(first).toEqual(foreign.map(() => ({ settled: "back", decision: "dead-letter" })));
    const logged = () => rt.logs.filter((l) => l.level === "error" && l.msg.includes("not a qml wake-up")).length;
    expect(logged()).toBe(foreign.length);

    // Its redeliveries, on their way to the dead-letter queue, log nothing more.
    expect((await rt.deliver(foreign, { attempts: 2 })).map((a) => a.decision)).toEqual(foreign.map(() => "dead-letter"));
    expect(logged()).toBe(foreign.length);
  });

  it(`${label}: a wake-up for a queue this consumer does not serve is dead-lettered, and its job left alone`, async () => {
    const { rt, storage } = await start();
    const id = await storage.enqueue(new Job("echo", [], { queue: "reports" }));
    expect(await rt.deliver([wake("reports", [id])])).toEqual([{ settled: "back", decision: "dead-letter" }]);
    expect((await storage.get(id))?.state).toBe(JobState.Enqueued);
  });

  // ------------------------------------------------------------ wake-ups

  it(`${label}: a job enqueued by a job sends exactly one wake-up`, async () => {
    let storage: Storage | undefined;
    const children: string[] = [];
    const registry = new WorkerRegistry()
      .register("parent", async () => {
        children.push(await storage!.enqueue(new Job("child")));
        return WorkerResult.success();
      })
      .register("child", () => WorkerResult.success());
    const started = await start({ registry });
    storage = started.storage;
    const parent = await storage.enqueue(new Job("parent"));

    expect(await started.rt.deliver([wake("default", [parent])])).toEqual([{ settled: "ack", decision: "ack" }]);
    expect(children).toHaveLength(1);
    expect(started.rt.sent.filter(has(children[0]!))).toEqual([{ message: wake("default", children, T0), delaySeconds: 0 }]);
  });

  it(`${label}: a flow: the tick that runs the children releases the parent, which is woken at most once and runs after them`, async () => {
    const seen: string[][] = [];
    const registry = new WorkerRegistry()
      .register("echo", (job) => WorkerResult.success({ echo: job.arguments }))
      .register("sum", async (_job, ctx) => {
        const deps = await ctx.dependencies();
        seen.push(deps.map((d) => d.state));
        return WorkerResult.success(deps.length);
      });
    const { rt, storage } = await start({ registry });
    const flow = await storage.enqueueFlow({ job: new Job("sum"), children: [1, 2].map((n) => ({ job: new Job("echo", [n]) })) });
    // The parent waits: no wake-up for it yet.
    expect(rt.sent.filter(has(flow.id))).toEqual([]);
    expect(
      await rt.deliver([
        wake(
          "default",
          flow.children.map((c) => c.id),
        ),
      ]),
    ).toEqual([{ settled: "ack", decision: "ack" }]);
    const forParent = rt.sent.filter(has(flow.id));
    expect(forParent.length).toBeLessThanOrEqual(1);
    if ((await storage.get(flow.id))!.state !== JobState.Succeeded) {
      // Released after the tick's last claim: its wake-up runs it.
      expect(forParent).toHaveLength(1);
      expect(await rt.deliver([forParent[0]!.message])).toEqual([{ settled: "ack", decision: "ack" }]);
    }
    expect((await storage.get(flow.id))!.state).toBe(JobState.Succeeded);
    expect(seen).toEqual([[JobState.Succeeded, JobState.Succeeded]]);
  });

  it(`${label}: a wake-up for a job that waits for others (awaiting) is acked: its release sends one of its own`, async () => {
    const { rt, storage } = await start();
    // The child sits in a queue this consumer does not take, so the parent keeps waiting.
    const flow = await storage.enqueueFlow({ job: new Job("echo", ["parent"]), children: [{ job: new Job("echo", ["child"], { queue: "elsewhere" }) }] });
    expect(await rt.deliver([wake("default", [flow.id])])).toEqual([{ settled: "ack", decision: "ack" }]);
    expect((await storage.get(flow.id))!.state).toBe(JobState.Awaiting);
  });

  // ------------------------------------------------------- durable steps

  it(`${label}: a five-step workflow over invocations killed between and inside steps: each completed step ran once, and it finished`, async () => {
    // Counted when a step's function completes: what "ran" means for a side effect.
    const ran = { reserve: 0, charge: 0, ship: 0 };
    const kill = { between: true, inside: true };
    let storage!: Storage;
    let clock!: ManualClock;
    // An invocation killed after its lease ran out, as the store sees it: the
    // lease is reclaimed (another invocation may take the job) and the dead
    // one writes nothing more (its last act throws; any write is fenced).
    const die = async (where: string): Promise<never> => {
      await storage.driver.reclaimExpired(clock.now() + 3_600_000, 100);
      throw new Error(`killed ${where}`);
    };
    const registry = new WorkerRegistry().register("order", async (job, ctx) => {
      const reserved = await ctx.step.run("reserve", () => {
        ran.reserve++;
        return { sku: "A-1" };
      });
      if (kill.between) {
        kill.between = false;
        await die("between reserve and charge");
      }
      const charge = await ctx.step.run("charge", async () => {
        if (kill.inside) {
          kill.inside = false;
          await die("inside charge");
        }
        ran.charge++;
        return `ch_${String(job.arguments[0])}`;
      });
      await ctx.step.sleep("cool-off", 60 * SECOND);
      const approval = await ctx.step.waitForEvent<{ by: string }>("approval", {
        event: "order.approved",
        match: { order: job.arguments[0] },
        timeout: 3_600_000,
      });
      const shipped = await ctx.step.run("ship", () => {
        ran.ship++;
        return { by: approval?.data.by };
      });
      return WorkerResult.success({ reserved, charge, shipped });
    });
    const started = await start({ registry });
    ({ storage, clock } = started);
    const { rt } = started;
    const id = await storage.enqueue(new Job("order", [7], { maxAttempts: 5 }));

    // Invocations until it sleeps: killed between steps, killed inside one, then on to the sleep.
    for (let i = 0; i < 5 && (await storage.get(id))!.state !== JobState.Scheduled; i++) await rt.schedule();
    let job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Scheduled);
    expect(kill).toEqual({ between: false, inside: false });
    expect(ran).toEqual({ reserve: 1, charge: 1, ship: 0 });
    expect(job.steps.map((s) => `${s.id}:${s.status}`)).toEqual(["reserve:completed", "charge:completed", "cool-off:waiting"]);

    // The minute passes: the next invocation goes on to the wait.
    clock.advance(60 * SECOND);
    await rt.schedule();
    job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Scheduled);
    expect(job.steps.at(-1)).toMatchObject({ id: "approval", status: "waiting" });

    // The event, sent by a client with the runtime's notifier: its wake-up runs the job.
    const before = rt.sent.length;
    expect(await storage.sendEvent("order.approved", { order: 7, by: "ann" })).toEqual({ delivered: [id] });
    const wakeUps = rt.sent.slice(before).filter(has(id));
    if (wakeUps.length > 0) expect(await rt.deliver([wakeUps[0]!.message])).toEqual([{ settled: "ack", decision: "ack" }]);
    else await rt.schedule();
    job = (await storage.get(id))!;
    expect(job.state).toBe(JobState.Succeeded);
    expect(job.result).toEqual({ reserved: { sku: "A-1" }, charge: "ch_7", shipped: { by: "ann" } });
    expect(ran).toEqual({ reserve: 1, charge: 1, ship: 1 });
    const reasons = job.history.map((h) => h.reason ?? "").join("\n");
    expect(reasons).toMatch(/lease expired/);
    expect(reasons).toMatch(/event "order.approved" received/);
  });

  it(`${label}: a Client on the runtime's storage sends exactly one wake-up per enqueue`, async () => {
    const { rt, storage } = await start();
    // The runtime has run once on this storage (its outbox is set up).
    await rt.schedule();
    const mine: WakeUp[] = [];
    const notifier: Notifier = { notify: async (jobs) => void mine.push(...jobs) };
    const client = createClient({ storage, notifier });

    const ids = [await client.enqueue("echo", ["a"]), await client.enqueue("echo", ["b"])];
    for (const id of ids) expect(rt.sent.filter(has(id)).length + mine.filter((w) => w.id === id).length).toBe(1);
  });
}
