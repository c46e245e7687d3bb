/**
 * The processor: claim → run → heartbeat → complete, within a deadline.
 *
 * Shared by the long-running server (server.ts) and by short-lived
 * invocations (tick.ts). It claims only as many jobs as it has free slots,
 * so no claimed job waits locally while its lease runs. Every write after
 * the claim carries the lease token: a job whose lease was lost (expired and
 * reclaimed, deleted, requeued) cannot be overwritten from here.
 *
 * Completions are batched (completer.ts): outcomes that arrive while a write
 * is in flight go out together in the next one.
 */
import type { Clock } from "./clock.js";
import { Completer } from "./completer.js";
import {
  DeadlineError,
  LeaseLostError,
  ShutdownError,
  TimeoutError,
  UnknownJobNameError,
  toErrorInfo,
  type ErrorInfo,
} from "./errors.js";
import type { Emitter, JobEventMap } from "./events.js";
import { Job, JobState, type JobRecord } from "./job.js";
import type { Logger } from "./logger.js";
import { WorkerResult, type WorkerContext, type WorkerRegistry } from "./registry.js";
import { RetryPolicy, type RetryPolicy as RetryPolicyType } from "./retry.js";
import type { LeaseRef, Outcome, Storage } from "./storage.js";

export interface ProcessorOptions {
  serverId: string;
  concurrency: number;
  /**
   * Jobs claimed ahead of free workers and held locally, their leases renewed
   * by heartbeats like running ones (0: claim only for free workers). Never
   * used with a deadline: a short-lived invocation claims only what it runs.
   */
  prefetch?: number;
  queues: string[];
  leaseMs: number;
  fetchBatchSize: number;
  /** Timeout for jobs without their own. */
  jobTimeoutMs: number | undefined;
  retryPolicy: RetryPolicyType;
  clock: Clock;
  logger: Logger;
  events: Emitter<JobEventMap>;
}

/** Running jobs are keyed by id and token: the same job may be claimed again here after its lease was lost. */
function runKey(id: string, token: number): string {
  return `${id}#${token}`;
}

/**
 * Abort state of one run. The AbortController is made only when the worker
 * reads `ctx.signal` (an AbortController costs more than the rest of a no-op
 * job's bookkeeping); the run itself races against `aborted`.
 */
class RunAbort {
  reason: unknown = undefined;
  private controller: AbortController | undefined;
  private rejectRun: ((reason: unknown) => void) | undefined;
  get aborted(): boolean {
    return this.reason !== undefined;
  }
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.reason = reason;
    this.controller?.abort(reason);
    this.rejectRun?.(reason);
  }
  /** Settles with `p`, or rejects at once when aborted (the worker's promise is left to finish on its own). */
  race<T>(p: PromiseLike<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.aborted) return reject(this.reason);
      this.rejectRun = reject;
      p.then(resolve, reject);
    });
  }
}

/** The worker's view of its run. A class, so that a run allocates no closures. */
class RunContext implements WorkerContext {
  private log: Logger | undefined;
  constructor(
    private readonly processor: Processor,
    private readonly entry: Running,
    readonly serverId: string,
    private readonly baseLogger: Logger,
  ) {}
  get attempt(): number {
    return this.entry.record.attempts;
  }
  get signal(): AbortSignal {
    return this.entry.controller.signal;
  }
  get workerId(): string {
    return this.entry.workerId;
  }
  get leaseToken(): number {
    return this.entry.record.leaseToken;
  }
  get logger(): Logger {
    const r = this.entry.record;
    return (this.log ??= this.baseLogger.child({ jobId: r.id, job: r.name, attempt: r.attempts, worker: this.entry.workerId }));
  }
  heartbeat(): Promise<boolean> {
    return this.processor.heartbeatOne(this.entry);
  }
  progress(value: unknown): Promise<boolean> {
    return this.processor.progressOne(this.entry, value);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as { then?: unknown }).then === "function";
}

