/**
 * Workers: what runs a job, by name. A worker is a class with `methodName`
 * and `execute(job, ctx)`, or a plain function registered under a name.
 */
import { ValidationError, type ErrorInfo, toErrorInfo } from "./errors.js";
import type { Job } from "./job.js";
import { validateJobName } from "./rules.js";
import type { Logger } from "./logger.js";
import type { RetryPolicy } from "./retry.js";
import type { StepTools } from "./steps.js";

export type WorkerResultKind = "success" | "retry" | "failure";

/** What a worker returns. A thrown error counts as `retry`. */
export class WorkerResult {
  private constructor(
    readonly kind: WorkerResultKind,
    readonly value: unknown,
    readonly error: ErrorInfo | undefined,
    readonly delayMs: number | undefined,
  ) {}
  /** The job succeeded; `result` (JSON) is stored on it. */
  static success(result?: unknown): WorkerResult {
    return new WorkerResult("success", result, undefined, undefined);
  }
  /** The attempt failed and should be retried (after `delay` ms, or the retry policy's delay). */
  static retry(error: unknown, options: { delay?: number } = {}): WorkerResult {
    return new WorkerResult("retry", undefined, toErrorInfo(error), options.delay);
  }
  /** The job failed for good: no more attempts. */
  static failure(error: unknown): WorkerResult {
    return new WorkerResult("failure", undefined, toErrorInfo(error), undefined);
  }
  get isSuccess(): boolean {
    return this.kind === "success";
  }
}

export interface WorkerContext {
  /** 1 for the first run. */
  readonly attempt: number;
  /** Aborted on timeout, shutdown, deadline or a lost lease; `signal.reason` says which. */
  readonly signal: AbortSignal;
  readonly serverId: string;
  readonly workerId: string;
  /** Fencing token: grows with every claim of this job. Pass it to side effects that must reject stale writers. */
  readonly leaseToken: number;
  readonly logger: Logger;
  /** Extends the lease now (heartbeats also run on their own). False when the lease is lost. */
  heartbeat(): Promise<boolean>;
  /** Records a progress value (JSON) on the job. False when the lease is lost. */
  progress(value: unknown): Promise<boolean>;
  /**
   * The jobs this one waited for (a flow's children, a continuation's
   * parent), read now, with their state, result and error; empty for a job
   * that waited for nothing. With `onChildFailure: "remove"`, only those
   * that finished as asked. Readable while the store keeps them (retention).
   */
  dependencies(): Promise<Job[]>;
  /**
   * Durable steps (steps.ts): `run` a piece of work once across every run
   * of this job, `sleep` / `sleepUntil`, `waitForEvent`. The code between
   * steps runs again on each run: keep it deterministic and step ids stable.
   */
  readonly step: StepTools;
}

export interface Worker {
  readonly methodName: string;
  execute(job: Job, ctx: WorkerContext): Promise<WorkerResult | void> | WorkerResult | void;
  /** Overrides the server's retry policy for this worker's jobs (a job's own `retry` still wins). */
  readonly retryPolicy?: RetryPolicy;
}

export type WorkerFunction = (job: Job, ctx: WorkerContext) => Promise<WorkerResult | void> | WorkerResult | void;

export interface RegisterOptions {
  retry?: RetryPolicy;
}

export class WorkerRegistry {
  private readonly workers = new Map<string, Worker>();

  register(worker: Worker): this;
  register(name: string, fn: WorkerFunction, options?: RegisterOptions): this;
  register(a: Worker | string, fn?: WorkerFunction, options: RegisterOptions = {}): this {
    let worker: Worker;
    if (typeof a === "string") {
      if (typeof fn !== "function") throw new ValidationError("register(name, fn) needs a function", "worker");
      worker = { methodName: a, execute: fn, ...(options.retry ? { retryPolicy: options.retry } : {}) };
    } else {
      if (!a || typeof a.execute !== "function") throw new ValidationError("a worker needs methodName and execute(job, ctx)", "worker");
      worker = a;
    }
    validateJobName(worker.methodName, "methodName");
    this.workers.set(worker.methodName, worker);
    return this;
  }

  get(name: string): Worker | undefined {
    return this.workers.get(name);
  }

  has(name: string): boolean {
    return this.workers.has(name);
  }

  names(): string[] {
    return [...this.workers.keys()];
  }

  /** How many names have a worker. */
  get size(): number {
    return this.workers.size;
  }
}
