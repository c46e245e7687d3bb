/**
 * The storage contract.
 *
 * Every backend (memory, Redis, PostgreSQL) extends `Storage` and implements
 * the abstract methods, each one atomic round trip to the store (one Lua
 * call, one SQL statement, or one pipeline) that takes a batch. The public
 * methods on top (enqueue(job | job[]), get → Job, addOrUpdateRecurring …)
 * validate input and decide target states once, here, so that backends only
 * persist.
 *
 * Lease state diagram (fencing by `leaseToken`):
 *
 *        claim (token+1, attempts+1)          complete(token) ─► succeeded | failed | awaiting_retry
 *  enqueued ───────────────────────► processing ──┤
 *     ▲  ▲                               │  ▲      extendLeases(token) ─► leaseUntil = now + leaseMs
 *     │  └──── release(token, attempts-1) ┘  │
 *     └────── reclaimExpired (leaseUntil < now, attempts left; else failed)
 *
 *  delete / requeue bump the token too, so a worker holding an old token can
 *  no longer write the job.
 *
 * Times are epoch milliseconds and always passed in (`now`): backends never
 * read their own wall clock, so tests move a fake clock instead of sleeping.
 */
import { Cron } from "croner";
import { ConfigError, InvalidStateError, NotFoundError, ValidationError, type ErrorInfo } from "./errors.js";
import { systemClock, type Clock } from "./clock.js";
import {
  Job,
  JobState,
  RECURRING_ID,
  isJobState,
  newJobRecord,
  toJsonValue,
  validateJobName,
  validateQueueName,
  type JobOptions,
  type JobRecord,
} from "./job.js";

// ---------------------------------------------------------------------------
// Shapes that cross the seam

export interface InsertResult {
  id: string;
  /** False when a job with the same uniqueKey already existed: `id` is that job's. */
  created: boolean;
}

export interface ClaimRequest {
  /** In priority order: all due jobs of the first queue go before any of the second. */
  queues: string[];
  limit: number;
  /** Who claims (server id); recorded on the job and its history. */
  owner: string;
  leaseMs: number;
  now: number;
}

/** What a worker holds after a claim: enough to write the job, nothing more. */
export interface LeaseRef {
  id: string;
  token: number;
}

/**
 * The outcome of one attempt, decided by the core. Applied only while the
 * job is `processing` with `leaseToken === token`; otherwise it is lost.
 */
export interface Outcome {
  id: string;
  token: number;
  /** `enqueued` releases the job (shutdown, deadline): attempts go back by one. */
  state: typeof JobState.Succeeded | typeof JobState.Failed | typeof JobState.AwaitingRetry | typeof JobState.Enqueued;
  /** For awaiting_retry: when the next attempt is due. */
  runAt?: number;
  result?: unknown;
  error?: ErrorInfo;
  reason: string;
  worker: string;
}

export type CompletionStatus = "applied" | "lost";
export interface CompletionResult {
  id: string;
  status: CompletionStatus;
}

export interface TransitionResult {
  record: JobRecord;
  applied: boolean;
}

export interface ListFilter {
  state?: JobState | JobState[];
  queue?: string;
  name?: string;
  /** Case-insensitive substring of id, name or serialised arguments. */
  text?: string;
}

export type SortField = "createdAt" | "updatedAt" | "runAt";
export interface PageRequest {
  /** 1-500, default 50. */
  limit?: number;
  /** Opaque cursor from the previous page's `nextCursor`. */
  cursor?: string;
  sort?: SortField;
  order?: "asc" | "desc";
}

export interface Page<T> {
  items: T[];
  /** Present when more items follow. */
  nextCursor?: string;
}

export type StateCounts = Record<JobState, number>;

export interface QueueStats {
  name: string;
  counts: StateCounts;
}

export interface ThroughputBucket {
  /** Start of the bucket, epoch ms. */
  at: number;
  succeeded: number;
  failed: number;
}

export interface StatsRequest {
  now: number;
  /** Per-minute buckets ending at `now` (default 60). */
  minutes?: number;
  /** Per-hour buckets ending at `now` (default 24). */
  hours?: number;
}

export interface Stats {
  states: StateCounts;
  total: number;
  queues: QueueStats[];
  perMinute: ThroughputBucket[];
  perHour: ThroughputBucket[];
}

export interface RecurringOptions {
  queue?: string;
  priority?: number;
  maxAttempts?: number;
  timeout?: number;
  /** IANA time zone the cron expression is read in; default UTC. */
  timezone?: string;
  metadata?: Record<string, unknown>;
}