interface Running {
  record: JobRecord;
  lease: LeaseRef;
  controller: RunAbort;
  startedAt: number;
  workerId: string;
  done: Promise<void>;
}

/** Observed durations per job name, for deadline planning (p95 of the last 50). */
export class DurationStats {
  private readonly samples = new Map<string, number[]>();
  record(name: string, ms: number): void {
    let s = this.samples.get(name);
    if (!s) this.samples.set(name, (s = []));
    s.push(ms);
    if (s.length > 50) s.shift();
  }
  p95(name: string): number | undefined {
    const s = this.samples.get(name);
    if (!s || s.length === 0) return undefined;
    const sorted = [...s].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)];
  }
}

export class Processor {
  private readonly running = new Map<string, Running>();
  /** Claimed ahead of free workers (prefetch), oldest first. */
  private buffered: JobRecord[] = [];
  /** Jobs asked for by claims still in flight: capacity they hold until they answer. */
  private claiming = 0;
  /** The newest run of each job id here. */
  private readonly runningById = new Map<string, Running>();
  private readonly freeWorkerSlots: number[];
  private readonly workerIds: string[] = [];
  private slotWaiters: Array<() => void> = [];
  private readonly completer: Completer;
  private heartbeatTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeating = false;
  readonly durations: DurationStats;

  constructor(
    private readonly storage: Storage,
    private readonly registry: WorkerRegistry,
    private readonly opts: ProcessorOptions,
    durations?: DurationStats,
  ) {
    this.durations = durations ?? new DurationStats();
    this.completer = new Completer(storage, opts);
    this.freeWorkerSlots = Array.from({ length: opts.concurrency }, (_, i) => opts.concurrency - i);
  }

  get runningCount(): number {
    return this.running.size;
  }

  freeSlots(): number {
    return this.opts.concurrency - this.running.size;
  }

  get bufferedCount(): number {
    return this.buffered.length;
  }

  /**
   * Whether a claim is worth a round trip now: a worker is idle with nothing
   * held or asked for it, or the prefetch buffer has room for a full fetch
   * batch (at most a sixth of the buffer), so that the next jobs arrive
   * while the held ones still keep the workers busy. A sixth: while a
   * backlog lasts the server keeps up to two claims in flight
   * (MAX_CLAIMS_IN_FLIGHT), each needing its batch of room, and most of
   * the buffer stays with the workers (a quarter measured no better).
   */
  wantsClaim(): boolean {
    const prefetch = this.opts.prefetch ?? 0;
    if (this.freeSlots() > this.buffered.length + this.claiming) return true;
    return prefetch > 0 && this.claimCapacity() >= Math.min(this.opts.fetchBatchSize, Math.ceil(prefetch / 6));
  }

  /** How many more jobs a claim may take now: free workers plus room in the prefetch buffer, less what claims in flight asked for. */
  claimCapacity(): number {
    return Math.max(0, this.opts.concurrency + (this.opts.prefetch ?? 0) - this.running.size - this.buffered.length - this.claiming);
  }


