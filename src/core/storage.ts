/**
 * Storage: the public API over a storage driver.
 *
 *   const storage = new Storage(memoryBackend());                       // qml
 *   const storage = new Storage(redisBackend(new RedisConfig(url)));    // qml/redis
 *   const storage = new Storage(postgresBackend(new PostgresConfig()…)); // qml/postgres
 *
 * This class is the one place input is checked (rules.ts): a driver
 * (driver.ts) receives only valid values, with target states decided and
 * times given, and only persists. Each operation has one name here.
 *
 * It also carries the process's enqueue listeners: a local server wakes
 * when this process enqueues, and, where the driver can subscribe (Redis
 * over TCP, PostgreSQL with sessions), when another process does.
 */
import { Cron } from "croner";
import { systemClock, type Clock } from "./clock.js";
import type {
  InsertRecord,
  InsertResult,
  ListFilter,
  Page,
  PageQuery,
  PageRequest,
  RecurringDefinition,
  RecurringOptions,
  RemoteEnqueue,
  Stats,
  StorageDriver,
  TransitionResult,
} from "./driver.js";
import { ConfigError, InvalidStateError, NotFoundError, ValidationError } from "./errors.js";
import { Keyring, sealRecords } from "./encryption.js";
import { KeyValue } from "./kv.js";
import { FINISHED_STATES, Job, JobState, isJobState, newJobRecord, type DependencyOutcome, type JobRecord, type JobOptions } from "./job.js";
import { MAX_FLOW_DEPTH, MAX_FLOW_JOBS, settleDependentsOf, settleWaiters, validateFlowSpec, type SettleReport } from "./flows.js";
import { deliverEvent, validateEventData, validateEventName, type SendEventResult } from "./steps.js";
import { silentLogger, type Logger } from "./logger.js";
import { checkTypedJobs, hasTypedJobs } from "./typed.js";
import type { Tracer } from "./tracing.js";
import { cleanText, isJobId, toJsonValue, validateJobName, validateQueueName, validateRecurringId, validateSearchText } from "./rules.js";

export type {
  ListFilter,
  Page,
  PageRequest,
  QueueStats,
  RecurringDefinition,
  RecurringOptions,
  SortField,
  StateCounts,
  Stats,
  ThroughputBucket,
} from "./driver.js";

export interface StorageOptions {
  /** The clock for operations the caller does not time (enqueue, delete, requeue…). Default: the system clock. */
  clock?: Clock;
  /** Where the storage says what it does on its own (e.g. falling back to polling). Default: silent. */
  logger?: Logger;
  /** Keys of encrypted arguments (`JobOptions.encrypt`; QML_ENCRYPTION_KEYS): the first seals at enqueue, all open for handlers. */
  encryption?: Keyring | undefined;
  /** Spans for enqueues, claims and runs, and the trace context stored with each job (tracing.ts; `otelTracer()` from qml/otel). Default: none. */
  tracer?: Tracer;
  /**
   * Limits for whole queues: every job enqueued here into a named queue
   * without a limit of its own is held to its queue's, through the key
   * `queue:<name>` (JobOptions.concurrency / rateLimit). Every process that
   * enqueues into the queue should use the same limits.
   */
  queueLimits?: Record<string, QueueLimits>;
}

/** A queue's limits (StorageOptions.queueLimits). */
export interface QueueLimits {
  /** At most this many of the queue's jobs run at once, across every server. */
  concurrency?: number;
  /** At most `limit` of the queue's jobs start per `interval` ms. */
  rateLimit?: { limit: number; interval: number };
}

export interface EnqueueOptions {
  /**
   * Insert on the caller's own transaction (PostgreSQL: a pg or Neon Pool
   * client between its BEGIN and COMMIT): the jobs exist if and only if
   * that transaction commits, and wake-ups go out only then. Refused with
   * a ConfigError on backends without transactions.
   */
  transaction?: unknown;
}

export interface StatsOptions {
  /** End of the throughput window (epoch ms); default now. */
  now?: number;
  /** Per-minute buckets (1-1440, default 60). */
  minutes?: number;
  /** Per-hour buckets (1-744, default 24). */
  hours?: number;
}

/** What a batch operation did to one job. */
export interface ActionResult {
  id: string;
  status: "applied" | "not_found" | "invalid_state";
  /** The job's state after the call (absent when not found). */
  state?: JobState;
}

/** `name` is there for jobs enqueued through this Storage object; the store's announcements of other processes' jobs carry none. */
export type EnqueueListener = (jobs: ReadonlyArray<{ id: string; queue: string; runAt: number; name?: string }>) => void;

