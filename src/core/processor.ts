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
  BudgetExceededError,
  CancelledError,
  DeadlineError,
  DecryptionError,
  EncryptionKeyMissingError,
  LeaseLostError,
  ShutdownError,
  StepError,
  TimeoutError,
  UnknownJobNameError,
  toErrorInfo,
  type ErrorInfo,
} from "./errors.js";
import { hasSealedArguments, openArguments, type Keyring } from "./encryption.js";
import type { Emitter, JobEventMap } from "./events.js";
import { Job, JobState, type JobRecord } from "./job.js";
import type { Logger } from "./logger.js";
import { WorkerResult, type WorkerContext, type WorkerRegistry } from "./registry.js";
import { RetryPolicy, type RetryPolicy as RetryPolicyType } from "./retry.js";
import type { CompletionResult, LeaseRef, Outcome, StorageDriver } from "./driver.js";
import { StepRunner, deliveryKey, type StepSuspension, type StepTools } from "./steps.js";
import type { Storage } from "./storage.js";
import type { Tracer } from "./tracing.js";
import { AdaptivePrefetch } from "./prefetch.js";

export interface ProcessorOptions {
  serverId: string;
  concurrency: number;
  /**
   * Jobs claimed ahead of free workers and held locally, their leases renewed
   * by heartbeats like running ones (0: claim only for free workers; "auto":
   * as many as AdaptivePrefetch decides). Never used with a deadline: a
   * short-lived invocation claims only what it runs.
   */
  prefetch?: number | "auto";
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
  /** Whether the worker reached a durable step in this run. */
  get usedSteps(): boolean {
    return this.entry.steps?.used === true;
  }
  get step(): StepTools {
    return (this.entry.steps ??= this.processor.stepRunner(this.entry));
  }
  async dependencies(): Promise<Job[]> {
    const flow = this.entry.record.flow;
    if (!flow) return [];
    const jobs = (await this.processor.storage.getMany(flow.dependsOn)).filter((j): j is Job => j !== null);
    // "remove": the dependencies that finished another way are not this job's.
    if (flow.otherwise !== "remove") return jobs;
    return jobs.filter((j) => (flow.on === "success" ? j.state === JobState.Succeeded : flow.on === "failure" ? j.state === JobState.Failed : true));
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
  /** performance.now() at start: the run time adaptive prefetch learns (the clock may be a test's). */
  startedPerf: number;
  workerId: string;
  /** Settles when the run's outcome is decided and submitted. */
  decided: Promise<void>;
  /** True once decided: the lease is no longer this run's to renew. */
  over: boolean;
  /** Settles when the worker slot is free again: after `decided`, and after the worker's own promise settles. */
  done: Promise<void>;
  /** The invocation's deadline and budget, when the run has one (Workers, Lambda). */
  deadline: number | undefined;
  budgetMs: number | undefined;
  /** The run's durable steps, made when the worker first reads ctx.step. */
  steps: StepRunner | undefined;
}

/**
 * Observed durations per job name, for deadline planning: the p95 of the
 * last 50 runs here, else an estimate another process stored (`prime`).
 * A run cut off at a deadline counts with the time it had, a lower bound.
 */
export class DurationStats {
  private readonly samples = new Map<string, number[]>();
  private readonly primed = new Map<string, number>();
  private readonly changed = new Set<string>();
  record(name: string, ms: number): void {
    let s = this.samples.get(name);
    if (!s) this.samples.set(name, (s = []));
    s.push(ms);
    if (s.length > 50) s.shift();
    this.changed.add(name);
  }
  p95(name: string): number | undefined {
    const s = this.samples.get(name);
    if (!s || s.length === 0) return this.primed.get(name);
    const sorted = [...s].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)];
  }
  /** Estimates read from the store; local samples take precedence. */
  prime(estimates: Record<string, number>): void {
    for (const [name, ms] of Object.entries(estimates)) if (Number.isFinite(ms) && ms >= 0) this.primed.set(name, ms);
  }
  /** The p95 of each name sampled since the last call, to store for other processes. */
  takeChanged(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of this.changed) {
      const p = this.p95(name);
      if (p !== undefined) out[name] = p;
    }
    this.changed.clear();
    return out;
  }
}

