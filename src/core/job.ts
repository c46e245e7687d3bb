/**
 * Terminology
 *
 * - job: one unit of work: a name (which worker runs it), JSON arguments, and
 *   its bookkeeping (state, attempts, history).
 * - queue: a named lane. Servers take queues in priority order; inside one
 *   queue, higher `priority` runs first, then the earlier `runAt`.
 * - attempt: one claim of the job by a worker. `attempts` counts claims.
 * - lease: the right to finish a claimed job, held by one owner until
 *   `leaseUntil`. Every claim bumps the job's `leaseToken`, a number that only
 *   grows: a write carrying an older token is refused (fencing).
 * - record: the plain, JSON-shaped form of a job that crosses the storage
 *   seam (times in epoch milliseconds).
 */
import { ValidationError, type ErrorInfo } from "./errors.js";
import type { RetrySpec } from "./retry.js";
import {
  JOB_BOUNDS,
  toJsonValue,
  validateInt,
  validateJobId,
  validateJobName,
  validateMetadata,
  validateLimitKey,
  validateQueueName,
  validateUniqueKey,
} from "./rules.js";

export const JobState = {
  Scheduled: "scheduled",
  Enqueued: "enqueued",
  Processing: "processing",
  Succeeded: "succeeded",
  Failed: "failed",
  AwaitingRetry: "awaiting_retry",
  Deleted: "deleted",
  /** Waits for other jobs to finish (a flow's parent, a continuation): see `FlowSpec`. */
  Awaiting: "awaiting",
} as const;
export type JobState = (typeof JobState)[keyof typeof JobState];

export const ALL_STATES: readonly JobState[] = Object.values(JobState);
/** States a job leaves only by an explicit requeue (or pruning). */
export const FINISHED_STATES: readonly JobState[] = [JobState.Succeeded, JobState.Failed, JobState.Deleted];
/** Waiting for their `runAt`. */
export const DELAYED_STATES: readonly JobState[] = [JobState.Scheduled, JobState.AwaitingRetry];

export function isJobState(v: unknown): v is JobState {
  return typeof v === "string" && (ALL_STATES as readonly string[]).includes(v);
}

export interface HistoryEntry {
  state: JobState;
  /** Epoch ms. */
  at: number;
  reason?: string;
  /** The server or worker that made the transition. */
  worker?: string;
}

/** Most recent transitions kept per job: an audit trail, not an unbounded log. */
export const HISTORY_LIMIT = 50;

/**
 * Reads a history kept as text, as the Redis and PostgreSQL backends keep it
 * so that appending is a string operation: each entry's JSON, oldest first,
 * one per line (JSON text never holds a raw newline). "" is no entries.
 */
export function historyFromLines(text: string): HistoryEntry[] {
  return text === "" ? [] : (JSON.parse(`[${text.replaceAll("\n", ",")}]`) as HistoryEntry[]);
}

/** Appends, dropping the oldest entries past HISTORY_LIMIT. Returns the same array. */
export function appendHistory(history: HistoryEntry[], ...entries: HistoryEntry[]): HistoryEntry[] {
  history.push(...entries);
  if (history.length > HISTORY_LIMIT) history.splice(0, history.length - HISTORY_LIMIT);
  return history;
}

/** The plain form of a job that every backend persists. */
export interface JobRecord {
  id: string;
  name: string;
  args: unknown[];
  queue: string;
  priority: number;
  state: JobState;
  attempts: number;
  maxAttempts: number;
  retry?: RetrySpec;
  timeoutMs?: number;
  uniqueKey?: string;
  /** Epoch ms when uniqueKey stops deduplicating (uniqueTtl); absent: while the job is kept. */
  uniqueUntil?: number;
  /** At most concurrencyLimit jobs with this key are processing at once (JobOptions.concurrency). */
  concurrencyKey?: string;
  concurrencyLimit?: number;
  /** At most rateLimit jobs with this key start per window of rateInterval ms (JobOptions.rateLimit). */
  rateKey?: string;
  rateLimit?: number;
  rateInterval?: number;
  /**
   * The rate window (index of floor(time / rateInterval)) whose start this
   * job holds, set when the claim deferred it to that window; a claim within
   * that window starts it without taking another start.
   */
  rateWindow?: number;
  metadata?: Record<string, unknown>;
  /** What the job waits for before it may run (flows and continuations); kept after it is released. */
  flow?: FlowSpec;
  createdAt: number;
  updatedAt: number;
  /** When the job becomes (or became) due. Orders jobs inside a queue. */
  runAt: number;
  leaseOwner?: string;
  leaseUntil?: number;
  /** Fencing token: bumped on every claim and on every change that voids a lease. */
  leaseToken: number;
  finishedAt?: number;
  result?: unknown;
  error?: ErrorInfo;
  progress?: unknown;
  /** Durable steps reached so far (ctx.step, steps.ts), in the order first reached. */
  steps?: StepRecord[];
  history: HistoryEntry[];
}

