/**
 * The storage driver: the seam every backend implements.
 *
 * INTERNAL AND UNSTABLE. Application code never calls a driver: it builds a
 * `Storage` over one (`new Storage(redisBackend(config))`) and uses that.
 * This interface changes whenever the engine needs something new from the
 * stores (as River documents of its driver interface); a backend outside
 * this repository pins the qml version it was written for.
 *
 * Rules every driver keeps:
 *
 * - One method is one atomic round trip (one Lua call, one SQL statement,
 *   or one pipeline of them) and takes a batch. No transaction object crosses
 *   the seam: over HTTP drivers the round trip is the cost, and Neon's HTTP
 *   endpoint has no interactive transactions.
 * - Input arrives valid. `Storage` (storage.ts) checks every id, key, name
 *   and value against the rules in rules.ts before calling a driver, so a
 *   driver never re-validates and every backend refuses the same input with
 *   the same error. A driver only converts values to its store's form.
 * - Time is passed in (`now`, epoch ms) and never read from the machine's
 *   clock, so tests move a ManualClock instead of sleeping.
 * - The core decides target states (which outcome, what backoff); drivers
 *   persist them.
 * - Writes are idempotent under a client's own retries (Upstash retries a
 *   request whose connection failed): inserts by id and unique key, claims
 *   and operator transitions by a token per call, completions by lease token.
 *
 * Lease state diagram (fencing by `leaseToken`):
 *
 *        claim (token+1, attempts+1)          complete(token) ─► succeeded | failed | awaiting_retry
 *  enqueued ───────────────────────► processing ──┤
 *     ▲  ▲                               │  ▲      extendLeases(token) ─► leaseUntil = now + leaseMs
 *     │  └──── release(token) ───────────┘  │
 *     └────── reclaimExpired (leaseUntil < now, attempts left; else failed)
 *
 *  A release (outcome `enqueued`) gives back the attempt unless the outcome
 *  says it counts, and keeps the job's runAt, so the job keeps its place at
 *  the head of its queue. Operator transitions (delete, requeue) bump the
 *  token too, so a worker holding an old token can no longer write the job.
 *
 * A backend proves it fits with `satisfies StorageDriver` (or `implements`),
 * and passes the shared suite in test/storage/conformance.ts on every one
 * of its transports.
 */
import type { ErrorInfo } from "./errors.js";
import type { HistoryEntry, JobRecord, JobState, StepRecord } from "./job.js";

export const MINUTE = 60_000;
export const HOUR = 3_600_000;

/**
 * How long a store keeps a rate key's count after its last start's window
 * ended. Each server claims with its own store-aligned clock, and two of
 * them can differ by half a slow round trip: a count forgotten as soon as
 * one server's clock leaves the window would let a server whose clock is
 * still in it hand out that window's starts again. Ten minutes is far past
 * any clock the alignment leaves, and a row per key costs little.
 */
export const RATE_COUNT_KEEP_MS = 10 * MINUTE;

// ---------------------------------------------------------------------------
// Shapes that cross the seam

/** A record to insert, with what to do when its uniqueKey is taken. */
export interface InsertRecord extends JobRecord {
  /**
   * uniqueMode "debounce": when the job holding uniqueKey still waits
   * (scheduled or enqueued), it takes this record's arguments, metadata,
   * runAt (and so state) and uniqueUntil, with a history entry "debounced",
   * instead of a job being made; when it has started or finished, this
   * record is inserted and the key moves to it.
   */
  debounce?: boolean;
}