export interface RecurringDefinition {
  id: string;
  cron: string;
  timezone?: string;
  name: string;
  args: unknown[];
  options: Omit<RecurringOptions, "timezone">;
  createdAt: number;
  updatedAt: number;
  /** Slot (epoch ms) of the latest firing enqueued, if any. */
  lastSlot?: number;
}

// ---------------------------------------------------------------------------

export interface StorageOptions {
  /** The clock for the convenience methods (enqueue, delete, requeue…). */
  clock?: Clock;
}

export type EnqueueListener = (jobs: ReadonlyArray<{ id: string; queue: string; runAt: number }>) => void;

export interface EnqueueListenerOptions {
  /**
   * Also hear of jobs other processes enqueued, where the backend can tell
   * (Redis pub/sub over TCP, PostgreSQL LISTEN/NOTIFY; their ids may be
   * empty). Default true: what a server wants. A forwarder of this
   * process's own enqueues (an SQS or Queue notifier) passes false.
   */
  remote?: boolean;
  /**
   * Hear of this process's enqueues as soon as they are sent, not when the
   * store confirms them, on a backend whose calls run in the order this
   * process makes them (`callsRunInOrder`: Redis over one TCP connection):
   * a claim made then is sent right behind the insert and finds its jobs,
   * one round trip sooner. Elsewhere the listener hears of them when
   * confirmed, as the others do; either way once per enqueue. Sent jobs may
   * yet fail or turn out to exist already (unique key): for wake-ups only.
   */
  early?: boolean;
}

export const MINUTE = 60_000;
export const HOUR = 3_600_000;

export abstract class Storage {
  abstract readonly kind: string;
  readonly clock: Clock;
  private readonly enqueueListeners = new Map<EnqueueListener, { remote: boolean; early: boolean }>();

  constructor(options: StorageOptions = {}) {
    this.clock = options.clock ?? systemClock;
  }

  // ------------------------------------------------------------- the seam

  /** Creates or upgrades the store's schema. Idempotent. */
  abstract migrate(): Promise<void>;
  /** Releases connections. */
  abstract close(): Promise<void>;

  /**
   * Inserts new records. A record whose uniqueKey is already taken is not
   * inserted; its result carries the existing job's id and `created: false`.
   */
  abstract insertJobs(records: JobRecord[], now: number): Promise<InsertResult[]>;

  /**
   * Moves up to `limit` due jobs of `queues` to `processing` under a lease.
   * Due means `enqueued`, or `scheduled`/`awaiting_retry` with `runAt <= now`
   * (a backend promotes those first). Order: queue order, then priority
   * (higher first), then runAt, then insertion. Each claimed job gets
   * attempts + 1, leaseToken + 1, leaseOwner, leaseUntil = now + leaseMs.
   * Any number of concurrent callers claim each job exactly once.
   */
  abstract claim(req: ClaimRequest): Promise<JobRecord[]>;

  /** Extends the leases still held (processing, same token). Returns their ids. */
  abstract extendLeases(leases: LeaseRef[], leaseMs: number, now: number): Promise<string[]>;

  /** Applies outcomes, each fenced by its token. */
  abstract complete(outcomes: Outcome[], now: number): Promise<CompletionResult[]>;

  /** Moves up to `limit` due `scheduled`/`awaiting_retry` jobs to `enqueued`. Returns how many. */
  abstract promoteDue(now: number, limit: number): Promise<number>;

  /**
   * Jobs in `processing` whose lease ended before `now`: back to `enqueued`
   * (runAt = now), or `failed` when attempts >= maxAttempts. The token is
   * bumped. Returns how many.
   */
  abstract reclaimExpired(now: number, limit: number): Promise<number>;

  abstract getRecord(id: string): Promise<JobRecord | null>;
  abstract listRecords(filter: ListFilter, page: Required<Pick<PageRequest, "limit" | "sort" | "order">> & { cursor?: string }): Promise<Page<JobRecord>>;
  abstract statsAt(req: Required<StatsRequest>): Promise<Stats>;

  /**
   * Applies an operator's transition to one job, if its current state is one
   * of `from`: `deleted` (soft delete) or `enqueued` (requeue: attempts 0,
   * runAt now, lease and error cleared). Bumps the token and appends
   * history. Returns the record (changed or not) and whether it applied, or
   * null when the job does not exist.
   */
  abstract transition(id: string, from: JobState[], to: typeof JobState.Deleted | typeof JobState.Enqueued, reason: string, now: number): Promise<TransitionResult | null>;