/**
 * One durable step of a job (ctx.step): what the store keeps so that a
 * later run of the job (a retry, a reclaim, the next invocation) returns a
 * finished step's result instead of running it again.
 */
export interface StepRecord {
  /** Unique within the job; chosen by the worker's code (ctx.step.run("charge", …)). */
  id: string;
  /** `run`: a function's result; `sleep`: a pause until `until`; `wait`: an event or a timeout at `until`. */
  kind: "run" | "sleep" | "wait";
  /** `waiting`: a sleep or wait not over yet; `failed`: a run step whose latest try threw (it runs again). */
  status: "completed" | "waiting" | "failed";
  /** Epoch ms the step was first reached. */
  startedAt: number;
  finishedAt?: number;
  /** run: the function's value (JSON); wait: the event `{ name, data, at }`, or null when it timed out. */
  result?: unknown;
  /** run: the latest try's error while `failed`. */
  error?: ErrorInfo;
  /** run: how many tries threw. */
  failures?: number;
  /** run: how long the function took, ms. */
  durationMs?: number;
  /** sleep: when it ends; wait: when it times out (epoch ms). */
  until?: number;
  /** wait: the event's name, and the fields its data must equal. */
  event?: string;
  match?: Record<string, unknown>;
}

/**
 * A JobRecord read from a store that keeps the history as lines of JSON
 * (historyFromLines), with the history parsed when first read: a claimed
 * job's history is seldom read while it runs, and parsing every one is a
 * large share of a short job's cost (docs/decisions/lazy-history.md).
 * Every other field is an own property; `history` is an accessor of the
 * class, so a spread (`{ ...record }`) leaves it out: copy with
 * `toJSON()`, which includes it, as JSON.stringify does.
 */
// The fields of a JobRecord but its history, declared on the class below.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unsafe-declaration-merging
export interface LazyHistoryRecord extends Omit<JobRecord, "history"> {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class LazyHistoryRecord implements JobRecord {
  #lines: string;
  #history: HistoryEntry[] | undefined;

  constructor(fields: Omit<JobRecord, "history">, historyLines: string) {
    Object.assign(this, fields);
    this.#lines = historyLines;
    this.#history = undefined;
  }

