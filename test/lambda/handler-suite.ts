/**
 * The Lambda handlers, driven with real event shapes, against one backend:
 * what is Lambda's own (the remaining time as the deadline, one store per
 * container, the Function URL API). What a wake-up leads to is the shared
 * consumer suite's (test/serverless/consumer-suite.ts), which the same
 * files run through these handlers. One file per backend calls both, so
 * memory, Redis (TCP, Upstash REST) and PostgreSQL (pg, Neon) all answer
 * the same questions.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  Job,
  ManualClock,
  StorageUnavailableError,
  WorkerRegistry,
  WorkerResult,
  silentLogger,
  type Clock,
  type Notifier,
  type Storage,
  type WakeUp,
} from "../../src/index.js";
import { createLambdaHandlers, type LambdaHandlers, type LambdaHandlersOptions } from "../../src/adapters/runtime/lambda/index.js";
import { encodeWakeUp } from "../../src/adapters/runtime/serverless/wake-up.js";
import { functionUrlEvent, lambdaContext, scheduledEvent, sqsEvent } from "./aws-events.js";

/** A fresh, isolated store (own key prefix / schema) on `clock`. */
export type StorageFactory = (clock: Clock) => Promise<Storage>;

const TOKEN = "lambda-test-token-0123456789abcdef";
const READ_TOKEN = "lambda-read-token-0123456789abcdef";

function wake(queue: string, ...ids: string[]): string {
  return encodeWakeUp({ queue, ids, runAt: Date.now() });
}

/** Resolves when `signal` aborts: a job that runs until it is told to stop. */
function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