/** Ids of jobs cancelled or deleted, and the reason recorded in their history. */
export type CancelListener = (ids: readonly string[], reason: string) => void;

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
   * process makes them (Redis over one TCP connection): a claim made then
   * is sent right behind the insert and finds its jobs, one round trip
   * sooner. Elsewhere the listener hears of them when confirmed, as the
   * others do; either way once per enqueue. Sent jobs may yet fail or turn
   * out to exist already (unique key): for wake-ups only.
   */
  early?: boolean;
}

/**
 * One job of a flow: a parent runs once all of its children have
 * finished (see `Storage.enqueueFlow`).
 */
export interface FlowNode {
  job: Job;
  children?: FlowNode[];
  /**
   * What a child that fails or is deleted does to this parent: "fail"
   * (default: the parent ends failed at once, with a DependencyError),
   * "ignore" (the parent runs once all have finished, and sees the child's
   * outcome in `ctx.dependencies()`), "remove" (it runs without that child).
   */
  onChildFailure?: "fail" | "ignore" | "remove";
}

/** The ids a flow was stored under, in the shape of the tree given. */
export interface FlowIds {
  id: string;
  children: FlowIds[];
}

export interface ContinueOptions {
  /**
   * Which outcome of the parent runs the continuation: "success" (default),
   * "failure" or "any" (succeeded, failed or deleted). Otherwise the
   * continuation ends deleted, as Hangfire's do.
   */
  on?: DependencyOutcome;
}

/** States `delete` applies to: any but deleted. */
const DELETABLE: readonly JobState[] = [
  JobState.Awaiting,
  JobState.Scheduled,
  JobState.Enqueued,
  JobState.Processing,
  JobState.AwaitingRetry,
  JobState.Succeeded,
  JobState.Failed,
];
/** States `cancel` applies to: not finished. */
const CANCELLABLE: readonly JobState[] = [JobState.Awaiting, JobState.Scheduled, JobState.Enqueued, JobState.Processing, JobState.AwaitingRetry];
/** States `requeue` applies to by default. */
const REQUEUEABLE: readonly JobState[] = [JobState.Failed, JobState.Succeeded, JobState.Deleted, JobState.Scheduled, JobState.AwaitingRetry];
/** Ids per driver call of a batch operation. */
const BATCH = 500;

export class Storage {
  /** @internal The backend. Engine code (processor, scheduler) calls it directly; applications never do. */
  readonly driver: StorageDriver;
  readonly clock: Clock;
  readonly logger: Logger;
  /** A small key-value store in the same store, shared by every process (kv.ts): sessions and throttles of the dashboard. */
  readonly kv: KeyValue;
  /** The keyring of encrypted arguments, if any (StorageOptions.encryption). */
  readonly encryption: Keyring | undefined;
  readonly tracer: Tracer | undefined;
  private readonly listeners = new Map<EnqueueListener, { remote: boolean; early: boolean }>();
  private readonly cancelListeners = new Set<CancelListener>();
  private subscription: Promise<(() => Promise<void>) | undefined> | undefined;
  private closed = false;
  private readonly queueLimits: Map<string, QueueLimits> | undefined;
  /** Where the maintenance sweep of awaiting jobs goes on from (flows.ts). */
  private sweepAfter: { sortValue: number; id: string } | undefined;

  constructor(driver: StorageDriver, options: StorageOptions = {}) {
    if (!driver || typeof driver.claim !== "function" || typeof driver.insert !== "function") {
      throw new ConfigError("new Storage(driver) takes a storage backend: memoryBackend(), redisBackend(config) or postgresBackend(config)");
    }
    this.driver = driver;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.kv = new KeyValue(driver, this.clock);
    if (options.encryption !== undefined && !(options.encryption instanceof Keyring))
      throw new ConfigError("encryption must be a Keyring (Keyring.parse, new Keyring)");
    this.encryption = options.encryption;
    this.tracer = options.tracer;
    this.queueLimits = checkQueueLimits(options.queueLimits);
  }

  /** The record to insert for `job`, its queue's limits applied (queueLimits). Throws ValidationError. */
  private recordOf(job: Job, now: number): InsertRecord {
    const r: InsertRecord = newJobRecord(job, now);
    const limits = this.queueLimits?.get(r.queue);
    if (limits?.concurrency !== undefined && r.concurrencyKey === undefined) {
      r.concurrencyKey = `queue:${r.queue}`;
      r.concurrencyLimit = limits.concurrency;
    }
    if (limits?.rateLimit !== undefined && r.rateKey === undefined) {
      r.rateKey = `queue:${r.queue}`;
      r.rateLimit = limits.rateLimit.limit;
      r.rateInterval = limits.rateLimit.interval;
    }
    return r;
  }

  /** "memory", "redis", "postgres", or a custom backend's name. */
  get kind(): string {
    return this.driver.kind;
  }

