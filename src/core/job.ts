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

export const JobState = {
  Scheduled: "scheduled",
  Enqueued: "enqueued",
  Processing: "processing",
  Succeeded: "succeeded",
  Failed: "failed",
  AwaitingRetry: "awaiting_retry",
  Deleted: "deleted",
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
  metadata?: Record<string, unknown>;
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
  history: HistoryEntry[];
}

/**
 * A JobRecord read from a store that keeps the history as lines of JSON
 * (historyFromLines), with the history parsed when first read. A claimed
 * job's history is seldom read while it runs, and parsing it cost a worker
 * ~10 µs per job on Postgres (a quarter of its CPU per job, garbage
 * included). Every other field is an own property; `history` is an
 * accessor of the class, so a spread (`{ ...record }`) leaves it out:
 * copy with `toJSON()`, which includes it, as JSON.stringify does.
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
  /** Milliseconds before the run is aborted and counted as a failed attempt. */
  timeout?: number;
  metadata?: Record<string, unknown>;
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
  readonly timeout: number | undefined;
  readonly metadata: Record<string, unknown>;
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
    this.timeout = options.timeout;
    this.metadata = options.metadata ?? {};
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
  }

  /**
   * Every transition, oldest first. A job read from a storage converts its
   * record's history when this is first read: workers seldom read it, and
   * the conversion cost ~2 µs per job run.
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
      history: this.history.map((h) => ({ ...h, at: h.at.toISOString() })),
    };
  }
}

// ---------------------------------------------------------------------------
// Validation: names become Redis keys and SQL values; they are checked once,
// here, so every backend refuses the same input with the same error.

/** Queue names: letters, digits, `_`, `-`, `.`; 1-64 characters. */
export const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Job names: letters, digits, `_`, `-`, `.`, `/`; 1-128 characters. */
export const JOB_NAME = /^[A-Za-z0-9_./-]{1,128}$/;
/** Recurring ids: as job names. */
export const RECURRING_ID = JOB_NAME;
export const MAX_UNIQUE_KEY_LENGTH = 512;
/** Upper bound of a job's serialized arguments + metadata. */
export const MAX_PAYLOAD_BYTES = 512 * 1024;

export function validateQueueName(queue: unknown, field = "queue"): string {
  if (typeof queue !== "string" || !QUEUE_NAME.test(queue)) {
    throw new ValidationError(
      `${field} must be 1-64 characters of letters, digits, "_", "-" or "."; got ${describe(queue)}`,
      field,
    );
  }
  return queue;
}

export function validateJobName(name: unknown, field = "name"): string {
  if (typeof name !== "string" || !JOB_NAME.test(name)) {
    throw new ValidationError(
      `${field} must be 1-128 characters of letters, digits, "_", "-", "." or "/"; got ${describe(name)}`,
      field,
    );
  }
  return name;
}

function describe(v: unknown): string {
  if (typeof v !== "string") return typeof v;
  const s = v.length > 40 ? `${v.slice(0, 40)}… (${v.length} chars)` : v;
  return JSON.stringify(s);
}

function validateInt(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(`${field} must be an integer between ${min} and ${max}; got ${JSON.stringify(v)}`, field);
  }
  return v;
}

/** Refuses values JSON would silently change: functions, symbols, NaN/Infinity, undefined in arrays. */
function assertJsonFaithful(v: unknown, path: string, depth = 0): void {
  if (depth > 64) throw new ValidationError(`${path} is nested too deeply`, path);
  switch (typeof v) {
    case "function":
    case "symbol":
      throw new ValidationError(`${path} is a ${typeof v}, which JSON cannot carry`, path);
    case "number":
      if (!Number.isFinite(v)) throw new ValidationError(`${path} is ${v}, which JSON cannot carry`, path);
      return;
    case "object":
      if (v === null || typeof (v as { toJSON?: unknown }).toJSON === "function") return;
      if (Array.isArray(v)) {
        v.forEach((x, i) => {
          if (x === undefined) throw new ValidationError(`${path}[${i}] is undefined, which JSON cannot carry`, path);
          assertJsonFaithful(x, `${path}[${i}]`, depth + 1);
        });
        return;
      }
      for (const [k, x] of Object.entries(v)) if (x !== undefined) assertJsonFaithful(x, `${path}.${k}`, depth + 1);
      return;
    default:
      return;
  }
}

