/**
 * Tracing across a Workers cron tick, inside workerd with the OpenTelemetry
 * SDK's in-memory exporter: a job enqueued in one trace (a producer's span)
 * is run by the Worker's `scheduled` handler, in a later invocation, over
 * each store, and its run is a span of that same trace, a child of the
 * enqueue span; a failing run records the exception.
 */
import { context, trace, SpanKind, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { otelTracer } from "../../src/adapters/tracing/otel/index.js";
import { ManualClock } from "../../src/core/clock.js";
import { Job, JobState } from "../../src/core/job.js";
import { Storage } from "../../src/core/storage.js";
import { BACKENDS, makeStorage, suiteFor } from "./backends.js";
import { harness } from "./fixtures/worker.js";
import { runCron } from "./helpers.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
// workerd's AsyncLocalStorage has no disable(): unregistering the manager is enough.
class WorkerdContextManager extends AsyncLocalStorageContextManager {
  override disable(): this {
    return this;
  }
}
const contextManager = new WorkerdContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(() => {
  context.disable();
});
beforeEach(() => exporter.reset());

const T0 = Date.UTC(2030, 0, 1, 0, 0, 30);

/** The producer's store and the Worker's: two Storage objects over one backend, each with its own tracer. */
async function setUp(backend: (typeof BACKENDS)[number]): Promise<{ clock: ManualClock; producer: Storage; producerTracer: Tracer }> {
  const clock = new ManualClock(T0);
  const base = await makeStorage(backend, clock);
  const producerTracer = provider.getTracer("producer");
  const producer = new Storage(base.driver, { clock, tracer: otelTracer(producerTracer) });
  harness.reset(new Storage(base.driver, { clock, tracer: otelTracer(provider.getTracer("worker")) }), { clock });
  return { clock, producer, producerTracer };
}

const named = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);

for (const backend of BACKENDS) {
  suiteFor(backend, `tracing across a cron tick on ${backend}`, () => {
    it("the job's run in the scheduled handler is a span of the enqueuing trace, a child of its enqueue span", async () => {
      const { clock, producer, producerTracer } = await setUp(backend);
      const { id, traceId } = await producerTracer.startActiveSpan("POST /orders", async (span) => {
        const jobId = await producer.enqueue(new Job("echo", ["order-1"]));
        span.end();
        return { id: jobId, traceId: span.spanContext().traceId };
      });
      const enqueue = named("enqueue echo");
      expect(enqueue).toHaveLength(1);
      // Nothing of the trace is in the Worker's memory: only the store has it.
      expect((await producer.get(id))!.metadata.traceparent).toBe(`00-${traceId}-${enqueue[0]!.spanContext().spanId}-01`);

      await runCron(clock);

      expect((await producer.get(id))!.state).toBe(JobState.Succeeded);
      const [run] = named("process echo");
      expect(
        run,
        exporter
          .getFinishedSpans()
          .map((s) => s.name)
          .join(),
      ).toBeDefined();
      expect(run!.kind).toBe(SpanKind.CONSUMER);
      expect(run!.spanContext().traceId).toBe(traceId);
      expect(run!.parentSpanContext?.spanId).toBe(enqueue[0]!.spanContext().spanId);
      expect(run!.attributes).toMatchObject({
        "qml.job.id": id,
        "qml.job.name": "echo",
        "qml.job.queue": "default",
        "qml.job.attempt": 1,
        "qml.job.outcome": "succeeded",
      });
      expect(run!.attributes["qml.worker.id"]).toMatch(/^cf-cron-/);
      const [claim] = named("claim");
      expect(claim!.links.map((l) => l.context.traceId)).toEqual([traceId]);
      expect(run!.links.map((l) => l.context.spanId)).toEqual([claim!.spanContext().spanId]);
      expect(trace.getActiveSpan()).toBeUndefined();
    });

    it("a failing run in the scheduled handler records the exception, status ERROR, in the enqueuing trace", async () => {
      const { clock, producer, producerTracer } = await setUp(backend);
      const { id, traceId } = await producerTracer.startActiveSpan("POST /orders", async (span) => {
        const jobId = await producer.enqueue(new Job("always_fails", [], { maxAttempts: 1 }));
        span.end();
        return { id: jobId, traceId: span.spanContext().traceId };
      });
      await runCron(clock);
      expect((await producer.get(id))!.state).toBe(JobState.Failed);
      const [run] = named("process always_fails");
      expect(run!.spanContext().traceId).toBe(traceId);
      expect(run!.status).toEqual({ code: SpanStatusCode.ERROR, message: `always_fails ${id} failed` });
      expect(run!.events.find((e) => e.name === "exception")?.attributes).toMatchObject({ "exception.message": `always_fails ${id} failed` });
    });
  });
}