  /** Resolves when the next running job finishes (at once if none runs). */
  waitForCompletion(signal?: AbortSignal): Promise<void> {
    if (this.running.size === 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.slotWaiters.push(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Claims up to the free slots and starts the jobs. With a deadline, a job
   * whose expected duration (its timeout, the default timeout, or the p95
   * observed for its name) would not fit is handed straight back.
   * Returns { claimed, started, unfit }.
   */
  async fill(options: { deadline?: number; limit?: number } = {}): Promise<{ claimed: number; started: number; unfit: number }> {
    const capacity = options.deadline === undefined ? this.claimCapacity() : this.freeSlots() - this.buffered.length - this.claiming;
    const free = Math.min(capacity, this.opts.fetchBatchSize, options.limit ?? Infinity);
    if (free <= 0) return { claimed: 0, started: 0, unfit: 0 };
    const now = this.opts.clock.now();
    if (options.deadline !== undefined && options.deadline <= now) return { claimed: 0, started: 0, unfit: 0 };
    // Held for this claim until it answers, so that a concurrent claim
    // cannot take the same room.
    this.claiming += free;
    let records: JobRecord[];
    try {
      records = await this.storage.claim({
        queues: this.opts.queues,
        limit: free,
        owner: this.opts.serverId,
        leaseMs: this.opts.leaseMs,
        now,
      });
    } finally {
      this.claiming -= free;
    }
    if (options.deadline === undefined) {
      // Run what free workers can take now; hold the rest until a worker frees up.
      this.buffered.push(...records);
      const before = this.running.size;
      this.startBuffered();
      if (this.buffered.length > 0) this.ensureHeartbeat();
      return { claimed: records.length, started: this.running.size - before, unfit: 0 };
    }
    let started = 0;
    const unfit: Outcome[] = [];
    for (const rec of records) {
      if (now + this.expectedDuration(rec) > options.deadline) {
        unfit.push(this.releaseOutcome(rec, "released: would not finish before the invocation's deadline"));
        continue;
      }
      this.start(rec);
      started++;
    }
    if (unfit.length > 0) {
      this.completer.submit(...unfit);
      await this.completer.flushAll();
    }
    return { claimed: records.length, started, unfit: unfit.length };
  }

  expectedDuration(rec: JobRecord): number {
    return rec.timeoutMs ?? this.opts.jobTimeoutMs ?? this.durations.p95(rec.name) ?? 0;
  }

  /** Aborts every running job with `reason` (shutdown or deadline); their outcomes become releases, as do held jobs'. */
  abortAll(reason: Error): void {
    this.releaseBuffered(reason instanceof ShutdownError ? "released: server shutting down" : "released: invocation deadline");
    for (const r of this.running.values()) r.controller.abort(reason);
  }

  /** Hands jobs held in the prefetch buffer back to `enqueued` at once. */
  private releaseBuffered(reason: string): void {
    if (this.buffered.length === 0) return;
    const held = this.buffered;
    this.buffered = [];
    this.completer.submit(...held.map((rec) => this.releaseOutcome(rec, reason)));
  }

  private startBuffered(): void {
    while (this.buffered.length > 0 && this.running.size < this.opts.concurrency) this.start(this.buffered.shift()!);
  }

  /**
   * Waits up to `graceMs` for running jobs, then aborts the rest with
   * `reason` and releases them back to `enqueued`, then flushes every
   * outcome. Resolves when nothing is running and nothing is pending.
   */
  async drain(graceMs: number, reason: Error = new ShutdownError()): Promise<void> {
    // Held jobs have not started: nothing to wait for, they go back at once.
    this.releaseBuffered(reason instanceof ShutdownError ? "released: server shutting down" : "released: invocation deadline");
    if (this.running.size > 0) {
      const all = Promise.all([...this.running.values()].map((r) => r.done));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), Math.max(0, graceMs));
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.abortAll(reason);
        await Promise.all([...this.running.values()].map((r) => r.done));
      }
    }
    await this.completer.flushAll();
    this.stopHeartbeat();
  }

  /** Resolves when every outcome so far is written. */
  flushAll(): Promise<void> {
    return this.completer.flushAll();
  }

  // ------------------------------------------------------------ running

  private start(rec: JobRecord): void {
    const controller = new RunAbort();
    const slot = this.freeWorkerSlots.pop() ?? this.running.size + 1;
    const workerId = (this.workerIds[slot] ??= `${this.opts.serverId}/${slot}`);
    const entry: Running = {
      record: rec,
      lease: { id: rec.id, token: rec.leaseToken },
      controller,
      startedAt: this.opts.clock.now(),
      workerId,
      done: Promise.resolve(),
    };
    const key = runKey(rec.id, rec.leaseToken);
    // An older run of this job here has lost its lease (we just claimed it anew): tell it.
    this.runningById.get(rec.id)?.controller.abort(new LeaseLostError(rec.id));
    this.runningById.set(rec.id, entry);
    this.running.set(key, entry);
    this.ensureHeartbeat();
    entry.done = this.runAndRelease(entry, key, slot);
  }