/** Round-trips a value through JSON; refuses what JSON cannot carry faithfully. */
export function toJsonValue<T>(value: T, field: string): T {
  let text: string | undefined;
  try {
    assertJsonFaithful(value, field);
    text = JSON.stringify(value);
  } catch (e) {
    if (e instanceof ValidationError) throw e;
    throw new ValidationError(`${field} must be JSON-serialisable: ${(e as Error).message}`, field);
  }
  if (text === undefined) throw new ValidationError(`${field} must be JSON-serialisable`, field);
  if (text.length > MAX_PAYLOAD_BYTES) {
    throw new ValidationError(`${field} is ${text.length} bytes serialised; the limit is ${MAX_PAYLOAD_BYTES}`, field);
  }
  return JSON.parse(text) as T;
}

/**
 * Checks a job and turns it into the record to insert, as of `now`.
 * Throws ValidationError; nothing is written for an invalid job.
 */
export function newJobRecord(job: Job, now: number): JobRecord {
  if (typeof job.id !== "string" || job.id.length === 0 || job.id.length > 200 || /[\u0000-\u001f\u007f]|\p{Surrogate}/u.test(job.id)) {
    throw new ValidationError("id must be 1-200 characters of well-formed text without control characters", "id");
  }
  validateJobName(job.name);
  validateQueueName(job.queue);
  if (!Array.isArray(job.arguments)) throw new ValidationError("arguments must be an array", "arguments");
  const args = toJsonValue(job.arguments, "arguments");
  const metadata = toJsonValue(job.metadata ?? {}, "metadata");
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new ValidationError("metadata must be an object", "metadata");
  }
  validateInt(job.priority, "priority", -1_000_000, 1_000_000);
  validateInt(job.maxAttempts, "maxAttempts", 1, 1000);
  if (job.timeout !== undefined) validateInt(job.timeout, "timeout", 1, 7 * 24 * 3600_000);
  if (job.uniqueKey !== undefined) {
    if (typeof job.uniqueKey !== "string" || job.uniqueKey.length === 0 || job.uniqueKey.length > MAX_UNIQUE_KEY_LENGTH) {
      throw new ValidationError(`uniqueKey must be a non-empty string of at most ${MAX_UNIQUE_KEY_LENGTH} characters`, "uniqueKey");
    }
    // A lone surrogate has no UTF-8 form: Redis would store U+FFFD (two keys
    // becoming one job) and PostgreSQL refuses it. Refused alike everywhere.
    if (/\p{Surrogate}/u.test(job.uniqueKey)) throw new ValidationError("uniqueKey must be well-formed Unicode (it has an unpaired surrogate)", "uniqueKey");
  }
  if (job.retry !== undefined) validateRetrySpecShape(job.retry);
  let runAt = now;
  if (job.runAt !== undefined) {
    if (!(job.runAt instanceof Date) || Number.isNaN(job.runAt.getTime())) {
      throw new ValidationError("runAt must be a valid Date", "runAt");
    }
    runAt = job.runAt.getTime();
  } else if (job.delay !== undefined) {
    validateInt(job.delay, "delay", 0, 366 * 24 * 3600_000);
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
  if (Object.keys(metadata).length > 0) record.metadata = metadata;
  return record;
}

function validateRetrySpecShape(spec: RetrySpec): void {
  if (typeof spec !== "object" || spec === null) throw new ValidationError("retry must be a retry policy", "retry");
  if (spec.kind === "exponential") {
    validateInt(spec.baseMs, "retry.baseMs", 0, 30 * 24 * 3600_000);
    validateInt(spec.maxMs, "retry.maxMs", 0, 30 * 24 * 3600_000);
    if (typeof spec.jitter !== "number" || spec.jitter < 0 || spec.jitter > 1) {
      throw new ValidationError("retry.jitter must be between 0 and 1", "retry.jitter");
    }
  } else if (spec.kind === "fixed") {
    validateInt(spec.delayMs, "retry.delayMs", 0, 30 * 24 * 3600_000);
  } else {
    throw new ValidationError(
      "retry must be an exponential or fixed policy; custom functions belong to the worker (registry.register(name, fn, { retry }))",
      "retry",
    );
  }
}