  /** Hard-deletes jobs in `states` last updated before `olderThan`. Returns how many. */
  abstract purge(states: JobState[], olderThan: number, limit: number): Promise<number>;

  /** Records a worker's progress value, fenced by the lease. */
  abstract setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean>;

  /** Inserts or replaces a definition; an existing one keeps its createdAt and lastSlot. */
  abstract upsertRecurring(def: RecurringDefinition): Promise<void>;
  abstract listRecurring(): Promise<RecurringDefinition[]>;
  abstract removeRecurring(id: string): Promise<boolean>;
  /** Sets lastSlot if it moves forward. Returns false when another caller got there first. */
  abstract markRecurringFired(id: string, slot: number): Promise<boolean>;

  /**
   * The store's own clock (epoch ms), for aligning servers whose clocks
   * disagree. Undefined when the store has no clock of its own (memory).
   */
  async serverTime(): Promise<number | undefined> {
    return undefined;
  }

  /**
   * True when a call this object sends reaches the store after every call
   * it sent before (one ordered connection), so that a claim sent while an
   * insert is in flight runs after it. Lets `early` enqueue listeners hear
   * of an insert when it is sent (see EnqueueListenerOptions). Default false.
   */
  protected get callsRunInOrder(): boolean {
    return false;
  }

  // --------------------------------------------------- the public surface

  /** Enqueues one job (returns its id) or many (returns their ids, in order, in one round trip). */
  enqueue(job: Job): Promise<string>;
  enqueue(jobs: Job[]): Promise<string[]>;
  async enqueue(input: Job | Job[]): Promise<string | string[]> {
    const { jobs, records, now } = this.prepareJobs(input);
    if (records.length === 0) return [];
    const inserting = this.insertJobs(records, now);
    // The insert is on the wire: a claim sent now runs after it.
    if (this.callsRunInOrder) this.emitEnqueued(records, "sent");
    const results = await inserting;
    this.settleJobs(jobs, records, results, now);
    const created = results.flatMap((r, i) => (r.created ? [{ id: r.id, queue: records[i]!.queue, runAt: records[i]!.runAt }] : []));
    if (created.length > 0) this.emitEnqueued(created);
    return Array.isArray(input) ? results.map((r) => r.id) : results[0]!.id;
  }

  /** Validates jobs and builds their records as of now. For backends with their own enqueue variants. */
  protected prepareJobs(input: Job | Job[]): { jobs: Job[]; records: JobRecord[]; now: number } {
    const jobs = Array.isArray(input) ? input : [input];
    const now = this.clock.now();
    const records = jobs.map((j) => {
      if (!(j instanceof Job)) throw new ValidationError("enqueue takes Job instances (new Job(name, args, options))", "job");
      return newJobRecord(j, now);
    });
    return { jobs, records, now };
  }

  /** Writes the stored id (and, for new jobs, state, times and history) back onto the caller's Job objects. */
  protected settleJobs(jobs: Job[], records: JobRecord[], results: InsertResult[], now: number): void {
    results.forEach((r, i) => {
      const job = jobs[i]!;
      const rec = records[i]!;
      job.id = r.id;
      if (r.created) {
        job.state = rec.state;
        job.createdAt = job.updatedAt = new Date(now);
        job.runAt = new Date(rec.runAt);
        job.history = rec.history.map((h) => ({ ...h, at: new Date(h.at) }));
      }
    });
  }

  /** Convenience: `enqueueJob("send_email", ["a@b.c"], { queue: "mail" })`. */
  enqueueJob(name: string, args: unknown[] = [], options: JobOptions = {}): Promise<string> {
    return this.enqueue(new Job(name, args, options));
  }

  async get(id: string): Promise<Job | null> {
    if (typeof id !== "string" || id.length === 0 || id.length > 200) return null;
    const r = await this.getRecord(id);
    return r ? Job.fromRecord(r) : null;
  }

  async list(filter: ListFilter = {}, page: PageRequest = {}): Promise<Page<Job>> {
    const p = await this.listRecords(validateFilter(filter), normalizePage(page));
    return { items: p.items.map((r) => Job.fromRecord(r)), ...(p.nextCursor ? { nextCursor: p.nextCursor } : {}) };
  }

  stats(req: Partial<StatsRequest> = {}): Promise<Stats> {
    const minutes = clampInt(req.minutes ?? 60, 1, 24 * 60);
    const hours = clampInt(req.hours ?? 24, 1, 24 * 31);
    return this.statsAt({ now: req.now ?? this.clock.now(), minutes, hours });
  }