export function runLambdaHandlerSuite(label: string, makeStorage: StorageFactory): void {
  describe(`lambda handlers: ${label}`, () => {
    // Stores are closed here, not through the handlers: a test that fails early still releases its connections.
    const open: Storage[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
    });
    async function factory(clock: Clock): Promise<Storage> {
      const s = await makeStorage(clock);
      open.push(s);
      return s;
    }

    function handlers(storage: Storage | (() => Promise<Storage>), o: Partial<LambdaHandlersOptions> & { registry: WorkerRegistry }): LambdaHandlers {
      return createLambdaHandlers({
        storage: typeof storage === "function" ? storage : () => storage,
        safetyMs: 100,
        logger: silentLogger,
        ...o,
      });
    }

    it("scheduled event: promotes, reclaims, fires recurring jobs and runs them within the remaining time", async () => {
      const clock = new ManualClock(Math.floor(Date.now() / 60_000) * 60_000 + 1000);
      const storage = await factory(clock);
      const ran: string[] = [];
      const registry = new WorkerRegistry().register("t", (job) => {
        ran.push(String(job.arguments[0]));
        return WorkerResult.success();
      });
      await storage.enqueue([new Job("t", ["now"]), new Job("t", ["delayed"], { delay: 1000 }), new Job("t", ["orphan"])]);
      // An invocation that died holding "now" or "orphan": its lease runs out.
      const [claimed] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "lambda:dead", leaseMs: 500, now: clock.now() });
      await storage.addOrUpdateRecurring("every-minute", "* * * * *", "t", ["recurring"]);
      clock.advance(60_000);
      const h = handlers(storage, { registry, clock });
      const report = await h.scheduleHandler(scheduledEvent(new Date(clock.now())), lambdaContext(10_000, clock));
      expect(report).toMatchObject({ promoted: 1, reclaimed: 1, fired: 1, processed: 4, succeeded: 4, released: 0, deferred: 0 });
      expect(ran.sort()).toEqual(["delayed", "now", "orphan", "recurring"]);
      const reclaimed = (await storage.get(claimed!.id))!;
      expect(reclaimed.state).toBe("succeeded");
      // Its history names the invocation that finished it.
      expect(reclaimed.history.at(-1)!.worker).toMatch(/^lambda:qml-worker:/);
    });

    it("remaining time runs out mid-batch: the running job is released and its record comes back; the redelivery finishes it", async () => {
      const storage = await factory({ now: () => Date.now() });
      let started = 0;
      let allowFinish = false;
      // A name of its own: durations learned by this process's other suites (one per backend) must not plan this one.
      const name = `long-${crypto.randomUUID().slice(0, 8)}`;
      const registry = new WorkerRegistry().register(name, async (_job, ctx) => {
        started++;
        if (allowFinish) return WorkerResult.success("done");
        await untilAborted(ctx.signal);
        throw ctx.signal.reason;
      });
      const ids = await storage.enqueue([new Job(name, ["a"]), new Job(name, ["b"])]);
      const event = sqsEvent([{ body: wake("default", ids[0]!) }, { body: wake("default", ids[1]!) }]);
      const h = handlers(storage, { registry, safetyMs: 150 });
      const first = await h.sqsHandler(event, lambdaContext(400));
      expect(started).toBe(2);
      expect(first.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(event.Records.map((r) => r.messageId).sort());
      // Released, each at the head of its queue (whether the cut-off run counts as an attempt is the processor's rule).
      for (const id of ids) expect((await storage.get(id))!).toMatchObject({ state: "enqueued" });

      // SQS redelivers the same messages after the visibility timeout.
      allowFinish = true;
      const redelivered = { Records: event.Records.map((r) => ({ ...r, attributes: { ...r.attributes, ApproximateReceiveCount: "2" } })) };
      const second = await h.sqsHandler(redelivered, lambdaContext(10_000));
      expect(second.batchItemFailures).toEqual([]);
      for (const id of ids) expect((await storage.get(id))!).toMatchObject({ state: "succeeded", result: "done" });
    });

    it("an invocation killed mid-job loses nothing: after the lease, the next scheduled invocation finishes it", async () => {
      const clock = new ManualClock(Date.now());
      const storage = await factory(clock);
      const id = await storage.enqueue(new Job("k", ["x"]));
      // What a killed invocation leaves: a claim, and no outcome.
      await storage.driver.claim({ queues: ["default"], limit: 10, owner: "lambda:killed", leaseMs: 30_000, now: clock.now() });
      const registry = new WorkerRegistry().register("k", () => WorkerResult.success("finished"));
      const h = handlers(storage, { registry, clock, leaseMs: 30_000 });
      const early = await h.scheduleHandler(scheduledEvent(), lambdaContext(2000, clock));
      expect(early).toMatchObject({ reclaimed: 0, processed: 0 });
      clock.advance(30_001);
      const later = await h.scheduleHandler(scheduledEvent(), lambdaContext(2000, clock));
      expect(later).toMatchObject({ reclaimed: 1, succeeded: 1 });
      expect((await storage.get(id))!).toMatchObject({ state: "succeeded", result: "finished", attempts: 2 });
    });

    it("warm invocations reuse one store client; a failed cold start is retried, and its records come back", async () => {
      const storage = await factory({ now: () => Date.now() });
      let calls = 0;
      const registry = new WorkerRegistry().register("w", () => WorkerResult.success());
      const h = handlers(
        async () => {
          calls++;
          if (calls === 1) throw new StorageUnavailableError("store unreachable (first cold start)");
          return storage;
        },
        { registry, http: { auth: { adminTokens: [TOKEN] } } },
      );
      const id = await storage.enqueue(new Job("w", []));
      const event = sqsEvent([{ body: wake("default", id) }]);
      const down = await h.sqsHandler(event, lambdaContext(5000));
      expect(down.batchItemFailures).toEqual([{ itemIdentifier: event.Records[0]!.messageId }]);
      const up = await h.sqsHandler(event, lambdaContext(5000));
      expect(up.batchItemFailures).toEqual([]);
      await h.scheduleHandler(scheduledEvent(), lambdaContext(5000));
      const stats = await h.httpHandler(
        functionUrlEvent({ method: "GET", path: "/api/stats", headers: { authorization: `Bearer ${TOKEN}` } }),
        lambdaContext(5000),
      );
      expect(stats.statusCode).toBe(200);
      expect(calls).toBe(2);
      expect((await storage.get(id))!.state).toBe("succeeded");
    });

    it("Function URL: the API needs a bearer token, enqueues, reads jobs and stats", async () => {
      const storage = await factory({ now: () => Date.now() });
      const registry = new WorkerRegistry().register("send_email", () => WorkerResult.success());
      const h = handlers(storage, { registry, http: { auth: { adminTokens: [TOKEN], readTokens: [READ_TOKEN] } } });
      const anonymous = await h.httpHandler(functionUrlEvent({ method: "GET", path: "/api/stats" }), lambdaContext(5000));
      expect(anonymous.statusCode).toBe(401);
      const forged = await h.httpHandler(
        functionUrlEvent({ method: "GET", path: "/api/stats", headers: { authorization: `Bearer ${TOKEN}x` } }),
        lambdaContext(5000),
      );
      expect(forged.statusCode).toBe(401);

      const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
      const created = await h.httpHandler(
        functionUrlEvent({
          method: "POST",
          path: "/api/jobs",
          headers: auth,
          body: JSON.stringify({ name: "send_email", args: ["a@example.com"], queue: "mail" }),
        }),
        lambdaContext(5000),
      );
      expect(created.statusCode).toBe(201);
      const { id } = JSON.parse(created.body) as { id: string };
      expect((await storage.get(id))!).toMatchObject({ name: "send_email", queue: "mail", state: "enqueued" });

      // A base64 body, as a Function URL sends binary-looking payloads.
      const b64 = await h.httpHandler(
        functionUrlEvent({
          method: "POST",
          path: "/api/jobs",
          headers: auth,
          body: JSON.stringify({ name: "send_email", args: ["b@example.com"] }),
          base64: true,
        }),
        lambdaContext(5000),
      );
      expect(b64.statusCode).toBe(201);

      const got = await h.httpHandler(functionUrlEvent({ method: "GET", path: `/api/jobs/${id}`, headers: auth }), lambdaContext(5000));
      expect(got.statusCode).toBe(200);
      expect(JSON.parse(got.body).job).toMatchObject({ id, name: "send_email", arguments: ["a@example.com"], state: "enqueued" });

      const invalid = await h.httpHandler(
        functionUrlEvent({ method: "POST", path: "/api/jobs", headers: auth, body: JSON.stringify({ name: "bad name!" }) }),
        lambdaContext(5000),
      );
      expect(invalid.statusCode).toBe(422);
      // No worker runs this name here: refused rather than stored forever.
      const unknown = await h.httpHandler(
        functionUrlEvent({ method: "POST", path: "/api/jobs", headers: auth, body: JSON.stringify({ name: "nobody_runs_this" }) }),
        lambdaContext(5000),
      );
      expect(unknown.statusCode).toBe(422);
      // A read-only token reads, and may not enqueue.
      const reader = { authorization: `Bearer ${READ_TOKEN}`, "content-type": "application/json" };
      const readOk = await h.httpHandler(functionUrlEvent({ method: "GET", path: `/api/jobs/${id}`, headers: reader }), lambdaContext(5000));
      expect(readOk.statusCode).toBe(200);
      const readEnqueue = await h.httpHandler(
        functionUrlEvent({ method: "POST", path: "/api/jobs", headers: reader, body: JSON.stringify({ name: "send_email" }) }),
        lambdaContext(5000),
      );
      expect(readEnqueue.statusCode).toBe(403);

      const stats = await h.httpHandler(functionUrlEvent({ method: "GET", path: "/api/stats", query: "minutes=5", headers: auth }), lambdaContext(5000));
      expect(stats.statusCode).toBe(200);
      expect(JSON.parse(stats.body).states.enqueued).toBe(2);

      // Live updates: a buffered Function URL only answers when the response ends, so each SSE response is short.
      const live = await h.httpHandler(
        functionUrlEvent({ method: "GET", path: "/api/events", headers: { authorization: `Bearer ${TOKEN}`, accept: "text/event-stream" } }),
        lambdaContext(5000),
      );
      expect(live.statusCode).toBe(200);
      expect(live.headers?.["content-type"]).toMatch(/^text\/event-stream/);
      // The Function URL decodes a base64 result before it reaches the browser.
      const liveBody = live.isBase64Encoded ? Buffer.from(live.body, "base64").toString("utf8") : live.body;
      expect(liveBody).toMatch(/event: snapshot\ndata: \{"type":"snapshot"/);
    });

    it("an enqueue through the API sends exactly one wake-up, before the response", async () => {
      const storage = await factory({ now: () => Date.now() });
      const sent: WakeUp[][] = [];
      const notifier: Notifier = {
        notify: async (jobs) => {
          sent.push(jobs);
        },
      };
      const h = handlers(storage, {
        registry: new WorkerRegistry().register("n", () => WorkerResult.success()),
        notifier,
        http: { auth: { adminTokens: [TOKEN] } },
      });
      const res = await h.httpHandler(
        functionUrlEvent({
          method: "POST",
          path: "/api/jobs",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ name: "n", queue: "mail" }),
        }),
        lambdaContext(5000),
      );
      expect(res.statusCode).toBe(201);
      const { id } = JSON.parse(res.body) as { id: string };
      expect(sent).toEqual([[{ id, queue: "mail", runAt: expect.any(Number) }]]);
      // Enqueues made elsewhere (another process on the same store) are not this container's to announce.
      await (await factory({ now: () => Date.now() })).enqueue(new Job("n", []));
      await h.scheduleHandler(scheduledEvent(), lambdaContext(2000));
      expect(sent.length).toBe(1);
    });
  });
}