/** What a deadline-bound fill knows about its invocation. */
export interface Deadline {
  /** Epoch ms by which runs must be over. */
  deadline: number;
  /** The whole time an invocation gets for jobs (ms): what a job must fit to ever run on this runtime. */
  budgetMs: number;
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
  private readonly driver: StorageDriver;
  /** Opens sealed arguments for handlers (encryption.ts), and nothing else does. */
  private readonly keyring: Keyring | undefined;
  /** @internal What a run reads besides its own record (ctx.dependencies). */
  readonly storage: Storage;
  private heartbeatTimer: ReturnType<typeof setTimeout> | null = null;
  /** Event waits suspended here, by run, until their suspension is written (recheckWaits). */
  private readonly rechecks = new Map<string, { event: string; stepId: string }>();
  private heartbeating = false;
  private readonly tracer: Tracer | undefined;
  readonly durations: DurationStats;
  private readonly adaptive: AdaptivePrefetch | undefined;

  constructor(
    storage: Storage,
    private readonly registry: WorkerRegistry,
    private readonly opts: ProcessorOptions,
    durations?: DurationStats,
  ) {
    this.durations = durations ?? new DurationStats();
    this.driver = storage.driver;
    this.keyring = storage.encryption;
    this.storage = storage;
    this.completer = new Completer(this.driver, {
      ...opts,
      settle: (ids, now) => storage.settleDependents(ids, now),
      applied: (batch, results) => this.recheckWaits(batch, results),
    });
    this.tracer = storage.tracer;
    this.freeWorkerSlots = Array.from({ length: opts.concurrency }, (_, i) => opts.concurrency - i);
    this.adaptive = opts.prefetch === "auto" ? new AdaptivePrefetch(opts.concurrency) : undefined;
  }