export interface InsertResult {
  id: string;
  /** False when a job with the same id or uniqueKey already existed: `id` is that job's. */
  created: boolean;
  /** True when that existing job took this record's arguments and due time (debounce). */
  replaced?: boolean;
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

export type OutcomeState =
  typeof JobState.Succeeded | typeof JobState.Failed | typeof JobState.AwaitingRetry | typeof JobState.Enqueued | typeof JobState.Scheduled;

/**
 * The outcome of one attempt, decided by the core. Applied only while the
 * job is `processing` with `leaseToken === token`; otherwise it is lost.
 */
export interface Outcome {
  id: string;
  token: number;
  /**
   * `enqueued` releases the job (shutdown, deadline): attempts go back by
   * one unless `countAttempt`, runAt kept. `scheduled` suspends it until
   * `runAt` (a durable step's sleep or event wait, steps.ts): attempts go
   * back by one unless `countAttempt`, error kept, the job due again at
   * runAt like any scheduled job.
   */
  state: OutcomeState;
  /** For awaiting_retry and scheduled: when the job is due again. */
  runAt?: number;
  /** For a release or suspension: the attempt stays counted (a run cut off at an invocation's deadline). */
  countAttempt?: boolean;
  result?: unknown;
  error?: ErrorInfo;
  reason: string;
  worker: string;
}

export type CompletionStatus = "applied" | "lost";
export interface CompletionResult {
  id: string;
  status: CompletionStatus;
  /**
   * True when the outcome finished the job (succeeded, failed) and jobs
   * wait for it (a dependency edge names it): the core settles them next.
   */
  dependents?: boolean;
}

/**
 * A change of state by an operator (delete, requeue) or by the core
 * settling a waiting job (release, fail, delete), applied to each job
 * whose state is one of `from`.
 */
export interface TransitionRequest {
  ids: string[];
  from: JobState[];
  /**
   * `deleted` (soft delete), `enqueued` (requeue or release: attempts 0,
   * runAt now, lease, error and result cleared), or `failed` (a waiting
   * job whose dependency failed: finishedAt now, `error` recorded, counted
   * in the failed throughput like a failed run).
   */
  to: typeof JobState.Deleted | typeof JobState.Enqueued | typeof JobState.Failed;
  reason: string;
  /** For `failed`: the error recorded. */
  error?: ErrorInfo;
  now: number;
}

export interface TransitionResult {
  /** The job as it is after the call, changed or not. */
  record: JobRecord;
  applied: boolean;
  /** As in CompletionResult: the transition finished the job (deleted, failed) and jobs wait for it. */
  dependents?: boolean;
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

/** A page request after validation: what a driver receives. */
export interface PageQuery {
  limit: number;
  sort: SortField;
  order: "asc" | "desc";
  /** Decoded keyset position of the previous page's last item. */
  after?: { sortValue: number; id: string };
}

export interface Page<T> {
  items: T[];
  /** Present when more items follow. */
  nextCursor?: string;
}

/** What a driver answers for a list: the page and, when more follow, where the last item was. */
export interface RecordPage {
  items: JobRecord[];
  next?: { sortValue: number; id: string };
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
  minutes: number;
  /** Per-hour buckets ending at `now` (default 24). */
  hours: number;
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

/** Jobs another process enqueued, as a store announces them (ids may be empty). */
export type RemoteEnqueue = ReadonlyArray<{ id: string; queue: string; runAt: number }>;

/** What a store's subscription reports. */
export interface StoreEvents {
  enqueued(jobs: RemoteEnqueue): void;
  /** Running jobs another process cancelled or deleted, and the reason in their history. */
  cancelled(ids: readonly string[], reason: string): void;
}

/** How long finished jobs (succeeded, failed, deleted) are kept. One name on every backend. */
export interface Retention {
  /** Finished jobs older than this are pruned, in ms; 0 = no age limit (default 24 h). */
  finishedJobTtlMs: number;
  /** At most this many finished jobs are kept, the oldest pruned first; 0 = none kept (default 10,000). */
  maxFinishedJobs: number;
}

export const DEFAULT_RETENTION: Readonly<Retention> = { finishedJobTtlMs: 24 * 3_600_000, maxFinishedJobs: 10_000 };

/** What kvHit answers: the count in the current window, and when that window ends (epoch ms). */
export interface KvHit {
  count: number;
  resetAt: number;
}

// ---------------------------------------------------------------------------

export interface StorageDriver {
  /** "memory", "redis", "postgres", or a custom backend's name. */
  readonly kind: string;
  /** What carries it, for logs: "ioredis", "upstash", "pg", "neon-ws", "neon-http"… */
  readonly transport: string;

  /** Creates or upgrades the store's schema. Idempotent. */
  migrate(): Promise<void>;
  /** Releases connections and subscriptions. Idempotent. */
  close(): Promise<void>;

  /**
   * Inserts new records. A record in state `awaiting` carries `flow`: for
   * each id in `flow.dependsOn` the insert writes a dependency edge
   * (dependency → waiter) in the same atomic step, whether or not that
   * dependency exists. Edges are what `dependents` reads, what the
   * `dependents` flag of complete/transition results reports, and what
   * keeps a finished dependency from being pruned (reclaimExpired,
   * insert and complete prune finished jobs; purge does not look at
   * edges: an operator's purge is explicit). A transition that takes a
   * job out of `awaiting` deletes the edges it is the waiter of, in the
   * same step. `flow` is stored and read back as given.
   *
   * A record whose id or uniqueKey is already taken
   * (in the store or earlier in the batch) is not inserted; its result
   * carries the existing job's id and `created: false`. A uniqueKey whose
   * holder's `uniqueUntil` is at or before `now` is free: the holder keeps
   * its row but loses the key, and the record is inserted with it.
   * `debounce` records replace a waiting holder instead (InsertRecord).
   * Records are taken in order: within a batch, the last debounce wins.
   * With `tx` (only when `transactions` is true) the insert runs on the
   * caller's own transaction handle and exists if and only if that commits.
   */
  insert(records: InsertRecord[], now: number, tx?: unknown): Promise<InsertResult[]>;