  /** Creates or upgrades the store's schema. Idempotent; a server calls it at start. */
  migrate(): Promise<void> {
    return this.driver.migrate();
  }

  /** Ends subscriptions and releases connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stop = await this.subscription?.catch(() => undefined);
    await stop?.().catch(() => {});
    await this.driver.close();
  }

  /** The store's own clock (epoch ms), or undefined when it has none (memory). */
  async serverTime(): Promise<number | undefined> {
    return this.driver.serverTime ? this.driver.serverTime() : undefined;
  }

  // ------------------------------------------------------------- enqueue

  /** Enqueues one job (returns its id) or many (returns their ids, in order, in one round trip). */
  enqueue(job: Job, options?: EnqueueOptions): Promise<string>;
  enqueue(jobs: Job[], options?: EnqueueOptions): Promise<string[]>;
  async enqueue(input: Job | Job[], options: EnqueueOptions = {}): Promise<string | string[]> {
    const jobs = Array.isArray(input) ? input : [input];
    const now = this.clock.now();
    const records = jobs.map((j): InsertRecord => {
      if (!(j instanceof Job)) throw new ValidationError("enqueue takes Job instances (new Job(name, args, options))", "job");
      const r: InsertRecord = this.recordOf(j, now);
      if (j.uniqueMode === "debounce") r.debounce = true;
      return r;
    });
    const tx = options.transaction;
    if (tx !== undefined && !this.driver.transactions) throw new ConfigError(`the ${this.kind} backend has no transactions to enqueue in`);
    if (records.length === 0) return [];
    if (hasTypedJobs()) await checkTypedJobs(jobs);
    // Sealed here, before the driver: stores only ever hold the ciphertext. No
    // await without a job to seal: on an ordered backend the insert must go
    // out in this tick, ahead of a claim the caller sends right after.
    if (jobs.some((j) => j.encrypt !== undefined)) await sealRecords(jobs, records, this.encryption);
    const traced = this.tracer?.enqueue(records);
    const inserting = this.driver.insert(records, now, tx);
    if (traced) void inserting.then(() => traced(), traced);
    // The insert is on the wire: a claim sent now runs after it.
    const ordered = tx === undefined && this.driver.ordered === true;
    if (ordered) this.emit(records, "sent");
    const results = await inserting;
    settle(jobs, records, results, now);
    // In a caller's transaction the jobs exist only once it commits: the store announces them then (NOTIFY).
    if (tx === undefined) {
      const created = results.flatMap((r, i) =>
        r.created || r.replaced ? [{ id: r.id, queue: records[i]!.queue, runAt: records[i]!.runAt, name: records[i]!.name }] : [],
      );
      if (created.length > 0) this.emit(created, ordered ? "confirmed-ordered" : "confirmed");
    }
    return Array.isArray(input) ? results.map((r) => r.id) : results[0]!.id;
  }

  // ------------------------------------------------------------- flows

  /**
   * Enqueues a tree of jobs in one atomic call: the leaves run at once (or
   * when due); a parent waits (`awaiting`) until every child has finished,
   * then runs and reads their results with `ctx.dependencies()`. A child
   * that fails or is deleted fails the parent unless the parent's
   * `onChildFailure` says otherwise. Jobs of a flow take no unique key.
   * Returns the ids in the tree's shape.
   */
  async enqueueFlow(root: FlowNode): Promise<FlowIds> {
    const now = this.clock.now();
    const records: InsertRecord[] = [];
    const seen = new Set<string>();
    const jobs: Job[] = [];
    const build = (node: FlowNode, depth: number): FlowIds => {
      if (typeof node !== "object" || node === null || !(node.job instanceof Job))
        throw new ValidationError("a flow node is { job: new Job(...), children?: [...] }", "flow");
      if (depth > MAX_FLOW_DEPTH) throw new ValidationError(`a flow nests at most ${MAX_FLOW_DEPTH} levels`, "flow");
      const job = node.job;
      if (seen.has(job.id)) throw new ValidationError(`job ${job.id} appears twice in the flow (a cycle or a repeated job)`, "flow");
      seen.add(job.id);
      if (seen.size > MAX_FLOW_JOBS) throw new ValidationError(`a flow holds at most ${MAX_FLOW_JOBS} jobs`, "flow");
      if (job.uniqueKey !== undefined) throw new ValidationError("jobs of a flow take no uniqueKey: the tree is stored as one", "uniqueKey");
      const children = node.children ?? [];
      if (!Array.isArray(children)) throw new ValidationError("children must be an array of flow nodes", "children");
      const record: InsertRecord = this.recordOf(job, now);
      records.push(record);
      jobs.push(job);
      const ids = children.map((c) => build(c, depth + 1));
      if (ids.length > 0) {
        const otherwise = node.onChildFailure ?? "fail";
        if (otherwise !== "fail" && otherwise !== "ignore" && otherwise !== "remove")
          throw new ValidationError(`onChildFailure must be "fail", "ignore" or "remove"; got ${JSON.stringify(otherwise)}`, "onChildFailure");
        awaitRecord(record, validateFlowSpec({ dependsOn: ids.map((c) => c.id), on: "success", otherwise }), now, `waiting for ${ids.length} children`);
      } else if (node.onChildFailure !== undefined) {
        throw new ValidationError("onChildFailure needs children", "onChildFailure");
      }
      return { id: job.id, children: ids };
    };
    const tree = build(root, 0);
    if (hasTypedJobs()) await checkTypedJobs(jobs);
    await sealRecords(jobs, records, this.encryption);
    const traced = this.tracer?.enqueue(records);
    const results = await this.driver.insert(records, now).finally(() => traced?.());
    settle(jobs, records, results, now);
    const created = results.flatMap((r, i) =>
      r.created && records[i]!.state !== JobState.Awaiting ? [{ id: r.id, queue: records[i]!.queue, runAt: records[i]!.runAt }] : [],
    );
    if (created.length > 0) this.emit(created, "confirmed");
    // A child that existed already may have finished: its parent is settled now.
    if (results.some((r) => !r.created)) await this.settleWaiters(records.filter((r) => r.state === JobState.Awaiting).map((r) => r.id));
    return tree;
  }