  /** Soft-deletes a job in any state but `deleted`; a running job's worker loses its lease. */
  async delete(id: string): Promise<boolean> {
    const from = [JobState.Scheduled, JobState.Enqueued, JobState.Processing, JobState.AwaitingRetry, JobState.Succeeded, JobState.Failed];
    if (typeof id !== "string" || id.length === 0) return false;
    const r = await this.transition(id, from, JobState.Deleted, "deleted", this.clock.now());
    return r?.applied === true;
  }

  /**
   * Puts a job back in `enqueued` with its attempts reset: from failed,
   * succeeded, deleted, or to run a scheduled/awaiting_retry job now.
   * Throws NotFoundError, or InvalidStateError for a job already enqueued or
   * processing.
   */
  async requeue(id: string): Promise<Job> {
    const from = [JobState.Failed, JobState.Succeeded, JobState.Deleted, JobState.Scheduled, JobState.AwaitingRetry];
    const t = typeof id === "string" && id.length > 0 ? await this.transition(id, from, JobState.Enqueued, "requeued", this.clock.now()) : null;
    if (!t) throw new NotFoundError("job", String(id));
    const r = t.record;
    if (!t.applied) {
      throw new InvalidStateError(`job ${id} is ${r.state}; only failed, succeeded, deleted, scheduled or awaiting_retry jobs can be requeued`);
    }
    this.emitEnqueued([{ id: r.id, queue: r.queue, runAt: r.runAt }]);
    return Job.fromRecord(r);
  }

  /** Hard-deletes finished jobs older than `olderThan` (default: all of them). */
  purgeFinished(options: { states?: JobState[]; olderThan?: Date } = {}): Promise<number> {
    const states = options.states ?? [JobState.Succeeded, JobState.Failed, JobState.Deleted];
    for (const s of states) if (!isJobState(s)) throw new ValidationError(`unknown state ${JSON.stringify(s)}`, "states");
    return this.purge(states, options.olderThan?.getTime() ?? this.clock.now() + 1, 100_000);
  }

  /**
   * Adds or replaces a recurring job: every slot of `cron` (in `timezone`,
   * default UTC) enqueues `name(args)` once, however many servers tick.
   */
  async addOrUpdateRecurring(id: string, cron: string, name: string, args: unknown[] = [], options: RecurringOptions = {}): Promise<RecurringDefinition> {
    const def = buildRecurring(id, cron, name, args, options, this.clock.now());
    await this.upsertRecurring(def);
    return def;
  }

  /** Stops a recurring job. Firings already enqueued stay. */
  async deleteRecurring(id: string): Promise<boolean> {
    return this.removeRecurring(id);
  }

  /** Called with the jobs this process enqueued, so a local server wakes at once. */
  onEnqueue(listener: EnqueueListener, options: EnqueueListenerOptions = {}): () => void {
    this.enqueueListeners.set(listener, { remote: options.remote !== false, early: options.early === true });
    return () => this.enqueueListeners.delete(listener);
  }

