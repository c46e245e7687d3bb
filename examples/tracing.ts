/**
 * Tracing with OpenTelemetry: a request's span enqueues a job; the job's
 * run, on a server, is a span of the same trace (a child of the enqueue
 * span), and so is what the job's own code traces. Prints the trace.
 *
 *   npx tsx examples/tracing.ts
 *
 * A real application sets up its SDK (NodeSDK, an OTLP exporter…) instead
 * of the in-memory exporter here; qml only needs `@opentelemetry/api`.
 */
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger } from "../src/index.js";
import { otelTracer } from "../src/adapters/tracing/otel/index.js";

// The application's OpenTelemetry setup.
const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracer = trace.getTracer("shop");

// qml: one option on the Storage traces enqueues, claims and runs.
const storage = new Storage(memoryBackend(), { tracer: otelTracer() });
const registry = new WorkerRegistry().register("send_receipt", async (job) => {
  // A span the job starts is a child of its run's span.
  await tracer.startActiveSpan("render receipt", async (span) => {
    span.setAttribute("order", String(job.arguments[0]));
    span.end();
  });
  return WorkerResult.success();
});
const server = new BackgroundJobServer(storage, registry, new ServerConfig("server-1").logger(silentLogger));
const done = new Promise((resolve) => server.on("job:succeeded", resolve));
await server.start();

// A request handler enqueues inside its span.
const id = await tracer.startActiveSpan("POST /orders", async (span) => {
  const jobId = await storage.enqueue(new Job("send_receipt", ["order-42"]));
  span.end();
  return jobId;
});
await done;
await server.stop();

console.log(`job ${id} carries traceparent ${(await storage.get(id))!.metadata.traceparent}`);
const spans = exporter.getFinishedSpans();
const children = (parent: ReadableSpan | undefined) =>
  spans
    .filter((s) => (parent ? s.parentSpanContext?.spanId === parent.spanContext().spanId : !s.parentSpanContext))
    .sort((a, b) => a.name.localeCompare(b.name));
function print(span: ReadableSpan, depth: number): void {
  const links = span.links.length > 0 ? ` (linked to ${span.links.length})` : "";
  console.log(`${"  ".repeat(depth)}${span.name} [trace ${span.spanContext().traceId.slice(0, 8)}]${links}`);
  for (const c of children(span)) print(c, depth + 1);
}
for (const root of children(undefined)) print(root, 0);