  /**
   * Enqueues `job` to run after job `parentId` finishes (Hangfire's
   * ContinueJobWith): on its success by default, or `{ on: "failure" }` /
   * `{ on: "any" }`. When the parent ends another way, the continuation
   * ends deleted. A parent that has already finished decides at once.
   * NotFoundError when the parent does not exist. Returns the job's id.
   */
  async continueWith(parentId: string, job: Job, options: ContinueOptions = {}): Promise<string> {
    if (!(job instanceof Job)) throw new ValidationError("continueWith takes a Job instance (new Job(name, args, options))", "job");
    if (!isJobId(parentId)) throw new ValidationError("parentId must be a job id", "parentId");
    if (job.uniqueMode === "debounce") throw new ValidationError('a continuation cannot be debounced (uniqueMode "debounce")', "uniqueMode");
    if (job.id === parentId) throw new ValidationError("a job cannot continue itself", "parentId");
    const now = this.clock.now();
    const record: InsertRecord = this.recordOf(job, now);
    const on = options.on ?? "success";
    awaitRecord(record, validateFlowSpec({ dependsOn: [parentId], on, otherwise: "delete" }), now, `waiting for job ${parentId} (on ${on})`);
    const [parent] = await this.driver.get([parentId]);
    if (!parent) throw new NotFoundError("job", parentId);
    if (hasTypedJobs()) await checkTypedJobs([job]);
    await sealRecords([job], [record], this.encryption);
    const traced = this.tracer?.enqueue([record]);
    const [result] = await this.driver.insert([record], now).finally(() => traced?.());
    settle([job], [record], [result!], now);
    await this.settleWaiters([result!.id]);
    return result!.id;
  }

  /** @internal Settles the waiters of jobs that just finished; the engine calls it after completions the store flagged. */
  async settleDependents(finishedIds: string[], now = this.clock.now()): Promise<SettleReport> {
    const report = await settleDependentsOf(this.driver, finishedIds, now);
    this.afterSettle(report);
    return report;
  }

  /** @internal Settles the given awaiting jobs if what they wait for has decided them. */
  async settleWaiters(ids: string[], now = this.clock.now()): Promise<SettleReport> {
    const report = await settleWaiters(this.driver, ids, now);
    this.afterSettle(report);
    return report;
  }

  /**
   * @internal One page of awaiting jobs, settled where decided: the
   * maintenance beat's sweep, for waiters a killed process left behind.
   * Goes on from where the previous call stopped, and starts over at the end.
   */
  async sweepAwaiting(now = this.clock.now(), limit = 100): Promise<SettleReport> {
    const page = await this.driver.list(
      { state: [JobState.Awaiting] },
      { limit, sort: "createdAt", order: "asc", ...(this.sweepAfter ? { after: this.sweepAfter } : {}) },
    );
    this.sweepAfter = page.next;
    if (page.items.length === 0) return { released: [], failed: 0, deleted: 0 };
    return this.settleWaiters(
      page.items.map((r) => r.id),
      now,
    );
  }

  private afterSettle(report: SettleReport): void {
    if (report.released.length > 0) this.emit(report.released, "confirmed");
  }

  // --------------------------------------------------------------- reads

