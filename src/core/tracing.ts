/**
 * Tracing: what the engine tells a tracer the application hands in
 * (`new Storage(backend, { tracer })`; `otelTracer()` from qml/otel
 * implements it on OpenTelemetry). Types only: the core imports no tracing
 * library and carries no tracing code, so the Worker bundle stays as it
 * is; with no tracer, the engine's only cost is an `undefined` check at
 * each enqueue, claim and run.
 *
 * The engine calls the tracer at three points:
 *
 * - enqueue: before the insert, with the records about to be stored. The
 *   tracer may add its context to their metadata (qml/otel writes the W3C
 *   `traceparent` and `tracestate`): every backend keeps metadata, so the
 *   context crosses processes and runtimes with the job. It is told when
 *   the insert settles, and how.
 * - claim: after a claim that brought jobs (an idle server polls every few
 *   seconds: empty claims are not reported), with how long it took.
 * - run: for each attempt, before the job's code starts; the job's code
 *   runs inside `within` (so its own spans nest under the run's), and
 *   `end` gets the attempt's outcome.
 */
import type { JobRecord } from "./job.js";
import type { WorkerResult } from "./registry.js";

/** How an attempt ended: what the worker returned or threw, and why the run was aborted, if it was. */
export interface RunOutcome {
  outcome: { kind: "result"; result: WorkerResult } | { kind: "error"; error: unknown };
  /** The abort reason: TimeoutError, CancelledError, ShutdownError, DeadlineError or LeaseLostError. */
  aborted: unknown;
}

export interface RunTrace {
  /** Runs the job's code (with the run's span active). */
  within<T>(fn: () => T): T;
  end(outcome: RunOutcome): void;
}

export interface Tracer {
  /** Before an enqueue's insert (may add to the records' metadata); returns what to call when the insert settles (with its error if it failed). */
  enqueue(records: JobRecord[]): (error?: unknown) => void;
  /** A claim by `serverId` of `queues` brought `records`; it was sent `elapsedMs` ago. */
  claimed(records: readonly JobRecord[], info: { serverId: string; queues: readonly string[]; elapsedMs: number }): void;
  /** One attempt of `rec` (its `attempts` already counts it) on `workerId`. */
  run(rec: JobRecord, workerId: string): RunTrace;
}