  get history(): HistoryEntry[] {
    return (this.#history ??= historyFromLines(this.#lines));
  }

  set history(entries: HistoryEntry[]) {
    this.#history = entries;
  }

  /** A plain JobRecord, history included. */
  toJSON(): JobRecord {
    return { ...this, history: this.history };
  }
}

export interface JobOptions {
  /** Queue name; default `"default"`. */
  queue?: string;
  /** Higher runs first within a queue; an integer, default 0. */
  priority?: number;
  /** Attempts before the job ends `failed`; default 3. */
  maxAttempts?: number;
  /** Per-job retry policy (exponential or fixed); default: the server's. */
  retry?: RetrySpec | { toSpec(): RetrySpec };
  /** Do not run before this time. */
  runAt?: Date;
  /** Do not run before this many milliseconds after enqueue. */
  delay?: number;
  /** At most one job with this key exists until it is pruned: a second enqueue returns the first job's id. */
  uniqueKey?: string;
  /**
   * How a second enqueue with the same key is taken: "first" (default) keeps
   * the first job and returns its id; "debounce" replaces the arguments,
   * metadata and due time of the first job while it waits (scheduled or
   * enqueued) and returns its id, and makes a new job once it runs.
   */
  uniqueMode?: "first" | "debounce";
  /**
   * Milliseconds the key holds, from the enqueue that set it, whatever
   * becomes of the job and however long it is kept: after that a new
   * enqueue with the key makes a new job (a throttle: one job per window).
   */
  uniqueTtl?: number;
  /**
   * At most `limit` jobs with `key` run at once, across every server and
   * invocation: the store decides it in the claim. Jobs over the limit wait
   * (enqueued) until a job with the key finishes, fails, retries or loses
   * its lease. Jobs that share a key should share its limit: each job is
   * held to its own.
   */
  concurrency?: ConcurrencyLimit;
  /**
   * At most `limit` jobs with `key` start per window of `interval` ms
   * (windows aligned to the epoch), across every server: a claim that finds
   * the window full reserves a start in the first window with room and
   * leaves the job `scheduled` until then, without polling.
   */
  rateLimit?: RateLimit;
  /** Milliseconds before the run is aborted and counted as a failed attempt. */
  timeout?: number;
  metadata?: Record<string, unknown>;
  /**
   * Encrypt the arguments at rest (AES-256-GCM, the storage's keyring):
   * `true` seals all of them, a list seals these top-level fields of each
   * object argument. Stores, the dashboard, the API and logs see
   * ciphertext; the handler gets the plaintext. See encryption.ts.
   */
  encrypt?: boolean | readonly string[];
}

/** Which outcome of a dependency lets a waiting job go: succeeded, failed, or any finished state (succeeded, failed, deleted). */
export type DependencyOutcome = "success" | "failure" | "any";

/**
 * What a waiting job does when a dependency finishes another way than
 * `on` asks: "fail" (end failed, at once, with a DependencyError), "delete"
 * (end deleted, at once: a continuation whose parent went the other way),
 * "ignore" (run once all have finished, and see that dependency in
 * `ctx.dependencies()`), "remove" (run once all have finished, without it).
 */
export type UnmetDependency = "fail" | "delete" | "ignore" | "remove";

/** What an `awaiting` job waits for. */
export interface FlowSpec {
  /** Ids of the jobs it waits for (a flow's children, a continuation's parent). */
  dependsOn: string[];
  on: DependencyOutcome;
  otherwise: UnmetDependency;
}

export interface ConcurrencyLimit {
  key: string;
  limit: number;
}

export interface RateLimit {
  key: string;
  limit: number;
  /** Window length in ms. */
  interval: number;
}

export const DEFAULT_QUEUE = "default";
export const DEFAULT_MAX_ATTEMPTS = 3;

export type JobHistory = Array<{ state: JobState; at: Date; reason?: string; worker?: string }>;

/**
 * A job. Build one with `new Job(name, args, options)` and enqueue it; jobs
 * read back from a storage carry their state, attempts and history.
 */
export class Job {
  id: string;
  readonly name: string;
  readonly arguments: unknown[];
  readonly queue: string;
  readonly priority: number;
  readonly maxAttempts: number;
  readonly retry: RetrySpec | undefined;
  readonly uniqueKey: string | undefined;
  readonly uniqueMode: "first" | "debounce" | undefined;
  readonly uniqueTtl: number | undefined;
  readonly concurrency: ConcurrencyLimit | undefined;
  readonly rateLimit: RateLimit | undefined;
  readonly timeout: number | undefined;
  readonly metadata: Record<string, unknown>;
  /** What `Storage.enqueue` seals (JobOptions.encrypt); undefined on a job read back, whose sealed values are envelopes. */
  readonly encrypt: boolean | readonly string[] | undefined;
  state: JobState;
  attempts: number;
  /** Built from the stored record when first read (see `fromRecord`). */
  #history: JobHistory | undefined;
  #historyOf: JobRecord | undefined;
  runAt: Date | undefined;
  /** Relative delay asked at construction; resolved against the clock at enqueue. */
  readonly delay: number | undefined;
  createdAt: Date | undefined;
  updatedAt: Date | undefined;
  finishedAt: Date | undefined;
  leaseOwner: string | undefined;
  leaseUntil: Date | undefined;
  leaseToken: number;
  result: unknown;
  error: ErrorInfo | undefined;
  progress: unknown;
  /** What the job waits (or waited) for: set on jobs stored by `enqueueFlow` or `continueWith`. */
  flow: FlowSpec | undefined;
  /** Durable steps reached so far (ctx.step), in order; empty for a job that used none. */
  steps: StepRecord[];

  constructor(name: string, args: unknown[] = [], options: JobOptions = {}, id?: string) {
    this.id = id ?? crypto.randomUUID();
    this.name = name;
    this.arguments = args;
    this.queue = options.queue ?? DEFAULT_QUEUE;
    this.priority = options.priority ?? 0;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const retry = options.retry;
    this.retry = retry && "toSpec" in retry ? retry.toSpec() : (retry as RetrySpec | undefined);
    this.uniqueKey = options.uniqueKey;
    this.uniqueMode = options.uniqueMode;
    this.uniqueTtl = options.uniqueTtl;
    this.concurrency = options.concurrency;
    this.rateLimit = options.rateLimit;
    this.timeout = options.timeout;
    this.metadata = options.metadata ?? {};
    this.encrypt = options.encrypt;
    this.runAt = options.runAt;
    this.delay = options.delay;
    this.state = JobState.Enqueued;
    this.attempts = 0;
    this.#history = [];
    this.#historyOf = undefined;
    this.createdAt = undefined;
    this.updatedAt = undefined;
    this.finishedAt = undefined;
    this.leaseOwner = undefined;
    this.leaseUntil = undefined;
    this.leaseToken = 0;
    this.result = undefined;
    this.error = undefined;
    this.progress = undefined;
    this.flow = undefined;
    this.steps = [];
  }