  async get(id: string): Promise<Job | null> {
    if (!isJobId(id)) return null;
    const [r] = await this.driver.get([id]);
    return r ? Job.fromRecord(r) : null;
  }

  /** Several jobs in one round trip, in the order asked (null where absent). */
  async getMany(ids: string[]): Promise<Array<Job | null>> {
    if (!Array.isArray(ids)) throw new ValidationError("ids must be an array", "ids");
    const valid = ids.filter(isJobId);
    const found = new Map<string, JobRecord>();
    for (let i = 0; i < valid.length; i += BATCH) {
      const part = valid.slice(i, i + BATCH);
      const recs = await this.driver.get(part);
      recs.forEach((r) => r && found.set(r.id, r));
    }
    return ids.map((id) => {
      const r = found.get(id);
      return r ? Job.fromRecord(r) : null;
    });
  }

  async list(filter: ListFilter = {}, page: PageRequest = {}): Promise<Page<Job>> {
    const p = await this.driver.list(validateFilter(filter), pageQuery(page));
    return { items: p.items.map((r) => Job.fromRecord(r)), ...(p.next ? { nextCursor: encodeCursor(p.next.sortValue, p.next.id) } : {}) };
  }

  async stats(options: StatsOptions = {}): Promise<Stats> {
    const minutes = clampInt(options.minutes ?? 60, 1, 24 * 60);
    const hours = clampInt(options.hours ?? 24, 1, 24 * 31);
    const now = options.now ?? this.clock.now();
    if (!Number.isFinite(now)) throw new ValidationError("now must be a finite number", "now");
    return this.driver.stats({ now, minutes, hours });
  }

  // ------------------------------------------------------------- actions

  /**
   * Soft-deletes a job in any state but `deleted` (its history stays); a
   * running job's worker loses its lease. One id: whether it applied.
   * Many ids: one result each, in bounded round trips.
   */
  delete(id: string): Promise<boolean>;
  delete(ids: string[]): Promise<ActionResult[]>;
  async delete(input: string | string[]): Promise<boolean | ActionResult[]> {
    if (Array.isArray(input)) return this.transitionMany(input, DELETABLE, JobState.Deleted, "deleted");
    if (!isJobId(input)) return false;
    const [t] = await this.driver.transition({ ids: [input], from: [...DELETABLE], to: JobState.Deleted, reason: "deleted", now: this.clock.now() });
    if (t?.applied) this.emitCancelled([input], "deleted");
    if (t?.dependents) await this.settleDependents([input]);
    return t?.applied === true;
  }

  /**
   * Cancels jobs that have not finished (scheduled, enqueued, processing,
   * awaiting a retry): they end `deleted`, their history saying who
   * cancelled them (`by`), and a running one's AbortSignal fires with a
   * CancelledError: at once in this process; in others through the store's
   * wake-up channel where it has one, else at their next heartbeat.
   * One id: whether it applied. Many: one result each.
   */
  cancel(id: string, options?: { by?: string }): Promise<boolean>;
  cancel(ids: string[], options?: { by?: string }): Promise<ActionResult[]>;
  async cancel(input: string | string[], options: { by?: string } = {}): Promise<boolean | ActionResult[]> {
    const by = options.by === undefined ? undefined : cleanText(String(options.by)).slice(0, 200);
    const reason = by ? `cancelled by ${by}` : "cancelled";
    const results = await this.transitionMany(Array.isArray(input) ? input : [input], CANCELLABLE, JobState.Deleted, reason);
    return Array.isArray(input) ? results : results[0]?.status === "applied";
  }

  /**
   * Called with the ids of jobs cancelled or deleted through this Storage,
   * and, where the store can tell (Redis pub/sub over TCP, PostgreSQL
   * LISTEN/NOTIFY), of running jobs other processes cancelled, so that a
   * server here aborts their runs at once.
   */
  onCancel(listener: CancelListener): () => void {
    this.cancelListeners.add(listener);
    if (!this.closed) this.subscribe();
    return () => this.cancelListeners.delete(listener);
  }

  private emitCancelled(ids: readonly string[], reason: string): void {
    for (const l of this.cancelListeners) {
      try {
        l(ids, reason);
      } catch {
        // a listener's failure is not the canceller's
      }
    }
  }

