/**
 * Tracing through OpenTelemetry (qml/otel), with the SDK's in-memory
 * exporter: the enqueue's context is stored with the job and the run is a
 * child of it, on a BackgroundJobServer over the memory backend; failures
 * record the exception; without a tracer nothing is written and
 * @opentelemetry/api is not part of the engine's module graph.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { context, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { build } from "esbuild";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Job, Storage, WorkerRegistry, WorkerResult, memoryBackend } from "../../src/index.js";
import { otelTracer, parseTraceparent, toSpanContext, toTraceContext } from "../../src/adapters/tracing/otel/index.js";
import { testServer, waitForEvents } from "./helpers.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const appTracer = provider.getTracer("app");
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(() => {
  context.disable();
});
beforeEach(() => exporter.reset());

const spans = (name: string | RegExp): ReadableSpan[] =>
  exporter.getFinishedSpans().filter((s) => (typeof name === "string" ? s.name === name : name.test(s.name)));
const one = (name: string | RegExp): ReadableSpan => {
  const found = spans(name);
  expect(found, `spans named ${name}: ${exporter.getFinishedSpans().map((s) => s.name)}`).toHaveLength(1);
  return found[0]!;
};

function tracedStorage(): Storage {
  return new Storage(memoryBackend(), { tracer: otelTracer(provider.getTracer("qml")) });
}

describe("tracing with OpenTelemetry", () => {
  it("a job enqueued inside a span runs in a span of the same trace: enqueue (producer) → process (consumer), linked to its claim", async () => {
    const storage = tracedStorage();
    const registry = new WorkerRegistry().register("send_email", async (job) => {
      // A span the job's code starts is a child of its process span.
      await appTracer.startActiveSpan("smtp", async (s) => {
        await Promise.resolve();
        s.end();
      });
      return WorkerResult.success({ to: job.arguments[0] });
    });
    const server = testServer(storage, registry);
    await server.start();
    const done = waitForEvents(server, "job:succeeded");

    let request!: ReadableSpan;
    const id = await appTracer.startActiveSpan("POST /signup", async (span) => {
      const jobId = await storage.enqueue(new Job("send_email", ["ada@example.com"], { queue: "default", metadata: { tenant: "t1" } }));
      span.end();
      request = span as unknown as ReadableSpan;
      return jobId;
    });
    await done;
    await server.stop();

    const enqueue = one("enqueue send_email");
    const claim = one("claim");
    const run = one("process send_email");
    const smtp = one("smtp");
    const traceId = request.spanContext().traceId;

    // enqueue: a producer span, child of the request.
    expect(enqueue.kind).toBe(SpanKind.PRODUCER);
    expect(enqueue.spanContext().traceId).toBe(traceId);
    expect(enqueue.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(enqueue.attributes).toMatchObject({
      "messaging.system": "qml",
      "messaging.destination.name": "default",
      "qml.job.id": id,
      "qml.job.name": "send_email",
    });

    // The job carries the enqueue span's W3C context next to its own metadata.
    const job = (await storage.get(id))!;
    expect(job.metadata).toEqual({ tenant: "t1", traceparent: `00-${traceId}-${enqueue.spanContext().spanId}-01` });

    // process: a consumer span of the same trace, child of the enqueue span, linked to the claim.
    expect(run.kind).toBe(SpanKind.CONSUMER);
    expect(run.spanContext().traceId).toBe(traceId);
    expect(run.parentSpanContext?.spanId).toBe(enqueue.spanContext().spanId);
    expect(run.parentSpanContext?.isRemote).toBe(true);
    expect(run.links.map((l) => l.context.spanId)).toEqual([claim.spanContext().spanId]);
    expect(run.attributes).toMatchObject({
      "messaging.system": "qml",
      "messaging.operation.type": "process",
      "messaging.message.id": id,
      "qml.job.id": id,
      "qml.job.name": "send_email",
      "qml.job.queue": "default",
      "qml.job.attempt": 1,
      "qml.job.outcome": "succeeded",
    });
    expect(run.status.code).toBe(SpanStatusCode.UNSET);

    // claim: a client span of its own trace, linked to the job's enqueue span.
    expect(claim.kind).toBe(SpanKind.CLIENT);
    expect(claim.parentSpanContext).toBeUndefined();
    expect(claim.links.map((l) => l.context.spanId)).toEqual([enqueue.spanContext().spanId]);
    expect(claim.attributes).toMatchObject({ "messaging.batch.message_count": 1, "qml.queues": ["default"], "qml.server.id": server.serverId });

    // The job's own span: a child of its process span.
    expect(smtp.spanContext().traceId).toBe(traceId);
    expect(smtp.parentSpanContext?.spanId).toBe(run.spanContext().spanId);
  });

  it("a failing attempt records the exception and ends with status ERROR; each attempt is a child of the enqueue span", async () => {
    const storage = tracedStorage();
    const registry = new WorkerRegistry()
      .register("flaky", () => {
        throw new Error("smtp refused");
      })
      .register("refused", () => WorkerResult.failure(new TypeError("bad address")));
    const server = testServer(storage, registry);
    const failed = waitForEvents(server, "job:failed", 2);
    await server.start();
    const [flakyId] = await storage.enqueue([
      new Job("flaky", [], { maxAttempts: 2, retry: { kind: "fixed", delayMs: 1 } }),
      new Job("refused", [], { maxAttempts: 3 }),
    ]);
    await failed;
    await server.stop();

    // One enqueue call, one producer span for both jobs.
    const enqueue = one("enqueue");
    expect(enqueue.attributes["messaging.batch.message_count"]).toBe(2);
    expect(enqueue.parentSpanContext).toBeUndefined();

    const runs = spans("process flaky").sort((a, b) => Number(a.attributes["qml.job.attempt"]) - Number(b.attributes["qml.job.attempt"]));
    expect(runs.map((s) => s.attributes["qml.job.attempt"])).toEqual([1, 2]);
    for (const s of runs) {
      expect(s.attributes).toMatchObject({ "qml.job.id": flakyId, "qml.job.outcome": "failed" });
      expect(s.spanContext().traceId).toBe(enqueue.spanContext().traceId);
      expect(s.parentSpanContext?.spanId).toBe(enqueue.spanContext().spanId);
      expect(s.status).toEqual({ code: SpanStatusCode.ERROR, message: "smtp refused" });
      const ex = s.events.find((e) => e.name === "exception")!;
      expect(ex.attributes).toMatchObject({ "exception.type": "Error", "exception.message": "smtp refused" });
      expect(String(ex.attributes!["exception.stacktrace"])).toContain("tracing.test.ts");
    }

    // WorkerResult.failure: the returned error, not a thrown one.
    const refused = one("process refused");
    expect(refused.status).toEqual({ code: SpanStatusCode.ERROR, message: "bad address" });
    expect(refused.events.find((e) => e.name === "exception")?.attributes).toMatchObject({ "exception.type": "TypeError", "exception.message": "bad address" });
  });

  it("a run cut off by its timeout fails with the TimeoutError; a cancelled run ends without an error", async () => {
    const storage = tracedStorage();
    const registry = new WorkerRegistry().register(
      "hangs",
      (_job, ctx) =>
        new Promise((_, reject) => {
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
        }),
    );
    const server = testServer(storage, registry);
    await server.start();
    const failed = waitForEvents(server, "job:failed");
    const timedOut = await storage.enqueue(new Job("hangs", ["t"], { timeout: 50, maxAttempts: 1 }));
    await failed;
    const started = waitForEvents(server, "job:start");
    const cancelledEvent = waitForEvents(server, "job:cancelled");
    const cancelled = await storage.enqueue(new Job("hangs", ["c"]));
    await started;
    await storage.cancel(cancelled, { by: "test" });
    await cancelledEvent;
    await server.stop();

    const runs = spans("process hangs");
    const byId = (id: string) => runs.find((s) => s.attributes["qml.job.id"] === id)!;
    expect(byId(timedOut).attributes["qml.job.outcome"]).toBe("failed");
    expect(byId(timedOut).status.code).toBe(SpanStatusCode.ERROR);
    expect(byId(timedOut).events.find((e) => e.name === "exception")?.attributes).toMatchObject({
      // The SDK reports an error's `code` as its type: qml's stable code.
      "exception.type": "TIMEOUT",
    });
    expect(byId(cancelled).attributes["qml.job.outcome"]).toBe("cancelled");
    expect(byId(cancelled).status.code).toBe(SpanStatusCode.UNSET);
    expect(byId(cancelled).events).toEqual([]);
  });

  it("a job enqueued outside any span starts its own trace; its run joins it", async () => {
    const storage = tracedStorage();
    const server = testServer(
      storage,
      new WorkerRegistry().register("noop", () => WorkerResult.success()),
    );
    const done = waitForEvents(server, "job:succeeded");
    await server.start();
    await storage.enqueue(new Job("noop"));
    await done;
    await server.stop();
    const enqueue = one("enqueue noop");
    const run = one("process noop");
    expect(enqueue.parentSpanContext).toBeUndefined();
    expect(run.spanContext().traceId).toBe(enqueue.spanContext().traceId);
    expect(run.parentSpanContext?.spanId).toBe(enqueue.spanContext().spanId);
  });

  it("without a tracer: no spans, and nothing is added to the job's metadata", async () => {
    const storage = new Storage(memoryBackend());
    const server = testServer(
      storage,
      new WorkerRegistry().register("noop", () => WorkerResult.success()),
    );
    const done = waitForEvents(server, "job:succeeded");
    await server.start();
    const id = await appTracer.startActiveSpan("request", async (span) => {
      const jobId = await storage.enqueue(new Job("noop", [], { metadata: { a: 1 } }));
      span.end();
      return jobId;
    });
    await done;
    await server.stop();
    expect((await storage.get(id))!.metadata).toEqual({ a: 1 });
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(["request"]);
  });
});

describe("W3C traceparent", () => {
  it("parses valid values and refuses invalid ones", () => {
    const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    expect(parseTraceparent(tp)).toEqual({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: 1 });
    expect(toTraceContext(toSpanContext({ traceparent: tp, tracestate: "a=1,b=2" })!)).toEqual({ traceparent: tp, tracestate: "a=1,b=2" });
    for (const bad of [
      "",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ])
      expect(parseTraceparent(bad), bad).toBeUndefined();
    // A later version may carry more fields.
    expect(parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")?.traceFlags).toBe(1);
  });

  it("a stored traceparent from elsewhere (another producer, another language) becomes the run's parent, tracestate kept", async () => {
    const storage = tracedStorage();
    const server = testServer(
      storage,
      new WorkerRegistry().register("noop", () => WorkerResult.success()),
    );
    const done = waitForEvents(server, "job:succeeded");
    await server.start();
    // Written straight to the backend: no enqueue span of ours.
    await new Storage(storage.driver).enqueue(
      new Job("noop", [], { metadata: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "vendor=x" } }),
    );
    await done;
    await server.stop();
    const run = one("process noop");
    expect(run.spanContext().traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(run.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
    expect(run.spanContext().traceState?.get("vendor")).toBe("x");
  });
});

describe("no tracing configured, no OpenTelemetry loaded", () => {
  const root = join(import.meta.dirname, "../..");

  it("only qml/otel imports @opentelemetry/api", () => {
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => {
        const p = join(dir, f);
        return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : [];
      });
    const importers = walk(join(root, "src"))
      .filter((f) => /["']@opentelemetry\//.test(readFileSync(f, "utf8")))
      .map((f) => f.slice(root.length + 1));
    expect(importers).toEqual(["src/adapters/tracing/otel/index.ts"]);
  });

  it("the bundles of qml and qml/cloudflare (the Worker's) hold no @opentelemetry module", async () => {
    for (const entry of ["src/index.ts", "src/adapters/runtime/cloudflare/index.ts"]) {
      const result = await build({
        entryPoints: [join(root, entry)],
        bundle: true,
        write: false,
        metafile: true,
        format: "esm",
        platform: "neutral",
        // Dependencies stay imports: any import of @opentelemetry would show among them.
        packages: "external",
        logLevel: "silent",
      });
      const inputs = Object.keys(result.metafile.inputs);
      const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
      expect(inputs.length, entry).toBeGreaterThan(20);
      expect(
        inputs.filter((p) => p.includes("opentelemetry") || p.includes("tracing/otel")),
        entry,
      ).toEqual([]);
      expect(
        imports.filter((p) => p.includes("opentelemetry")),
        entry,
      ).toEqual([]);
      // No tracing code either: core/tracing.ts is types only.
      expect(result.outputFiles[0]!.text, entry).not.toContain("traceparent");
    }
  });
});