  /**
   * `origin` "local": confirmed enqueues of this process; "remote": announced
   * by the store for another process (only listeners that asked for those
   * hear them); "sent": this process's insert is on the wire (only early
   * listeners hear it, and they then skip its "local").
   */
  protected emitEnqueued(jobs: ReadonlyArray<{ id: string; queue: string; runAt: number }>, origin: "local" | "remote" | "sent" = "local"): void {
    const ordered = origin === "local" && this.callsRunInOrder;
    for (const [l, { remote, early }] of this.enqueueListeners) {
      if (origin === "remote" ? !remote : origin === "sent" ? !early : early && ordered) continue;
      try {
        l(jobs);
      } catch {
        // a listener's failure is not the enqueuer's
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Helpers shared by the public surface and by backends.

export function emptyCounts(): StateCounts {
  return { scheduled: 0, enqueued: 0, processing: 0, succeeded: 0, failed: 0, awaiting_retry: 0, deleted: 0 };
}

function clampInt(v: number, min: number, max: number): number {
  if (!Number.isFinite(v)) return min;
  return Math.min(max, Math.max(min, Math.floor(v)));
}

export function validateFilter(filter: ListFilter): ListFilter {
  const out: ListFilter = {};
  if (filter.state !== undefined) {
    const states = Array.isArray(filter.state) ? filter.state : [filter.state];
    for (const s of states) if (!isJobState(s)) throw new ValidationError(`unknown state ${JSON.stringify(s)}`, "state");
    out.state = states;
  }
  if (filter.queue !== undefined) out.queue = validateQueueName(filter.queue);
  if (filter.name !== undefined) out.name = validateJobName(filter.name);
  if (filter.text !== undefined) {
    if (typeof filter.text !== "string" || filter.text.length > 200) throw new ValidationError("text must be a string of at most 200 characters", "text");
    if (filter.text.length > 0) out.text = filter.text;
  }
  return out;
}

export function normalizePage(page: PageRequest): Required<Pick<PageRequest, "limit" | "sort" | "order">> & { cursor?: string } {
  const limit = page.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new ValidationError("limit must be an integer between 1 and 500", "limit");
  const sort = page.sort ?? "createdAt";
  if (!["createdAt", "updatedAt", "runAt"].includes(sort)) throw new ValidationError("sort must be createdAt, updatedAt or runAt", "sort");
  const order = page.order ?? "desc";
  if (order !== "asc" && order !== "desc") throw new ValidationError("order must be asc or desc", "order");
  if (page.cursor !== undefined) decodeCursor(page.cursor);
  return { limit, sort, order, ...(page.cursor !== undefined ? { cursor: page.cursor } : {}) };
}

/**
 * Cursors are keyset positions: the sort value and the id of the last item.
 * Every backend encodes them alike, so a cursor means the same everywhere.
 */
export function encodeCursor(sortValue: number, id: string): string {
  return btoa(JSON.stringify([sortValue, id])).replace(/=+$/, "");
}

export function decodeCursor(cursor: string): { sortValue: number; id: string } {
  try {
    const [sortValue, id] = JSON.parse(atob(cursor)) as [unknown, unknown];
    if (typeof sortValue === "number" && typeof id === "string") return { sortValue, id };
  } catch {
    // fall through
  }
  throw new ValidationError("cursor is malformed", "cursor");
}

/** Sort key of a record for list pages. */
export function sortValue(r: JobRecord, sort: SortField): number {
  return sort === "updatedAt" ? r.updatedAt : sort === "runAt" ? r.runAt : r.createdAt;
}

/** Whether a record passes a (validated) filter. For backends that filter in process. */
export function matchesFilter(r: JobRecord, f: ListFilter): boolean {
  if (f.state !== undefined && !(f.state as JobState[]).includes(r.state)) return false;
  if (f.queue !== undefined && r.queue !== f.queue) return false;
  if (f.name !== undefined && r.name !== f.name) return false;
  if (f.text !== undefined) {
    const t = f.text.toLowerCase();
    if (!r.id.toLowerCase().includes(t) && !r.name.toLowerCase().includes(t) && !JSON.stringify(r.args).toLowerCase().includes(t)) return false;
  }
  return true;
}

/** Bucket starts (ascending) for a stats window ending at `now`. */
export function bucketStarts(now: number, size: number, count: number): number[] {
  const last = Math.floor(now / size) * size;
  const out: number[] = [];
  for (let i = count - 1; i >= 0; i--) out.push(last - i * size);
  return out;
}

export function validateCron(cron: string, timezone?: string): Cron {
  if (typeof cron !== "string" || cron.trim().length === 0 || cron.length > 200) throw new ValidationError("cron must be a cron expression", "cron");
  try {
    return new Cron(cron, { timezone: timezone ?? "UTC", paused: true });
  } catch (e) {
    throw new ValidationError(`invalid cron expression ${JSON.stringify(cron)}: ${(e as Error).message}`, "cron");
  }
}

export function buildRecurring(id: string, cron: string, name: string, args: unknown[], options: RecurringOptions, now: number): RecurringDefinition {
  if (typeof id !== "string" || !RECURRING_ID.test(id)) {
    throw new ValidationError('recurring id must be 1-128 characters of letters, digits, "_", "-", "." or "/"', "id");
  }
  validateJobName(name);
  if (!Array.isArray(args)) throw new ValidationError("arguments must be an array", "arguments");
  if (options.timezone !== undefined) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: options.timezone });
    } catch {
      throw new ValidationError(`unknown time zone ${JSON.stringify(options.timezone)}`, "timezone");
    }
  }
  validateCron(cron, options.timezone);
  // Validate the job options the same way a one-off job is validated.
  const { timezone, ...jobOptions } = options;
  newJobRecord(new Job(name, args, jobOptions), now);
  const def: RecurringDefinition = {
    id,
    cron,
    name,
    args: toJsonValue(args, "arguments"),
    options: toJsonValue(jobOptions, "options"),
    createdAt: now,
    updatedAt: now,
  };
  if (timezone !== undefined) def.timezone = timezone;
  return def;
}

export function assertConfig(cond: unknown, message: string): asserts cond {
  if (!cond) throw new ConfigError(message);
}