  /** Jobs to hold ahead of free workers now: the set prefetch, or the adaptive target. */
  get prefetch(): number {
    return this.adaptive ? this.adaptive.target : ((this.opts.prefetch as number | undefined) ?? 0);
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
   * the buffer stays with the workers (docs/decisions/claims-in-flight.md).
   */
  wantsClaim(): boolean {
    const prefetch = this.prefetch;
    if (this.freeSlots() > this.buffered.length + this.claiming) return true;
    return prefetch > 0 && this.claimCapacity() >= Math.min(this.opts.fetchBatchSize, Math.ceil(prefetch / 6));
  }

  /** How many more jobs a claim may take now: free workers plus room in the prefetch buffer, less what claims in flight asked for. */
  claimCapacity(): number {
    return Math.max(0, this.opts.concurrency + this.prefetch - this.running.size - this.buffered.length - this.claiming);
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
   * observed for its name) does not fit what is left is handed straight
   * back, keeping its place at the head of its queue; one that could not
   * fit even a whole invocation's budget fails with BudgetExceededError
   * (it would otherwise come back forever).
   * Returns { claimed, started, unfit (handed back), failed (could never fit) }.
   */
  async fill(
    options: { deadline?: number; budgetMs?: number; limit?: number } = {},
  ): Promise<{ claimed: number; started: number; unfit: number; failed: number }> {
    const capacity = options.deadline === undefined ? this.claimCapacity() : this.freeSlots() - this.buffered.length - this.claiming;
    const free = Math.min(capacity, this.opts.fetchBatchSize, options.limit ?? Infinity);
    if (free <= 0) return { claimed: 0, started: 0, unfit: 0, failed: 0 };
    // A server with no workers (a producer, a dashboard) claims nothing: it
    // could only fail other servers' jobs with UnknownJobNameError.
    if (this.registry.size === 0) return { claimed: 0, started: 0, unfit: 0, failed: 0 };
    const now = this.opts.clock.now();
    if (options.deadline !== undefined && options.deadline <= now) return { claimed: 0, started: 0, unfit: 0, failed: 0 };
    // Held for this claim until it answers, so that a concurrent claim
    // cannot take the same room.
    this.claiming += free;
    let records: JobRecord[];
    const sent = performance.now();
    try {
      records = await this.driver.claim({
        queues: this.opts.queues,
        limit: free,
        owner: this.opts.serverId,
        leaseMs: this.opts.leaseMs,
        now,
      });
    } finally {
      this.claiming -= free;
    }
    // The store sets leaseUntil = now + leaseMs with the `now` sent. A claim
    // held up on the way (a network partition: TCP delivers it when the route
    // heals) is applied late with that stale `now`, and an answer that takes
    // a lease or longer brings jobs whose leases have already run out, which
    // another server may be reclaiming: they are not run here; their expired
    // leases send them back to the queue.
    const elapsed = performance.now() - sent;
    this.adaptive?.observeClaim(elapsed, free, records.length);
    if (this.tracer && records.length > 0) this.tracer.claimed(records, { serverId: this.opts.serverId, queues: this.opts.queues, elapsedMs: elapsed });
    if (records.length > 0 && elapsed >= this.opts.leaseMs) {
      this.opts.logger.warn("claim answered after its lease ran out (a slow or partitioned store); its jobs are left to be reclaimed", {
        count: records.length,
        elapsedMs: Math.round(elapsed),
        leaseMs: this.opts.leaseMs,
      });
      if (this.opts.events.has("job:lost"))
        for (const rec of records) this.opts.events.emit("job:lost", { id: rec.id, reason: "claim answered after its lease ran out" });
      return { claimed: 0, started: 0, unfit: 0, failed: 0 };
    }
    if (options.deadline === undefined) {
      // Run what free workers can take now; hold the rest until a worker frees up.
      this.buffered.push(...records);
      const before = this.running.size;
      this.startBuffered();
      if (this.buffered.length > 0) this.ensureHeartbeat();
      return { claimed: records.length, started: this.running.size - before, unfit: 0, failed: 0 };
    }
    let started = 0;
    const unfit: Outcome[] = [];
    const budgetMs = options.budgetMs ?? options.deadline - now;
    for (const rec of records) {
      const expected = this.expectedDuration(rec);
      if (expected > budgetMs) {
        unfit.push(this.budgetFailure(rec, new BudgetExceededError(rec.id, `it is expected to run ${expected} ms (${this.expectedSource(rec)})`, budgetMs)));
        continue;
      }
      if (now + expected > options.deadline) {
        unfit.push(this.releaseOutcome(rec, "released: would not finish before the invocation's deadline"));
        continue;
      }
      this.start(rec, budgetMs, options.deadline);
      started++;
    }
    if (unfit.length > 0) {
      this.completer.submit(...unfit);
      await this.completer.flushAll();
    }
    return {
      claimed: records.length,
      started,
      unfit: unfit.filter((o) => o.state === JobState.Enqueued).length,
      failed: unfit.length - unfit.filter((o) => o.state === JobState.Enqueued).length,
    };
  }

  expectedDuration(rec: JobRecord): number {
    return rec.timeoutMs ?? this.opts.jobTimeoutMs ?? this.durations.p95(rec.name) ?? 0;
  }

  private expectedSource(rec: JobRecord): string {
    return rec.timeoutMs !== undefined ? "its timeout" : this.opts.jobTimeoutMs !== undefined ? "the default job timeout" : `the p95 of runs of ${rec.name}`;
  }

  /** Fails a job that cannot run on this runtime: no more attempts, the reason on the job. */
  private budgetFailure(rec: JobRecord, error: BudgetExceededError): Outcome {
    const info = toErrorInfo(error);
    if (this.opts.events.has("job:failed")) this.opts.events.emit("job:failed", { job: rec, workerId: this.opts.serverId, durationMs: 0, error: info });
    this.opts.logger.error("job can never fit an invocation's budget; failed", { jobId: rec.id, job: rec.name, error });
    return { id: rec.id, token: rec.leaseToken, state: JobState.Failed, error: info, reason: `failed: ${error.message}`, worker: this.opts.serverId };
  }

  /**
   * Cancelled jobs: a run of one of them here is aborted at once (its
   * signal's reason a CancelledError, its outcome left to the store, which
   * recorded the cancellation), and a held one is dropped.
   */
  cancel(ids: readonly string[], how?: string): void {
    for (const id of ids) {
      const entry = this.runningById.get(id);
      if (entry && !entry.controller.aborted) entry.controller.abort(new CancelledError(id, how));
    }
    const gone = new Set(ids);
    if (this.buffered.some((r) => gone.has(r.id))) this.buffered = this.buffered.filter((r) => !gone.has(r.id));
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
        // Outcomes, not slots: a worker that ignores its signal may run on, its outcome already recorded.
        await Promise.all([...this.running.values()].map((r) => r.decided));
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

  private start(rec: JobRecord, budgetMs?: number, deadline?: number): void {
    const controller = new RunAbort();
    const slot = this.freeWorkerSlots.pop() ?? this.running.size + 1;
    const workerId = (this.workerIds[slot] ??= `${this.opts.serverId}/${slot}`);
    const entry: Running = {
      record: rec,
      lease: { id: rec.id, token: rec.leaseToken },
      controller,
      startedAt: this.opts.clock.now(),
      startedPerf: performance.now(),
      workerId,
      decided: Promise.resolve(),
      over: false,
      done: Promise.resolve(),
      deadline,
      budgetMs,
      steps: undefined,
    };
    const key = runKey(rec.id, rec.leaseToken);
    // An older run of this job here has lost its lease (we just claimed it anew): tell it.
    this.runningById.get(rec.id)?.controller.abort(new LeaseLostError(rec.id));
    this.runningById.set(rec.id, entry);
    this.running.set(key, entry);
    this.ensureHeartbeat();
    let decided!: () => void;
    entry.decided = new Promise<void>((resolve) => {
      decided = () => {
        entry.over = true;
        resolve();
      };
    });
    entry.done = this.runAndRelease(entry, key, slot, decided, budgetMs);
  }

  /**
   * Runs the job and frees its slot. The slot stays taken until the
   * worker's own promise settles, even when the run was aborted (timeout,
   * lost lease, deadline) and its outcome already recorded: code that
   * ignores its AbortSignal still runs, so counting it keeps workerCount a
   * true bound on jobs running at once. Such an overrun is reported
   * (`job:overrun`, a warning) once.
   */
  private async runAndRelease(entry: Running, key: string, slot: number, decided: () => void, budgetMs: number | undefined): Promise<void> {
    try {
      const pending = await this.run(entry, budgetMs);
      decided();
      if (pending) await this.outlive(entry, pending);
    } catch (e) {
      this.opts.logger.error("processor failed to run a job", { jobId: entry.record.id, error: e });
    } finally {
      decided();
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

  /** Waits for a worker that did not stop when aborted, holding its slot. */
  private async outlive(entry: Running, pending: { settled: boolean; promise: Promise<unknown> }): Promise<void> {
    if (pending.settled) return;
    const rec = entry.record;
    const reason = entry.controller.reason;
    const why = reason instanceof Error ? reason.name : "aborted";
    if (this.opts.events.has("job:overrun")) this.opts.events.emit("job:overrun", { job: rec, workerId: entry.workerId, reason: why });
    this.opts.logger.warn("job ignored its abort signal and is still running; its worker slot stays taken until it returns", {
      jobId: rec.id,
      job: rec.name,
      worker: entry.workerId,
      reason: why,
    });
    await pending.promise;
  }

  /**
   * One attempt: runs the worker and submits its outcome. Returns the
   * worker's promise when the run was aborted before it settled.
   */
  private async run(entry: Running, budgetMs: number | undefined): Promise<{ settled: boolean; promise: Promise<unknown> } | undefined> {
    const { record: rec, controller, workerId } = entry;
    if (this.opts.events.has("job:start")) this.opts.events.emit("job:start", { job: rec, workerId });
    const worker = this.registry.get(rec.name);
    const ctx = new RunContext(this, entry, this.opts.serverId, this.opts.logger);
    const timeoutMs = rec.timeoutMs ?? this.opts.jobTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let outcome: { kind: "result"; result: WorkerResult } | { kind: "error"; error: unknown };
    let pending: { settled: boolean; promise: Promise<unknown> } | undefined;
    const span = this.tracer?.run(rec, workerId);

    if (!worker) {
      outcome = { kind: "error", error: new UnknownJobNameError(rec.name) };
    } else {
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => controller.abort(new TimeoutError(rec.id, timeoutMs)), timeoutMs);
      }
      try {
        const job = Job.fromRecord(rec);
        // Only the handler's Job holds the plaintext: events, logs and outcomes keep reading `rec`.
        if (hasSealedArguments(rec.args)) Object.assign(job, { arguments: await openArguments(rec.id, rec.args, this.keyring) });
        const returned = span ? span.within(() => worker.execute(job, ctx)) : worker.execute(job, ctx);
        // A synchronous worker costs no promise; an asynchronous one races the abort.
        let r: WorkerResult | void;
        if (isThenable(returned)) {
          const p = { settled: false, promise: Promise.resolve(returned).then(settle, settle) };
          function settle() {
            p.settled = true;
          }
          pending = p;
          r = await controller.race(returned);
        } else {
          r = returned;
        }
        outcome = { kind: "result", result: r instanceof WorkerResult ? r : WorkerResult.success(r ?? undefined) };
      } catch (e) {
        outcome = { kind: "error", error: controller.aborted ? controller.reason : e };
        // Another attempt cannot open them either: failed at once, not retried.
        if (!controller.aborted && (e instanceof EncryptionKeyMissingError || e instanceof DecryptionError))
          outcome = { kind: "result", result: WorkerResult.failure(e) };
      } finally {
        clearTimeout(timer);
      }
    }

    const now = this.opts.clock.now();
    const durationMs = Math.max(0, now - entry.startedAt);
    const reason = controller.reason;
    const still = controller.aborted && pending !== undefined && !pending.settled ? pending : undefined;
    span?.end({ outcome, aborted: reason });
    if (reason instanceof LeaseLostError) {
      // Fenced: whatever we wrote now would be refused; the next owner decides.
      ctx.logger.warn("lease lost; outcome dropped", {});
      if (this.opts.events.has("job:lost")) this.opts.events.emit("job:lost", { id: rec.id, reason: "lease lost while running" });
      return still;
    }
    if (reason instanceof CancelledError) {
      // The store recorded the cancellation; nothing of this run is written.
      ctx.logger.info("job cancelled while running", {});
      if (this.opts.events.has("job:cancelled")) this.opts.events.emit("job:cancelled", { id: rec.id, workerId, job: rec });
      return still;
    }
    if (reason instanceof ShutdownError) {
      this.completer.submit(this.releaseOutcome(rec, "released: server shutting down"));
      return still;
    }
    if (reason instanceof DeadlineError) {
      // Cut off inside a step: that step's time is what was learned (a job's
      // own estimate would hold it back at every claim, uncounted).
      const inStep = entry.steps?.cutOff(now) !== undefined;
      this.completer.submit(this.cutOff(rec, inStep ? Math.max(0, now - entry.startedAt) : durationMs, budgetMs, !inStep));
      return still;
    }
    // A run of steps must fit an invocation one step at a time: its longest step is what counts.
    const steps = entry.steps;
    this.durations.record(rec.name, steps?.used ? steps.longestStepMs : durationMs);
    if (this.adaptive) {
      const end = performance.now();
      this.adaptive.observeRun(end - entry.startedPerf, end);
    }
    if (steps?.suspension) {
      this.completer.submit(this.suspended(rec, steps.suspension, now, workerId));
      return still;
    }
    this.completer.submit(this.decide(rec, outcome, now, workerId, durationMs, ctx));
    return still;
  }

  /**
   * A run cut off at an invocation's deadline. Its time so far feeds the
   * estimate (a lower bound), so a job that outgrows the budget is soon
   * known as one. A run that had at least half a whole budget counts as an
   * attempt, and once attempts run out the job fails with
   * BudgetExceededError; a run started late gives its attempt back. Either
   * way the job keeps its place at the head of its queue, so the next
   * invocation starts it first, with its whole budget.
   */
  private cutOff(rec: JobRecord, durationMs: number, budgetMs: number | undefined, learn = true): Outcome {
    if (learn) this.durations.record(rec.name, durationMs);
    const counts = budgetMs !== undefined && durationMs * 2 >= budgetMs;
    if (counts && rec.attempts >= rec.maxAttempts) {
      return this.budgetFailure(
        rec,
        new BudgetExceededError(rec.id, `it was cut off at the invocation's deadline in each of its ${rec.attempts} attempts`, budgetMs),
      );
    }
    const outcome = this.releaseOutcome(
      rec,
      counts
        ? `released: cut off at the invocation's deadline after ${durationMs} ms (attempt ${rec.attempts} of ${rec.maxAttempts} counted)`
        : "released: invocation deadline",
    );
    if (counts) outcome.countAttempt = true;
    return outcome;
  }

  /** Extends one job's lease now (ctx.heartbeat()). */
  async heartbeatOne(entry: Running): Promise<boolean> {
    const owned = await this.driver.extendLeases([entry.lease], this.opts.leaseMs, this.opts.clock.now());
    if (owned.length === 0) {
      entry.controller.abort(new LeaseLostError(entry.record.id));
      return false;
    }
    return true;
  }

  /** Records a progress value for one job (ctx.progress()). */
  async progressOne(entry: Running, value: unknown): Promise<boolean> {
    const ok = await this.driver.setProgress(entry.lease, value, this.opts.clock.now());
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
      return {
        id: rec.id,
        token: rec.leaseToken,
        worker: workerId,
        state: JobState.Succeeded,
        result: result === undefined ? undefined : jsonOrString(result),
        reason: "succeeded",
      };
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
      // A step used against its rules, or one that cannot fit an invocation: another attempt meets the same.
      forceFail = outcome.error instanceof StepError || (outcome.error instanceof BudgetExceededError && ctx instanceof RunContext && ctx.usedSteps);
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

  /** @internal The durable steps of one run (ctx.step). */
  stepRunner(entry: Running): StepRunner {
    const durations = this.durations;
    return new StepRunner({
      driver: this.driver,
      clock: this.opts.clock,
      record: entry.record,
      lease: entry.lease,
      workerId: entry.workerId,
      deadline: entry.deadline,
      budgetMs: entry.budgetMs,
      estimate: (key) => durations.p95(key),
      recordTime: (key, ms) => durations.record(key, ms),
      leaseLost: () => entry.controller.abort(new LeaseLostError(entry.record.id)),
      aborted: () => entry.controller.aborted,
    });
  }

  /**
   * A run its steps suspended (a sleep, an event wait, a step's retry
   * delay, or the deadline before a step): due again at runAt with its
   * attempt given back, or, when that is now, released to keep its place.
   * A wait's store is checked again once the suspension is written.
   */
  private suspended(rec: JobRecord, s: StepSuspension, now: number, workerId: string): Outcome {
    if (s.wait) this.rechecks.set(runKey(rec.id, rec.leaseToken), s.wait);
    if (this.opts.events.has("job:suspended")) this.opts.events.emit("job:suspended", { job: rec, runAt: s.runAt, reason: s.reason });
    if (s.runAt <= now)
      return {
        id: rec.id,
        token: rec.leaseToken,
        state: JobState.Enqueued,
        reason: s.reason,
        worker: workerId,
        ...(s.countAttempt ? { countAttempt: true } : {}),
      };
    return { id: rec.id, token: rec.leaseToken, state: JobState.Scheduled, runAt: s.runAt, reason: s.reason, worker: workerId };
  }

  /**
   * After suspensions are written: a waiting job whose event arrived while
   * it still ran (sendEvent found it processing, stored the event, and
   * could not requeue it) is requeued here.
   */
  private async recheckWaits(batch: Outcome[], results: CompletionResult[]): Promise<void> {
    if (this.rechecks.size === 0) return;
    const due: string[] = [];
    await Promise.all(
      batch.map(async (o, i) => {
        const key = runKey(o.id, o.token);
        const wait = this.rechecks.get(key);
        if (!wait) return;
        this.rechecks.delete(key);
        if (results[i]?.status !== "applied") return;
        const stored = await this.driver.kvGet(deliveryKey(o.id, wait.stepId), this.opts.clock.now());
        if (stored !== undefined) due.push(o.id);
      }),
    );
    if (due.length > 0) await this.storage.wake(due, "event received");
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

  /**
   * Runs whose lease a heartbeat found gone. One read of their jobs tells
   * a cancellation (the reason a CancelledError, as a store's channel would
   * have said at once; over HTTP-only stores the heartbeat is that channel)
   * from a lost lease; when the read fails they are taken as lost, which
   * drops their outcomes all the same.
   */
  private async abortGone(gone: Running[]): Promise<void> {
    let records: Array<JobRecord | null> = [];
    try {
      records = await this.driver.get(gone.map((e) => e.record.id));
    } catch (error) {
      this.opts.logger.warn("could not read jobs whose lease was lost; taken as lost", { error });
    }
    gone.forEach((e, i) => {
      const how = cancelledHow(records[i], e.lease.token);
      e.controller.abort(how === undefined ? new LeaseLostError(e.record.id) : new CancelledError(e.record.id, how));
    });
  }

  /** Extends every running and held lease in one call; drops the jobs whose lease is gone. */
  async beat(): Promise<void> {
    if (this.running.size === 0 && this.buffered.length === 0) return;
    this.heartbeating = true;
    const entries = [...this.running.values()].filter((e) => !e.over);
    const held = [...this.buffered];
    try {
      const leases = [...entries.map((e) => e.lease), ...held.map((r) => ({ id: r.id, token: r.leaseToken }))];
      const owned = new Set(await this.driver.extendLeases(leases, this.opts.leaseMs, this.opts.clock.now()));
      const lost = held.filter((r) => !owned.has(r.id));
      if (lost.length > 0) this.buffered = this.buffered.filter((r) => !lost.includes(r));
      const gone = entries.filter((e) => !owned.has(e.record.id) && !e.controller.aborted);
      if (gone.length > 0) await this.abortGone(gone);
    } catch (error) {
      this.opts.events.emit("storage:error", { operation: "extendLeases", error });
      this.opts.logger.warn("heartbeat failed; retrying next beat", { error });
    } finally {
      this.heartbeating = false;
      if (this.running.size > 0 || this.buffered.length > 0) this.ensureHeartbeat();
    }
  }
}

/**
 * How a run's job was ended, when a cancel or delete ended it: the job is
 * `deleted`, its token one past the run's (the transition's bump, so no
 * reclaim came between) and its last history entry says who. Undefined
 * when the lease went some other way.
 */
function cancelledHow(rec: JobRecord | null | undefined, token: number): string | undefined {
  if (!rec || rec.state !== JobState.Deleted || rec.leaseToken !== token + 1) return undefined;
  const reason = rec.history.at(-1)?.reason;
  return reason !== undefined && (reason.startsWith("cancelled") || reason.startsWith("deleted")) ? reason : undefined;
}

function jsonOrString(v: unknown): unknown {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? undefined : JSON.parse(s);
  } catch {
    return String(v);
  }
}