  /**
   * Moves up to `limit` due jobs of `queues` to `processing` under a lease.
   * Due means `enqueued`, or `scheduled`/`awaiting_retry` with `runAt <= now`
   * (promoted first). Order: queue order, then priority (higher first),
   * then runAt, then insertion. Each claimed job gets attempts + 1,
   * leaseToken + 1, leaseOwner, leaseUntil = now + leaseMs. Any number of
   * concurrent callers claim each job exactly once. A paused queue
   * (setPaused) gives none, decided in the same atomic step.
   *
   * Limits, decided in the same atomic step against the store's counts,
   * never a process's own:
   * - `concurrencyKey`: a job is claimed only while fewer than its
   *   `concurrencyLimit` jobs with that key are `processing`; the others
   *   stay `enqueued`, in place, and are not taken while the key is full.
   *   A job leaving `processing` by any path (complete, reclaim, transition)
   *   frees its slot in the same step.
   * - `rateKey`: each key hands out starts in order, at most `rateLimit`
   *   per window (window w spans [w, w + 1) × rateInterval ms). A job whose
   *   `rateWindow` is the current window holds a start already and is
   *   claimed without taking another. Any other job takes the key's next
   *   start: in the current window it is claimed; in a later window w it is
   *   not claimed but becomes `scheduled` with runAt = w × rateInterval and
   *   rateWindow = w (history "rate limited"), attempts unchanged.
   * A job refused by its concurrency limit either takes no start or keeps
   * the one it took (rateWindow) for a claim later in that window: no
   * window hands out more than rateLimit starts. A key's count is kept
   * RATE_COUNT_KEEP_MS past its last start's window, never dropped as that
   * window ends, and is then forgotten by the housekeeping (reclaimExpired;
   * a store may walk its counts at most once a minute).
   */
  claim(req: ClaimRequest): Promise<JobRecord[]>;

  /**
   * Pauses or resumes a queue, for every server and invocation at once: a
   * paused queue accepts jobs and claims none. Idempotent.
   */
  setPaused(queue: string, paused: boolean, now: number): Promise<void>;
  /** The paused queues, sorted. */
  pausedQueues(): Promise<string[]>;

  /** Extends the leases still held (processing, same token). Returns their ids. */
  extendLeases(leases: LeaseRef[], leaseMs: number, now: number): Promise<string[]>;

  /** Applies outcomes, each fenced by its token; a second outcome for one job in a batch is lost. */
  complete(outcomes: Outcome[], now: number): Promise<CompletionResult[]>;

  /** Records a worker's progress value, fenced by the lease. */
  setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean>;

  /** Moves up to `limit` due `scheduled`/`awaiting_retry` jobs to `enqueued`. Returns how many. */
  promoteDue(now: number, limit: number): Promise<number>;

  /**
   * Jobs in `processing` whose lease ended before `now`: back to `enqueued`
   * (runAt = now), or `failed` when attempts >= maxAttempts. The token is
   * bumped. Also prunes finished jobs past the retention. Returns how many
   * were reclaimed.
   */
  reclaimExpired(now: number, limit: number): Promise<number>;

  /** The records of `ids`, in order (null where absent). */
  get(ids: string[]): Promise<Array<JobRecord | null>>;
  list(filter: ListFilter, page: PageQuery): Promise<RecordPage>;
  stats(req: StatsRequest): Promise<Stats>;

  /**
   * Applies an operator's transition to each job whose current state is one
   * of `from`. Bumps the token and appends history. Per id, in order: the
   * record (changed or not) and whether it applied, or null when the job
   * does not exist.
   */
  transition(req: TransitionRequest): Promise<Array<TransitionResult | null>>;

  /**
   * Ids of the jobs waiting on any of `ids` (their dependency edges),
   * each once, in any order. Edges go when their waiter leaves `awaiting`.
   */
  dependents(ids: string[]): Promise<string[]>;

  /** Hard-deletes jobs in `states` last updated before `olderThan`. Returns how many. */
  purge(states: JobState[], olderThan: number, limit: number): Promise<number>;

  /** Inserts or replaces a definition; an existing one keeps its createdAt and lastSlot. */
  upsertRecurring(def: RecurringDefinition): Promise<void>;
  listRecurring(): Promise<RecurringDefinition[]>;
  removeRecurring(id: string): Promise<boolean>;
  /** Sets lastSlot if it moves forward. Returns false when another caller got there first. */
  markRecurringFired(id: string, slot: number): Promise<boolean>;