  /**
   * Puts a job back in `enqueued` with its attempts reset: from failed,
   * succeeded, deleted, or to run a scheduled/awaiting_retry job now.
   * One id: the job, or NotFoundError / InvalidStateError (for a job
   * enqueued or processing). Many ids: one result each; `from` narrows the
   * states that qualify (e.g. failed and awaiting_retry only, for a retry).
   */
  requeue(id: string): Promise<Job>;
  requeue(ids: string[], options?: { from?: JobState[] }): Promise<ActionResult[]>;
  async requeue(input: string | string[], options: { from?: JobState[] } = {}): Promise<Job | ActionResult[]> {
    if (Array.isArray(input)) {
      const from = options.from ?? REQUEUEABLE;
      for (const s of from) {
        if (!REQUEUEABLE.includes(s)) throw new ValidationError(`requeue applies to ${REQUEUEABLE.join(", ")}; got ${JSON.stringify(s)}`, "from");
      }
      return this.transitionMany(input, from, JobState.Enqueued, "requeued");
    }
    const id = input;
    const [t] = isJobId(id)
      ? await this.driver.transition({ ids: [id], from: [...REQUEUEABLE], to: JobState.Enqueued, reason: "requeued", now: this.clock.now() })
      : [null];
    if (!t) throw new NotFoundError("job", String(id));
    const r = t.record;
    if (!t.applied) throw new InvalidStateError(`job ${id} is ${r.state}; only failed, succeeded, deleted, scheduled or awaiting_retry jobs can be requeued`);
    this.emit([{ id: r.id, queue: r.queue, runAt: r.runAt }], "confirmed");
    return Job.fromRecord(r);
  }

  private async transitionMany(
    ids: string[],
    from: readonly JobState[],
    to: typeof JobState.Deleted | typeof JobState.Enqueued,
    reason: string,
  ): Promise<ActionResult[]> {
    if (!Array.isArray(ids)) throw new ValidationError("ids must be an array", "ids");
    const unique = [...new Set(ids)];
    const byId = new Map<string, TransitionResult | null>();
    const valid = unique.filter(isJobId);
    const now = this.clock.now();
    // Chunks go out together: over an HTTP driver they share one request.
    const parts: string[][] = [];
    for (let i = 0; i < valid.length; i += BATCH) parts.push(valid.slice(i, i + BATCH));
    const answers = await Promise.all(parts.map((part) => this.driver.transition({ ids: part, from: [...from], to, reason, now })));
    parts.forEach((part, p) => part.forEach((id, i) => byId.set(id, answers[p]![i] ?? null)));
    const woken: Array<{ id: string; queue: string; runAt: number }> = [];
    const ended: string[] = [];
    const awaited: string[] = [];
    const out = unique.map((id): ActionResult => {
      const t = byId.get(id);
      if (!t) return { id, status: "not_found" };
      if (t.applied && to === JobState.Enqueued) woken.push({ id, queue: t.record.queue, runAt: t.record.runAt });
      if (t.applied && to === JobState.Deleted) ended.push(id);
      if (t.dependents) awaited.push(id);
      return { id, status: t.applied ? "applied" : "invalid_state", state: t.record.state };
    });
    if (woken.length > 0) this.emit(woken, "confirmed");
    if (ended.length > 0) this.emitCancelled(ended, reason);
    if (awaited.length > 0) await this.settleDependents(awaited);
    return out;
  }

  /**
   * Sends an event to the jobs waiting for it (ctx.step.waitForEvent with
   * this `name`, and a `match` the data meets): each receives
   * `{ name, data, at }` and is requeued at once. Jobs that start waiting
   * later do not see it. `data` is JSON, at most MAX_STEP_RESULT_BYTES
   * serialised. Answers the ids it was delivered to.
   */
  async sendEvent(name: string, data?: unknown): Promise<SendEventResult> {
    const event = validateEventName(name);
    const value = validateEventData(data);
    return deliverEvent(this.driver, event, value, this.clock.now(), (ids) => this.wake(ids, `event "${event}" received`));
  }

  /** @internal Requeues suspended jobs (scheduled) now, announcing them: an event woke them. */
  wake(ids: string[], reason: string): Promise<ActionResult[]> {
    return this.transitionMany(ids, [JobState.Scheduled], JobState.Enqueued, reason);
  }

  /**
   * Hard-deletes finished jobs (succeeded, failed, deleted; or the finished
   * `states` named) last updated before `olderThan` (default: all of them).
   * Returns how many. Live jobs are never purged: a state that is not
   * finished is refused.
   */
  async purgeFinished(options: { states?: JobState[]; olderThan?: Date } = {}): Promise<number> {
    const states = options.states ?? [...FINISHED_STATES];
    for (const s of states) {
      if (!isJobState(s)) throw new ValidationError(`unknown state ${JSON.stringify(s)}`, "states");
      if (!FINISHED_STATES.includes(s))
        throw new ValidationError(`purgeFinished removes finished jobs only (${FINISHED_STATES.join(", ")}); ${s} is not finished`, "states");
    }
    const olderThan = options.olderThan;
    if (olderThan !== undefined && (!(olderThan instanceof Date) || Number.isNaN(olderThan.getTime())))
      throw new ValidationError("olderThan must be a valid Date", "olderThan");
    return this.driver.purge(states, olderThan?.getTime() ?? this.clock.now() + 1, 100_000);
  }