  private async runAndRelease(entry: Running, key: string, slot: number): Promise<void> {
    try {
      await this.run(entry);
    } catch (e) {
      this.opts.logger.error("processor failed to run a job", { jobId: entry.record.id, error: String(e) });
    } finally {
      this.running.delete(key);
      if (this.runningById.get(entry.record.id) === entry) this.runningById.delete(entry.record.id);
      this.freeWorkerSlots.push(slot);
      this.startBuffered();
      if (this.running.size === 0 && this.buffered.length === 0) this.stopHeartbeat();
      if (this.slotWaiters.length > 0) {
        const waiters = this.slotWaiters;
        this.slotWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  private async run(entry: Running): Promise<void> {
    const { record: rec, controller, workerId } = entry;
    if (this.opts.events.has("job:start")) this.opts.events.emit("job:start", { job: rec, workerId });
    const worker = this.registry.get(rec.name);
    const ctx = new RunContext(this, entry, this.opts.serverId, this.opts.logger);
    const timeoutMs = rec.timeoutMs ?? this.opts.jobTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let outcome: { kind: "result"; result: WorkerResult } | { kind: "error"; error: unknown };

    if (!worker) {
      outcome = { kind: "error", error: new UnknownJobNameError(rec.name) };
    } else {
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => controller.abort(new TimeoutError(rec.id, timeoutMs)), timeoutMs);
      }
      try {
        const returned = worker.execute(Job.fromRecord(rec), ctx);
        // A synchronous worker costs no promise; an asynchronous one races the abort.
        const r = isThenable(returned) ? await controller.race(returned) : returned;
        outcome = { kind: "result", result: r instanceof WorkerResult ? r : WorkerResult.success(r ?? undefined) };
      } catch (e) {
        outcome = { kind: "error", error: controller.aborted ? controller.reason : e };
      } finally {
        clearTimeout(timer);
      }
    }

    const now = this.opts.clock.now();
    const durationMs = Math.max(0, now - entry.startedAt);
    const reason = controller.reason;
    if (reason instanceof LeaseLostError) {
      // Fenced: whatever we wrote now would be refused; the next owner decides.
      ctx.logger.warn("lease lost; outcome dropped", {});
      if (this.opts.events.has("job:lost")) this.opts.events.emit("job:lost", { id: rec.id, reason: "lease lost while running" });
      return;
    }
    if (reason instanceof ShutdownError || reason instanceof DeadlineError) {
      this.completer.submit(this.releaseOutcome(rec, `released: ${reason instanceof ShutdownError ? "server shutting down" : "invocation deadline"}`));
      return;
    }
    this.durations.record(rec.name, durationMs);
    this.completer.submit(this.decide(rec, outcome, now, workerId, durationMs, ctx));
  }

  /** Extends one job's lease now (ctx.heartbeat()). */
  async heartbeatOne(entry: Running): Promise<boolean> {
    const owned = await this.storage.extendLeases([entry.lease], this.opts.leaseMs, this.opts.clock.now());
    if (owned.length === 0) {
      entry.controller.abort(new LeaseLostError(entry.record.id));
      return false;
    }
    return true;
  }

  /** Records a progress value for one job (ctx.progress()). */
  async progressOne(entry: Running, value: unknown): Promise<boolean> {
    const ok = await this.storage.setProgress(entry.lease, value, this.opts.clock.now());
    if (!ok) entry.controller.abort(new LeaseLostError(entry.record.id));
    return ok;
  }

  /** The core's decision: which state an attempt leads to. Stores only persist it. */
  private decide(
    rec: JobRecord,
    outcome: { kind: "result"; result: WorkerResult } | { kind: "error"; error: unknown },
    now: number,
    workerId: string,
    durationMs: number,
    ctx: WorkerContext,
  ): Outcome {
    if (outcome.kind === "result" && outcome.result.kind === "success") {
      const result = outcome.result.value;
      if (this.opts.events.has("job:succeeded")) this.opts.events.emit("job:succeeded", { job: rec, workerId, durationMs, result });
      return { id: rec.id, token: rec.leaseToken, worker: workerId, state: JobState.Succeeded, result: result === undefined ? undefined : jsonOrString(result), reason: "succeeded" };
    }
    const base = { id: rec.id, token: rec.leaseToken, worker: workerId };
    let error: ErrorInfo;
    let forceFail = false;
    let delayMs: number | undefined;
    let cause: unknown;
    if (outcome.kind === "result") {
      error = outcome.result.error ?? { name: "Error", message: "failed" };
      forceFail = outcome.result.kind === "failure";
      delayMs = outcome.result.delayMs;
      cause = error;
    } else {
      cause = outcome.error;
      error = toErrorInfo(outcome.error);
    }
    if (forceFail || rec.attempts >= rec.maxAttempts) {
      const why = forceFail ? "failed" : `failed after ${rec.attempts} attempt${rec.attempts === 1 ? "" : "s"}`;
      if (this.opts.events.has("job:failed")) this.opts.events.emit("job:failed", { job: rec, workerId, durationMs, error });
      ctx.logger.warn("job failed", { error: error.message, durationMs });
      return { ...base, state: JobState.Failed, error, reason: `${why}: ${error.message}` };
    }
    const policy = rec.retry ? RetryPolicy.fromSpec(rec.retry) : (this.registry.get(rec.name)?.retryPolicy ?? this.opts.retryPolicy);
    const delay = delayMs ?? policy.delayFor(rec.attempts, cause);
    const runAt = now + Math.max(0, delay);
    if (this.opts.events.has("job:retry")) this.opts.events.emit("job:retry", { job: rec, workerId, durationMs, error, runAt });
    ctx.logger.info("job will retry", { error: error.message, retryInMs: delay });
    return { ...base, state: JobState.AwaitingRetry, runAt, error, reason: `retry ${rec.attempts + 1}/${rec.maxAttempts} in ${delay} ms: ${error.message}` };
  }

  private releaseOutcome(rec: JobRecord, reason: string): Outcome {
    if (this.opts.events.has("job:released")) this.opts.events.emit("job:released", { job: rec, reason });
    return { id: rec.id, token: rec.leaseToken, state: JobState.Enqueued, reason, worker: this.opts.serverId };
  }

  // ---------------------------------------------------------- heartbeat

  private ensureHeartbeat(): void {
    if (this.heartbeatTimer || this.heartbeating) return;
    const every = Math.max(10, Math.floor(this.opts.leaseMs / 3));
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = null;
      void this.beat();
    }, every);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** Extends every running and held lease in one call; drops the jobs whose lease is gone. */
  async beat(): Promise<void> {
    if (this.running.size === 0 && this.buffered.length === 0) return;
    this.heartbeating = true;
    const entries = [...this.running.values()];
    const held = [...this.buffered];
    try {
      const leases = [...entries.map((e) => e.lease), ...held.map((r) => ({ id: r.id, token: r.leaseToken }))];
      const owned = new Set(await this.storage.extendLeases(leases, this.opts.leaseMs, this.opts.clock.now()));
      for (const e of entries) {
        if (!owned.has(e.record.id) && !e.controller.aborted) {
          e.controller.abort(new LeaseLostError(e.record.id));
        }
      }
      const lost = held.filter((r) => !owned.has(r.id));
      if (lost.length > 0) this.buffered = this.buffered.filter((r) => !lost.includes(r));
    } catch (error) {
      this.opts.events.emit("storage:error", { operation: "extendLeases", error });
      this.opts.logger.warn("heartbeat failed; retrying next beat", { error: String(error) });
    } finally {
      this.heartbeating = false;
      if (this.running.size > 0 || this.buffered.length > 0) this.ensureHeartbeat();
    }
  }
}

function jsonOrString(v: unknown): unknown {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? undefined : JSON.parse(s);
  } catch {
    return String(v);
  }
}