  /**
   * Expected run time per job name (ms), kept for short-lived invocations:
   * a cold isolate plans its deadline with what earlier ones measured.
   * A write replaces the names it carries and keeps the others.
   */
  readEstimates(): Promise<Record<string, number>>;
  writeEstimates(estimates: Record<string, number>, now: number): Promise<void>;

  /**
   * A small key-value store beside the jobs, for what the adapters must
   * share across processes (revoked sessions, the session epoch and
   * secret, throttle counters). Keys and values arrive valid (Storage.kv).
   * An entry with `expiresAt` (epoch ms) is gone once `now` reaches it:
   * never read back, and purged by the store (Redis: key expiry; SQL: each
   * write deletes a few expired rows). Each call is one atomic round trip.
   */
  kvGet(key: string, now: number): Promise<string | undefined>;
  kvSet(key: string, value: string, expiresAt: number | undefined, now: number): Promise<void>;
  /** Sets `key` only when it is absent (or expired). Returns the value stored after the call: `value` or the one already there. */
  kvAdd(key: string, value: string, expiresAt: number | undefined, now: number): Promise<string>;
  /** Returns whether an entry (live or not yet purged) was removed. */
  kvDelete(key: string): Promise<boolean>;
  /**
   * A fixed-window counter: adds one to `key` and returns the count and
   * when the window ends. A key that is absent, expired or holds no count
   * starts a new window at `now` (count 1, resetAt now + windowMs).
   */
  kvHit(key: string, windowMs: number, now: number): Promise<KvHit>;

  /**
   * Replaces the job's durable steps (JobRecord.steps, read back as given,
   * in order) with `steps` and appends `entry` to its history, fenced by
   * the lease as setProgress is: false, and nothing written, unless the job
   * is `processing` with `lease.token`. Steps survive every later state
   * change (retries, suspensions, requeues, transitions) until the job is
   * pruned; a claim returns them with the record.
   */
  saveSteps(lease: LeaseRef, steps: StepRecord[], entry: HistoryEntry, now: number): Promise<boolean>;

  /**
   * The event-waiter index (durable steps' waitForEvent): `addWaiter` notes
   * that job `id` waits for events named `event` until `expiresAt` (epoch
   * ms; a second add for the pair replaces it); `waiters` answers the ids
   * noted for `event` whose expiresAt is after `now` (at most `limit`, any
   * order; expired entries may be purged by the call); `removeWaiters`
   * deletes the pairs. The index says who to look at, not who waits: the
   * core checks each job's steps before it delivers.
   */
  addWaiter(event: string, id: string, expiresAt: number, now: number): Promise<void>;
  waiters(event: string, now: number, limit: number): Promise<string[]>;
  removeWaiters(event: string, ids: string[]): Promise<void>;

  // ------------------------------------------------ optional capabilities

  /** The store's own clock (epoch ms), for aligning machines whose clocks disagree. */
  serverTime?(): Promise<number | undefined>;

  /**
   * Hears of what other processes do to the store (Redis pub/sub,
   * PostgreSQL LISTEN/NOTIFY): jobs they enqueue, and running jobs they
   * cancel (a transition that takes a `processing` job out of processing
   * announces its id and the reason it recorded). Resolves to an
   * unsubscribe once the subscription is up, or to undefined when the
   * transport has none (HTTP).
   */
  subscribe?(handlers: StoreEvents): Promise<(() => Promise<void>) | undefined>;

  /**
   * True when a call reaches the store after every call sent before it (one
   * ordered connection): a claim sent while an insert is in flight runs
   * after it, so a local server may claim right behind an insert.
   */
  readonly ordered?: boolean;

  /** True when `insert` takes a caller's transaction handle (`tx`). */
  readonly transactions?: boolean;
}

// ---------------------------------------------------------------------------
// Helpers for drivers

export function emptyCounts(): StateCounts {
  return { scheduled: 0, enqueued: 0, processing: 0, succeeded: 0, failed: 0, awaiting_retry: 0, deleted: 0, awaiting: 0 };
}

/** Bucket starts (ascending) for a stats window ending at `now`. */
export function bucketStarts(now: number, size: number, count: number): number[] {
  const last = Math.floor(now / size) * size;
  const out: number[] = [];
  for (let i = count - 1; i >= 0; i--) out.push(last - i * size);
  return out;
}

/** Sort key of a record for list pages. */
export function sortValue(r: JobRecord, sort: SortField): number {
  return sort === "updatedAt" ? r.updatedAt : sort === "runAt" ? r.runAt : r.createdAt;
}

/** Whether a record passes a (validated) filter, for drivers that filter in process. */
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