  // -------------------------------------------------------------- queues

  /** Pauses a queue on every server and invocation: it keeps accepting jobs and claims none until resumed. */
  async pauseQueue(queue: string): Promise<void> {
    await this.driver.setPaused(validateQueueName(queue), true, this.clock.now());
  }

  /** Resumes a paused queue; servers find its jobs at their next claim. */
  async resumeQueue(queue: string): Promise<void> {
    await this.driver.setPaused(validateQueueName(queue), false, this.clock.now());
    // A server in this process claims again at once.
    this.emit([{ id: "", queue, runAt: this.clock.now() }], "confirmed");
  }

  /** The paused queues, sorted. */
  pausedQueues(): Promise<string[]> {
    return this.driver.pausedQueues();
  }

  // ----------------------------------------------------------- recurring

  /**
   * Adds or replaces a recurring job: every slot of `cron` (in `timezone`,
   * default UTC) enqueues `name(args)` once, however many servers tick.
   */
  async addOrUpdateRecurring(id: string, cron: string, name: string, args: unknown[] = [], options: RecurringOptions = {}): Promise<RecurringDefinition> {
    const def = buildRecurring(id, cron, name, args, options, this.clock.now());
    await this.driver.upsertRecurring(def);
    return def;
  }

  listRecurring(): Promise<RecurringDefinition[]> {
    return this.driver.listRecurring();
  }

  /** Stops a recurring job. Firings already enqueued stay. */
  async deleteRecurring(id: string): Promise<boolean> {
    try {
      validateRecurringId(id);
    } catch {
      return false;
    }
    return this.driver.removeRecurring(id);
  }

  // ------------------------------------------------------------ wake-ups

  /**
   * Called with jobs enqueued (in this process, and with `remote`, in
   * others where the backend can tell), so that a server wakes at once.
   * Returns an unsubscribe.
   */
  onEnqueue(listener: EnqueueListener, options: EnqueueListenerOptions = {}): () => void {
    const remote = options.remote !== false;
    this.listeners.set(listener, { remote, early: options.early === true });
    if (remote && !this.closed) this.subscribe();
    return () => this.listeners.delete(listener);
  }

  /** Starts the backend's subscription to other processes' enqueues, once. Resolves when it is up (true) or known absent (false). */
  async subscribed(): Promise<boolean> {
    if (!this.subscription) return false;
    return (await this.subscription) !== undefined;
  }

  private subscribe(): void {
    if (this.subscription) return;
    const driver = this.driver;
    if (!driver.subscribe) {
      this.subscription = Promise.resolve(undefined);
      this.logger.info("no wake-up channel on this backend: jobs other processes enqueue are found by polling", {
        storage: this.kind,
        transport: driver.transport,
      });
      return;
    }
    this.subscription = driver
      .subscribe({ enqueued: (jobs: RemoteEnqueue) => this.emit(jobs, "remote"), cancelled: (ids, reason) => this.emitCancelled(ids, reason) })
      .then(
        (stop) => {
          if (!stop)
            this.logger.info("no wake-up channel on this transport: jobs other processes enqueue are found by polling", {
              storage: this.kind,
              transport: driver.transport,
            });
          return stop;
        },
        (error: unknown) => {
          this.logger.warn("could not subscribe to wake-ups; falling back to polling", { storage: this.kind, transport: driver.transport, error });
          return undefined;
        },
      );
  }

  /**
   * Who hears what:
   * - "sent": this process's insert is on the wire (ordered backends): early listeners only;
   * - "confirmed-ordered": the same insert confirmed: every listener but the early ones, who heard it sent;
   * - "confirmed": this process's enqueue confirmed: every listener;
   * - "remote": announced by the store for another process: listeners that asked for those.
   */
  private emit(jobs: Parameters<EnqueueListener>[0], origin: "sent" | "confirmed-ordered" | "confirmed" | "remote"): void {
    for (const [l, { remote, early }] of this.listeners) {
      const hears = origin === "remote" ? remote : origin === "sent" ? early : origin === "confirmed-ordered" ? !early : true;
      if (!hears) continue;
      try {
        l(jobs);
      } catch {
        // a listener's failure is not the enqueuer's
      }
    }
  }
}

// ---------------------------------------------------------------------------