  /**
   * Every transition, oldest first. A job read from a storage converts its
   * record's history when this is first read, not in `fromRecord`: workers
   * seldom read it, and every run would pay for the conversion
   * (docs/decisions/lazy-history.md).
   */
  get history(): JobHistory {
    if (this.#history === undefined) {
      this.#history = (this.#historyOf?.history ?? []).map((h) => ({ ...h, at: new Date(h.at) }));
      this.#historyOf = undefined;
    }
    return this.#history;
  }

  set history(entries: JobHistory) {
    this.#history = entries;
    this.#historyOf = undefined;
  }

  /** The worker name, as the seed called it. */
  get methodName(): string {
    return this.name;
  }

  static fromRecord(r: JobRecord): Job {
    const job = new Job(
      r.name,
      r.args,
      {
        queue: r.queue,
        priority: r.priority,
        maxAttempts: r.maxAttempts,
        retry: r.retry,
        uniqueKey: r.uniqueKey,
        concurrency: r.concurrencyKey !== undefined ? { key: r.concurrencyKey, limit: r.concurrencyLimit! } : undefined,
        rateLimit: r.rateKey !== undefined ? { key: r.rateKey, limit: r.rateLimit!, interval: r.rateInterval! } : undefined,
        timeout: r.timeoutMs,
        metadata: r.metadata ?? {},
        runAt: new Date(r.runAt),
      },
      r.id,
    );
    job.state = r.state;
    job.attempts = r.attempts;
    job.#history = undefined;
    job.#historyOf = r;
    job.createdAt = new Date(r.createdAt);
    job.updatedAt = new Date(r.updatedAt);
    job.finishedAt = r.finishedAt !== undefined ? new Date(r.finishedAt) : undefined;
    job.leaseOwner = r.leaseOwner;
    job.leaseUntil = r.leaseUntil !== undefined ? new Date(r.leaseUntil) : undefined;
    job.leaseToken = r.leaseToken;
    job.result = r.result;
    job.error = r.error;
    job.progress = r.progress;
    job.flow = r.flow;
    if (r.steps) job.steps = r.steps;
    return job;
  }

  /** JSON form for APIs (dates as ISO strings). */
  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      name: this.name,
      arguments: this.arguments,
      queue: this.queue,
      priority: this.priority,
      state: this.state,
      attempts: this.attempts,
      maxAttempts: this.maxAttempts,
      retry: this.retry,
      uniqueKey: this.uniqueKey,
      concurrency: this.concurrency,
      rateLimit: this.rateLimit,
      timeout: this.timeout,
      metadata: this.metadata,
      runAt: this.runAt?.toISOString(),
      createdAt: this.createdAt?.toISOString(),
      updatedAt: this.updatedAt?.toISOString(),
      finishedAt: this.finishedAt?.toISOString(),
      leaseOwner: this.leaseOwner,
      leaseUntil: this.leaseUntil?.toISOString(),
      result: this.result,
      error: this.error,
      progress: this.progress,
      ...(this.flow ? { flow: this.flow } : {}),
      ...(this.steps.length > 0 ? { steps: this.steps } : {}),
      history: this.history.map((h) => ({ ...h, at: h.at.toISOString() })),
    };
  }
}

/**
 * Checks a job and turns it into the record to insert, as of `now`.
 * Throws ValidationError; nothing is written for an invalid job.
 */
