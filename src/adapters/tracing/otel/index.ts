/**
 * qml/otel: the engine's spans through OpenTelemetry.
 *
 *   import { trace } from "@opentelemetry/api";
 *   import { otelTracer } from "qml/otel";
 *   const storage = new Storage(backend, { tracer: otelTracer(trace.getTracer("my-app")) });
 *
 * `@opentelemetry/api` is an optional peer dependency of qml: only this
 * entry point imports it, so an application that does not trace never
 * loads it, and the core holds no tracing code (core/tracing.ts is types).
 *
 * Spans (attribute names from OpenTelemetry's messaging conventions, plus
 * `qml.*`):
 *
 * - `enqueue <name>` (`enqueue` for a batch), producer, a child of the
 *   caller's active span. Its W3C context is stored with every job of the
 *   call, in the job's metadata (`traceparent`, `tracestate`), whatever
 *   propagator the application configured: every backend keeps metadata,
 *   so the context crosses processes and runtimes (a request on one
 *   machine, a cron tick on another).
 * - `claim`, client, in a trace of its own, linked to each job's stored
 *   context; only claims that brought jobs.
 * - `process <name>`, consumer, one per attempt: a child of the job's
 *   stored context (a new trace when it has none), linked to its claim,
 *   active while the job's code runs. An attempt that fails records the
 *   exception and ends with status ERROR.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  createTraceState,
  isSpanContextValid,
  trace,
  type Exception,
  type Span,
  type SpanContext,
  type Tracer as OtelTracer,
} from "@opentelemetry/api";
import { CancelledError, DeadlineError, LeaseLostError, ShutdownError } from "../../../core/errors.js";
import type { JobRecord } from "../../../core/job.js";
import type { RunOutcome, RunTrace, Tracer } from "../../../core/tracing.js";

export type { RunOutcome, RunTrace, Tracer } from "../../../core/tracing.js";

/** A span's W3C trace context (https://www.w3.org/TR/trace-context/), as stored in a job's metadata. */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

const SYSTEM = { "messaging.system": "qml" } as const;

/** qml's tracer on an OpenTelemetry tracer (default: the global provider's tracer named "qml"). */
export function otelTracer(tracer: OtelTracer = trace.getTracer("qml")): Tracer {
  // The claim that brought each record, for its run's link.
  const claims = new WeakMap<JobRecord, SpanContext>();
  return {
    enqueue(records) {
      const first = records[0]!;
      const single = records.length === 1;
      const span = tracer.startSpan(
        single ? `enqueue ${first.name}` : "enqueue",
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            ...SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": first.queue,
            ...(single
              ? { "messaging.message.id": first.id, "qml.job.id": first.id, "qml.job.name": first.name }
              : { "messaging.batch.message_count": records.length }),
          },
        },
        context.active(),
      );
      const carrier = toTraceContext(span.spanContext());
      if (carrier) for (const r of records) r.metadata = { ...r.metadata, ...carrier };
      return (error?: unknown) => {
        if (error !== undefined) fail(span, error);
        span.end();
      };
    },

    claimed(records, { serverId, queues, elapsedMs }) {
      const links = records.flatMap((r) => {
        const sc = storedContext(r);
        return sc ? [{ context: sc }] : [];
      });
      // Wall time: spans are read beside other processes' spans, not on the store's clock.
      const span = tracer.startSpan(
        "claim",
        {
          kind: SpanKind.CLIENT,
          links,
          startTime: Date.now() - elapsedMs,
          attributes: {
            ...SYSTEM,
            "messaging.operation.type": "receive",
            "messaging.batch.message_count": records.length,
            "qml.queues": [...queues],
            "qml.server.id": serverId,
          },
        },
        ROOT_CONTEXT,
      );
      span.end();
      const sc = span.spanContext();
      if (isSpanContextValid(sc)) for (const r of records) claims.set(r, sc);
    },

    run(rec, workerId) {
      const parent = storedContext(rec);
      const claim = claims.get(rec);
      const span = tracer.startSpan(
        `process ${rec.name}`,
        {
          kind: SpanKind.CONSUMER,
          ...(claim ? { links: [{ context: claim }] } : {}),
          attributes: {
            ...SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": rec.queue,
            "messaging.message.id": rec.id,
            "qml.job.id": rec.id,
            "qml.job.name": rec.name,
            "qml.job.queue": rec.queue,
            "qml.job.attempt": rec.attempts,
            "qml.job.max_attempts": rec.maxAttempts,
            "qml.worker.id": workerId,
          },
        },
        parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT,
      );
      return new OtelRun(span);
    },
  };
}

class OtelRun implements RunTrace {
  constructor(private readonly span: Span) {}

  within<T>(fn: () => T): T {
    return context.with(trace.setSpan(context.active(), this.span), fn);
  }

  end({ outcome, aborted }: RunOutcome): void {
    const s = this.span;
    let how = "failed";
    if (aborted instanceof CancelledError) how = "cancelled";
    else if (aborted instanceof ShutdownError || aborted instanceof DeadlineError) how = "released";
    else if (aborted instanceof LeaseLostError) {
      how = "lost";
      fail(s, aborted);
    } else if (outcome.kind === "error") fail(s, outcome.error);
    else if (outcome.result.kind === "success") how = "succeeded";
    else fail(s, outcome.result.error ?? { name: "Error", message: "failed" });
    s.setAttribute("qml.job.outcome", how);
    s.end();
  }
}

/** Records the exception (an Error, or qml's ErrorInfo { name, message, stack }) and sets status ERROR. */
function fail(span: Span, error: unknown): void {
  const exception: Exception = typeof error === "object" && error !== null && ("message" in error || "name" in error) ? (error as Exception) : String(error);
  span.recordException(exception);
  span.setStatus({ code: SpanStatusCode.ERROR, message: typeof exception === "string" ? exception : (exception.message ?? exception.name) });
}

/** The context an enqueue stored with a job, as a remote span context, if it is a valid one. */
function storedContext(rec: JobRecord): SpanContext | undefined {
  const m = rec.metadata;
  if (typeof m?.traceparent !== "string") return undefined;
  return toSpanContext(typeof m.tracestate === "string" ? { traceparent: m.traceparent, tracestate: m.tracestate } : { traceparent: m.traceparent });
}

/** A W3C context as a remote span context, or undefined when it is not valid. */
export function toSpanContext(c: TraceContext): SpanContext | undefined {
  const p = parseTraceparent(c.traceparent);
  if (!p) return undefined;
  const sc: SpanContext = { ...p, isRemote: true };
  if (c.tracestate) sc.traceState = createTraceState(c.tracestate);
  return sc;
}

/** A span context as a W3C context, or undefined when it is not valid (a no-op tracer's). */
export function toTraceContext(sc: SpanContext): TraceContext | undefined {
  if (!isSpanContextValid(sc)) return undefined;
  const traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
  const tracestate = sc.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** A traceparent's fields, or undefined when it is not a valid one (all-zero ids, version ff, extra fields on version 00). */
export function parseTraceparent(value: string): { traceId: string; spanId: string; traceFlags: number } | undefined {
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, traceFlags: parseInt(flags!, 16) };
}