/** Queue limits checked at construction: a bad one is a ConfigError, not a surprise at the first enqueue. */
function checkQueueLimits(limits: Record<string, QueueLimits> | undefined): Map<string, QueueLimits> | undefined {
  if (limits === undefined) return undefined;
  if (typeof limits !== "object" || limits === null) throw new ConfigError("queueLimits must be an object of queue name → { concurrency?, rateLimit? }");
  const out = new Map<string, QueueLimits>();
  for (const [queue, l] of Object.entries(limits)) {
    try {
      validateQueueName(queue);
      const rate = l?.rateLimit;
      // The job rules check the numbers, as they would on a job's own limits.
      newJobRecord(
        new Job("queue-limits-check", [], {
          queue,
          ...(l?.concurrency !== undefined ? { concurrency: { key: `queue:${queue}`, limit: l.concurrency } } : {}),
          ...(rate !== undefined ? { rateLimit: { key: `queue:${queue}`, limit: rate.limit, interval: rate.interval } } : {}),
        }),
        0,
      );
    } catch (e) {
      throw new ConfigError(`queueLimits[${JSON.stringify(queue)}]: ${(e as Error).message}`);
    }
    out.set(queue, { ...l });
  }
  return out;
}

/** Makes a record wait (state `awaiting`) for what `flow` names. */
function awaitRecord(record: InsertRecord, flow: ReturnType<typeof validateFlowSpec>, now: number, reason: string): void {
  record.state = JobState.Awaiting;
  record.flow = flow;
  record.runAt = now;
  record.history = [{ state: JobState.Awaiting, at: now, reason }];
}

/** Writes the stored id (and, for new jobs, state, times and history) back onto the caller's Job objects. */
function settle(jobs: Job[], records: JobRecord[], results: InsertResult[], now: number): void {
  results.forEach((r, i) => {
    const job = jobs[i]!;
    const rec = records[i]!;
    job.id = r.id;
    if (r.created || r.replaced) {
      job.state = rec.state;
      job.createdAt = job.updatedAt = new Date(now);
      job.runAt = new Date(rec.runAt);
      job.history = rec.history.map((h) => ({ ...h, at: new Date(h.at) }));
    }
  });
}

function clampInt(v: number, min: number, max: number): number {
  if (!Number.isFinite(v)) return min;
  return Math.min(max, Math.max(min, Math.floor(v)));
}

/** A filter checked against the rules; states always a list. */
export function validateFilter(filter: ListFilter): ListFilter {
  if (typeof filter !== "object" || filter === null) throw new ValidationError("filter must be an object", "filter");
  const out: ListFilter = {};
  if (filter.state !== undefined) {
    const states = Array.isArray(filter.state) ? filter.state : [filter.state];
    for (const s of states) if (!isJobState(s)) throw new ValidationError(`unknown state ${JSON.stringify(s)}`, "state");
    out.state = [...states];
  }
  if (filter.queue !== undefined) out.queue = validateQueueName(filter.queue);
  if (filter.name !== undefined) out.name = validateJobName(filter.name);
  if (filter.text !== undefined) {
    const text = validateSearchText(filter.text);
    if (text.length > 0) out.text = text;
  }
  return out;
}

export function pageQuery(page: PageRequest): PageQuery {
  const limit = page.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new ValidationError("limit must be an integer between 1 and 500", "limit");
  const sort = page.sort ?? "createdAt";
  if (!["createdAt", "updatedAt", "runAt"].includes(sort)) throw new ValidationError("sort must be createdAt, updatedAt or runAt", "sort");
  const order = page.order ?? "desc";
  if (order !== "asc" && order !== "desc") throw new ValidationError("order must be asc or desc", "order");
  return { limit, sort, order, ...(page.cursor !== undefined ? { after: decodeCursor(page.cursor) } : {}) };
}

/**
 * Cursors are keyset positions: the sort value and the id of the last
 * item. Encoded here, so a cursor means the same on every backend.
 */
export function encodeCursor(sortValue: number, id: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify([sortValue, id])))).replace(/=+$/, "");
}

export function decodeCursor(cursor: unknown): { sortValue: number; id: string } {
  if (typeof cursor === "string" && cursor.length <= 1024) {
    try {
      const bytes = Uint8Array.from(atob(cursor), (c) => c.charCodeAt(0));
      const [sortValue, id] = JSON.parse(new TextDecoder().decode(bytes)) as [unknown, unknown];
      if (typeof sortValue === "number" && Number.isSafeInteger(sortValue) && isJobId(id)) return { sortValue, id };
    } catch {
      // fall through
    }
  }
  throw new ValidationError("cursor is malformed", "cursor");
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
  validateRecurringId(id);
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
  // The job options are checked as a one-off job's are.
  const { timezone, ...jobOptions } = options;
  // A definition keeps its arguments in the store as given, unsealed.
  if ((jobOptions as JobOptions).encrypt) throw new ValidationError("recurring jobs cannot have encrypted arguments", "encrypt");
  newJobRecord(new Job(name, args, jobOptions as JobOptions), now);
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