export function newJobRecord(job: Job, now: number): JobRecord {
  validateJobId(job.id);
  validateJobName(job.name);
  validateQueueName(job.queue);
  if (!Array.isArray(job.arguments)) throw new ValidationError("arguments must be an array", "arguments");
  const args = toJsonValue(job.arguments, "arguments");
  const metadata = validateMetadata(job.metadata);
  validateInt(job.priority, "priority", JOB_BOUNDS.priority.min, JOB_BOUNDS.priority.max);
  validateInt(job.maxAttempts, "maxAttempts", JOB_BOUNDS.maxAttempts.min, JOB_BOUNDS.maxAttempts.max);
  if (job.timeout !== undefined) validateInt(job.timeout, "timeout", JOB_BOUNDS.timeoutMs.min, JOB_BOUNDS.timeoutMs.max);
  if (job.uniqueKey !== undefined) validateUniqueKey(job.uniqueKey);
  if (job.uniqueMode !== undefined && job.uniqueMode !== "first" && job.uniqueMode !== "debounce") {
    throw new ValidationError('uniqueMode must be "first" or "debounce"', "uniqueMode");
  }
  if ((job.uniqueMode !== undefined || job.uniqueTtl !== undefined) && job.uniqueKey === undefined) {
    throw new ValidationError("uniqueMode and uniqueTtl need a uniqueKey", "uniqueKey");
  }
  if (job.uniqueTtl !== undefined) validateInt(job.uniqueTtl, "uniqueTtl", JOB_BOUNDS.uniqueTtlMs.min, JOB_BOUNDS.uniqueTtlMs.max);
  if (job.concurrency !== undefined) validateLimit(job.concurrency, "concurrency");
  if (job.rateLimit !== undefined) {
    validateLimit(job.rateLimit, "rateLimit");
    validateInt(job.rateLimit.interval, "rateLimit.interval", JOB_BOUNDS.rateIntervalMs.min, JOB_BOUNDS.rateIntervalMs.max);
  }
  if (job.retry !== undefined) validateRetrySpecShape(job.retry);
  let runAt = now;
  if (job.runAt !== undefined) {
    if (!(job.runAt instanceof Date) || Number.isNaN(job.runAt.getTime())) {
      throw new ValidationError("runAt must be a valid Date", "runAt");
    }
    runAt = job.runAt.getTime();
  } else if (job.delay !== undefined) {
    validateInt(job.delay, "delay", JOB_BOUNDS.delayMs.min, JOB_BOUNDS.delayMs.max);
    runAt = now + job.delay;
  }
  const state = runAt > now ? JobState.Scheduled : JobState.Enqueued;
  if (state === JobState.Enqueued) runAt = now;
  const record: JobRecord = {
    id: job.id,
    name: job.name,
    args,
    queue: job.queue,
    priority: job.priority,
    state,
    attempts: 0,
    maxAttempts: job.maxAttempts,
    createdAt: now,
    updatedAt: now,
    runAt,
    leaseToken: 0,
    history: [{ state, at: now, reason: state === JobState.Scheduled ? `scheduled for ${new Date(runAt).toISOString()}` : "enqueued" }],
  };
  if (job.retry) record.retry = job.retry;
  if (job.timeout !== undefined) record.timeoutMs = job.timeout;
  if (job.uniqueKey !== undefined) record.uniqueKey = job.uniqueKey;
  if (job.uniqueTtl !== undefined) record.uniqueUntil = now + job.uniqueTtl;
  if (job.concurrency !== undefined) {
    record.concurrencyKey = job.concurrency.key;
    record.concurrencyLimit = job.concurrency.limit;
  }
  if (job.rateLimit !== undefined) {
    record.rateKey = job.rateLimit.key;
    record.rateLimit = job.rateLimit.limit;
    record.rateInterval = job.rateLimit.interval;
  }
  if (Object.keys(metadata).length > 0) record.metadata = metadata;
  return record;
}

function validateLimit(l: ConcurrencyLimit | RateLimit, field: string): void {
  if (typeof l !== "object" || l === null) throw new ValidationError(`${field} must be { key, limit${field === "rateLimit" ? ", interval" : ""} }`, field);
  validateLimitKey(l.key, `${field}.key`);
  validateInt(l.limit, `${field}.limit`, JOB_BOUNDS.limit.min, JOB_BOUNDS.limit.max);
}

function validateRetrySpecShape(spec: RetrySpec): void {
  if (typeof spec !== "object" || spec === null) throw new ValidationError("retry must be a retry policy", "retry");
  if (spec.kind === "exponential") {
    validateInt(spec.baseMs, "retry.baseMs", JOB_BOUNDS.retryDelayMs.min, JOB_BOUNDS.retryDelayMs.max);
    validateInt(spec.maxMs, "retry.maxMs", JOB_BOUNDS.retryDelayMs.min, JOB_BOUNDS.retryDelayMs.max);
    if (typeof spec.jitter !== "number" || spec.jitter < 0 || spec.jitter > 1) {
      throw new ValidationError("retry.jitter must be between 0 and 1", "retry.jitter");
    }
  } else if (spec.kind === "fixed") {
    validateInt(spec.delayMs, "retry.delayMs", JOB_BOUNDS.retryDelayMs.min, JOB_BOUNDS.retryDelayMs.max);
  } else {
    throw new ValidationError(
      "retry must be an exponential or fixed policy; custom functions belong to the worker (registry.register(name, fn, { retry }))",
      "retry",
    );
  }
}
