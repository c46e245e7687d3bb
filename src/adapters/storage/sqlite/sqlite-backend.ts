/**
 * SqliteBackend: the storage driver (core/driver.ts) over SQLite.
 *
 *   const storage = new Storage(sqliteBackend(new SqliteConfig("./data/qml.db")));          // Node
 *   const storage = new Storage(sqliteBackend(new SqliteConfig().withDriver(d1Driver(env.QML_DB))));   // Workers (D1)
 *
 * Every driver method is one `driver.batch([...])` of one or a few
 * statements (statements/): one transaction on better-sqlite3, one
 * subrequest on D1. SQLite has a single writer, so a batch that writes runs
 * alone: the claim picks its jobs and updates them in one `UPDATE … WHERE
 * seq IN (pick) RETURNING …`, and no other claim can read between the two.
 * Batches of rows (inserts, outcomes, leases) travel as one JSON parameter
 * (cut into several statements of the same batch past 600,000 characters:
 * D1 refuses a string over 2 MB).
 *
 * Construction does no I/O: the better-sqlite3 driver is made at the first
 * call (and with `withAutoMigrate(true)`, that call migrates first).
 *
 * Wake-ups: SQLite has no channel to announce an enqueue to another
 * process, so there is no `subscribe`: a server hears of its own process's
 * enqueues through the Storage's listeners (on better-sqlite3 it claims
 * right behind the insert: `ordered`), and of other processes' jobs at its
 * next poll.
 *
 * Pauses: a paused queue is a row in qml_paused_queues, which the claim
 * reads in its own statement (statements/claim.ts), so a pause is seen by
 * every claim that begins after it commits, on every process and isolate.
 *
 * Retention rides along on writes: the batches that finish jobs (complete,
 * transition) carry the prune statements at most once a second per
 * process, and reclaimExpired, the beat of every runtime, always does.
 *
 * Flows (core/flows.ts): an awaiting job's dependency edges are rows of
 * qml_job_deps (migration 0005), written by the batch that inserts it,
 * deleted by the batch that takes it out of awaiting, and read by the
 * statements that finish jobs (whether jobs wait for them, in their
 * RETURNING) and by the prune, which keeps a job waited for, and the jobs
 * a released waiter will read as if they had finished at its release
 * (waited_until; statements/prune.ts).
 *
 * Durable steps (migration 0006): a job's steps are the nullable JSON text
 * column qml_jobs.steps, written only by saveSteps (fenced by the lease)
 * and read with the rest of the row, so a claim of jobs without steps reads
 * one NULL more and joins nothing. The suspension outcome `scheduled` is a
 * case of complete's one UPDATE. The event-waiter index is qml_waiters,
 * apart from the jobs; each addWaiter batch deletes a few expired rows.
 *
 * Input arrives valid (Storage checks it against core/rules.ts), so this
 * class converts values to their SQL form and nothing more. The rows it
 * reads are shaped as PostgreSQL's (JSON as text, history as lines), so
 * postgres/rows.ts turns them into records for both.
 */
import {
  HOUR,
  MINUTE,
  RATE_COUNT_KEEP_MS,
  bucketStarts,
  emptyCounts,
  sortValue,
  type ClaimRequest,
  type CompletionResult,
  type InsertRecord,
  type InsertResult,
  type KvHit,
  type LeaseRef,
  type ListFilter,
  type Outcome,
  type PageQuery,
  type QueueStats,
  type RecordPage,
  type RecurringDefinition,
  type StateCounts,
  type Stats,
  type StatsRequest,
  type StorageDriver,
  type ThroughputBucket,
  type TransitionRequest,
  type TransitionResult,
} from "../../../core/driver.js";
import { ConfigError, StepResultTooLargeError, StorageUnavailableError } from "../../../core/errors.js";
import { JobState, LazyHistoryRecord, type FlowSpec, type HistoryEntry, type JobRecord, type StepRecord } from "../../../core/job.js";
import { planInsert, settleGroup, type GroupAnswer, type KeyGroup } from "../postgres/insert-plan.js";
import { claimOrder, recordFields, toRecord, toRecurring, type Row } from "../postgres/rows.js";
import type { ResolvedSqliteConfig } from "./config.js";
import type { SqlStatement, SqliteDriver, SqliteRow } from "./driver.js";
import { createBetterSqlite3Driver } from "./drivers/better-sqlite3.js";
import { toStorageError } from "./errors.js";
import { SCHEMA_VERSION, migrationBatch } from "./migrate.js";
import * as sql from "./statements/index.js";
import * as kv from "./statements/kv.js";

/**
 * Rows a prune statement removes at least; on top, as many as this process
 * finished since its last prune, so that pruning keeps up with any
 * throughput (20,000 jobs/s finish 20,000 a second) while one batch never
 * holds the lock for much longer than the writes it follows.
 */
const PRUNE_BATCH = 1000;
/** Writes that finish jobs carry the prune statements at most this often per process (ms). */
const PRUNE_EVERY_MS = 1000;

/**
 * Characters of one JSON parameter: D1 refuses a string over 2 MB, and
 * 600,000 UTF-16 units are at most 1.8 MB of UTF-8. A batch of rows larger
 * than that goes as several statements in the same batch (still one
 * transaction); a single row (arguments are at most 512 KiB) always fits.
 */
const JSON_CHUNK = 600_000;

/** `rows` as JSON arrays of at most JSON_CHUNK characters each (a row longer than that alone). */
function jsonChunks(rows: readonly unknown[]): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let size = 2;
  for (const row of rows) {
    const text = JSON.stringify(row);
    if (cur.length > 0 && size + text.length + 1 > JSON_CHUNK) {
      out.push(`[${cur.join(",")}]`);
      cur = [];
      size = 2;
    }
    cur.push(text);
    size += text.length + 1;
  }
  if (cur.length > 0) out.push(`[${cur.join(",")}]`);
  return out;
}

/**
 * A folded record row (postgres/insert-plan.ts) as the insert statements
 * read it: retry, metadata and flow as JSON text, stored as JSON.stringify
 * wrote them (see migration 0001), not as SQLite would write the objects
 * again; the free (or both) row carries its group's debounce entries
 * (statements/insert.ts). The folded row has no flow: it comes from the
 * batch's record of the same id (`flows`).
 */
function recordText(row: Record<string, unknown>, group: Record<string, unknown>, flows: ReadonlyMap<string, FlowSpec>): Record<string, unknown> {
  const flow = flows.get(row.id as string);
  const text: Record<string, unknown> = {
    ...row,
    retry: row.retry == null ? null : JSON.stringify(row.retry),
    metadata: row.metadata == null ? null : JSON.stringify(row.metadata),
    flow: flow === undefined ? null : JSON.stringify(flow),
  };
  if (group.d_n !== undefined && row.role !== "run") {
    text.d_history = group.d_history;
    text.d_n = group.d_n;
  }
  return text;
}

/** `fields` with the job's flow from its row (JSON text; migration 0005), when it has one. */
function withFlow<T extends { flow?: FlowSpec }>(fields: T, row: Row): T {
  if (row.flow != null && fields.flow === undefined) fields.flow = JSON.parse(row.flow as string) as FlowSpec;
  return fields;
}

/** A row of the jobs table as a record, flow included. */
function rowRecord(row: Row): JobRecord {
  return withFlow(toRecord(row), row);
}

export class SqliteBackend implements StorageDriver {
  readonly kind = "sqlite";
  /** What runs the SQL: "better-sqlite3", or the driver instance's kind ("d1"…). */
  readonly transport: string;
  private readonly config: ResolvedSqliteConfig;
  private readonly ownsDriver: boolean;
  private readonly ttlMs: number;
  private readonly maxFinished: number;
  private readonly claims = new Map<number, sql.ClaimStatements>();
  private db: SqliteDriver | undefined;
  private migrated = false;
  private migrating: Promise<void> | undefined;
  private closed = false;
  /** When the prune statements last rode along (ms, the callers' clock); -Infinity: never. */
  private prunedAt = -Infinity;
  /** Jobs this process finished (or deleted) since then: the next prune removes at least as many. */
  private finishedSincePrune = 0;

  constructor(config: ResolvedSqliteConfig) {
    this.config = config;
    this.ttlMs = config.finishedJobTtlMs;
    this.maxFinished = config.maxFinishedJobs;
    if (config.driver) {
      this.db = config.driver;
      this.transport = config.driver.kind;
      this.ownsDriver = false;
    } else if (config.path !== undefined) {
      this.transport = "better-sqlite3";
      this.ownsDriver = true;
    } else {
      throw new ConfigError("no database: use new SqliteConfig(path) (Node) or withDriver(driver) (a D1 binding's driver)", { scope: "sqlite" });
    }
  }

  /**
   * True when calls reach the database in the order they are made
   * (better-sqlite3: each batch runs inside the call), so a local server may
   * claim right behind an insert. A driver instance says for itself.
   */
  get ordered(): boolean {
    return this.config.driver ? this.config.driver.ordered === true : true;
  }

  /** The SQLite driver, once made (for tools and tests: pragmas, commit counts). */
  get sqlite(): SqliteDriver | undefined {
    return this.db;
  }

  // ----------------------------------------------------------- plumbing

  /** The driver, made on first use (synchronously: calls keep their order). */
  private connect(): SqliteDriver {
    if (this.db) return this.db;
    if (this.closed) throw new StorageUnavailableError("the backend is closed", { scope: "sqlite" });
    this.db = createBetterSqlite3Driver({
      path: this.config.path!,
      busyTimeoutMs: this.config.busyTimeoutMs,
      ...(this.config.betterSqlite3 !== undefined ? { module: this.config.betterSqlite3 } : {}),
    });
    return this.db;
  }

  /**
   * One batch. Once migrated (or without autoMigrate) it goes to the driver
   * within this call, with no await before it, so that calls keep their
   * order on an ordered driver.
   */
  private run(statements: SqlStatement[]): Promise<SqliteRow[][]> {
    if (this.closed) return Promise.reject(new StorageUnavailableError("the backend is closed", { scope: "sqlite" }));
    let db: SqliteDriver;
    try {
      db = this.connect();
    } catch (e) {
      return Promise.reject(toStorageError(e, this.transport));
    }
    const sent = this.migrated || !this.config.autoMigrate ? db.batch(statements) : this.migrate().then(() => db.batch(statements));
    return sent.catch((e: unknown) => {
      throw toStorageError(e, this.transport);
    });
  }

  private async one(statement: SqlStatement): Promise<SqliteRow[]> {
    return (await this.run([statement]))[0]!;
  }

  // ---------------------------------------------------------- lifecycle

  /**
   * Creates or upgrades the schema. Cheap when it is current (one SELECT).
   * Otherwise one batch applies the missing migrations (migrate.ts); a
   * concurrent starter's batch fails whole, and it then reads the version
   * the other applied.
   */
  migrate(): Promise<void> {
    if (this.migrated) return Promise.resolve();
    this.migrating ??= this.doMigrate().finally(() => (this.migrating = undefined));
    return this.migrating;
  }

  private async doMigrate(): Promise<void> {
    let db: SqliteDriver;
    try {
      db = this.connect();
    } catch (e) {
      throw toStorageError(e, this.transport);
    }
    const version = await this.version(db);
    if (version < SCHEMA_VERSION) {
      try {
        await db.batch(migrationBatch(version));
      } catch (e) {
        if ((await this.version(db).catch(() => 0)) < SCHEMA_VERSION) throw toStorageError(e, this.transport);
      }
    }
    this.migrated = true;
  }

  private async version(db: SqliteDriver): Promise<number> {
    try {
      const [[row]] = (await db.batch([{ sql: sql.schemaVersion }])) as [SqliteRow[]];
      return Number(row?.version ?? 0);
    } catch (e) {
      if (/no such table: qml_migrations/i.test((e as Error)?.message ?? "")) return 0;
      throw toStorageError(e, this.transport);
    }
  }

  /** Closes the database unless the config carried the driver. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.migrating?.catch(() => {});
    if (this.ownsDriver) await this.db?.close();
  }

  /** The database's clock (on D1, one clock for every Worker; on Node, this machine's). Never used for writes. */
  async serverTime(): Promise<number | undefined> {
    const [row] = await this.one({ sql: sql.serverTime });
    return row === undefined ? undefined : Number(row.t);
  }

  // ------------------------------------------------------------- writes

  /**
   * The batch folded into key groups (postgres/insert-plan.ts, shared with
   * PostgreSQL: one reading of "records are taken in order"), then one
   * batch: without unique keys, one INSERT; with them, the plan, the
   * debounces, the keys freed and the inserts (statements/insert.ts).
   */
  async insert(records: InsertRecord[], now: number): Promise<InsertResult[]> {
    const { groups, aliases } = planInsert(records, now);
    const out: Array<InsertResult | undefined> = new Array(records.length);
    if (groups.length > 0) {
      // The records' flows, by id (the first record of an id is the one sent); only awaiting ones write edges.
      const flows = new Map<string, FlowSpec>();
      for (const r of records) if (r.flow !== undefined && !flows.has(r.id)) flows.set(r.id, r.flow);
      const keyed = groups.some((g) => g.row.unique_key !== null);
      const answers = keyed ? await this.insertKeyed(groups, now, flows) : await this.insertPlain(groups, now, flows);
      for (const grp of groups) {
        const results = settleGroup(grp, records, answers.get(grp.g)!);
        // Only a writer between the plan and the debounce could leave a group unsettled, and the batch is one transaction.
        if (results === undefined) throw new Error(`[qml] [sqlite] insert: group ${grp.g} was left unsettled by its own batch (a bug)`);
        results.forEach((r, j) => (out[grp.members[j]!] = r));
      }
    }
    for (const [i, first] of aliases) out[i] = { id: out[first]!.id, created: false };
    return out as InsertResult[];
  }

  /**
   * Groups of one record each, no key: one INSERT per chunk (after the
   * edges of its awaiting records); a record it did not insert found its id taken.
   */
  private async insertPlain(groups: KeyGroup[], now: number, flows: ReadonlyMap<string, FlowSpec>): Promise<Map<number, GroupAnswer>> {
    const chunks = jsonChunks(groups.map((g) => recordText(g.records[0]!, g.row, flows)));
    const edges: SqlStatement[] = flows.size > 0 ? chunks.map((c) => ({ sql: sql.insertEdges, params: [c] })) : [];
    const results = await this.run([...edges, ...chunks.map((c) => ({ sql: sql.insertRows, params: [c, now] }))]);
    const inserted = new Set(results.slice(edges.length).flatMap((rows) => rows.map((r) => r.id as string)));
    return new Map(
      groups.map((g) => {
        const created = inserted.has(g.records[0]!.id as string);
        return [g.g, { kind: "free", hid: null, inserted: created, taken: !created, debounced: false }];
      }),
    );
  }

  /** With unique keys: the plan of every group first, on the jobs as the batch found them, then what each plan does. */
  private async insertKeyed(groups: KeyGroup[], now: number, flows: ReadonlyMap<string, FlowSpec>): Promise<Map<number, GroupAnswer>> {
    const groupChunks = jsonChunks(groups.map((g) => ({ g: g.g, unique_key: g.row.unique_key })));
    const recordChunks = jsonChunks(groups.flatMap((g) => g.records.map((r) => recordText(r, g.row, flows))));
    const debounces = groups.some((g) => g.row.d_n !== undefined);
    const statements: SqlStatement[] = groupChunks.map((c) => ({ sql: sql.insertPlan, params: [c, now] }));
    if (debounces) statements.push(...recordChunks.map((c): SqlStatement => ({ sql: sql.insertDebounce, params: [c, now] })));
    statements.push(...recordChunks.map((c): SqlStatement => ({ sql: sql.insertFree, params: [c] })));
    if (flows.size > 0) statements.push(...recordChunks.map((c): SqlStatement => ({ sql: sql.insertPlannedEdges, params: [c] })));
    statements.push(...recordChunks.map((c): SqlStatement => ({ sql: sql.insertPlanned, params: [c, now] })));
    statements.push({ sql: sql.insertPlanClear });
    const results = await this.run(statements);
    let at = 0;
    const take = (n: number) => results.slice(at, (at += n)).flat();
    const plans = new Map(take(groupChunks.length).map((r) => [Number(r.g), { kind: r.kind as GroupAnswer["kind"], hid: r.hid as string | null }]));
    const debounced = new Set(take(debounces ? recordChunks.length : 0).map((r) => r.id as string));
    take(recordChunks.length); // insertFree answers no rows
    take(flows.size > 0 ? recordChunks.length : 0); // nor insertPlannedEdges
    const inserted = new Set(take(recordChunks.length).map((r) => r.id as string));
    return new Map(
      groups.map((g) => {
        const { kind, hid } = plans.get(g.g)!;
        // The record this plan inserts (as insertPlanned picks it): none while the holder waits.
        const picked = kind === "waiting" ? undefined : g.records.find((r) => r.role !== (kind === "running" ? "free" : "run"));
        const created = picked !== undefined && inserted.has(picked.id as string);
        return [g.g, { kind, hid, inserted: created, taken: picked !== undefined && !created, debounced: hid !== null && debounced.has(hid) }];
      }),
    );
  }

  async setPaused(queue: string, paused: boolean, now: number): Promise<void> {
    await this.one(paused ? { sql: sql.pauseQueue, params: [queue, now] } : { sql: sql.resumeQueue, params: [queue] });
  }

  async pausedQueues(): Promise<string[]> {
    // Sorted here, as every backend sorts (UTF-16 order; SQLite's would be UTF-8 bytes).
    return (await this.one({ sql: sql.pausedQueues })).map((r) => r.queue as string).sort();
  }

  async claim(req: ClaimRequest): Promise<JobRecord[]> {
    if (req.queues.length === 0 || req.limit <= 0) return [];
    const leaseMs = Math.floor(req.leaseMs);
    const claim = this.claimStatements(req.queues.length);
    const params = [JSON.stringify(req.queues), Math.floor(req.limit), req.now, req.owner, leaseMs];
    const results = await this.run(claim.texts.map((text, i) => ({ sql: text, params: claim.params[i]!.map((k) => params[k]!) })));
    const rows = results[claim.returning]!;
    // The claim sets state, lease and updated_at to its parameters and does
    // not send them back. The history is parsed if the job's worker reads it.
    const leaseUntil = req.now + leaseMs;
    return claimOrder(rows as Row[], req.queues).map((row) => {
      const fields = withFlow(recordFields(row), row);
      fields.state = JobState.Processing;
      fields.leaseOwner = req.owner;
      fields.leaseUntil = leaseUntil;
      fields.updatedAt = req.now;
      return new LazyHistoryRecord(fields, row.history as string);
    });
  }

  /** The claim's batch for n queues (one pair of index walks per queue), made once per n. */
  private claimStatements(n: number): sql.ClaimStatements {
    let claim = this.claims.get(n);
    if (!claim) this.claims.set(n, (claim = sql.claim(n)));
    return claim;
  }

  async extendLeases(leases: LeaseRef[], leaseMs: number, now: number): Promise<string[]> {
    if (leases.length === 0) return [];
    const [rows] = await this.run([
      { sql: sql.extendLeases, params: [JSON.stringify(leases.map((l) => ({ id: l.id, token: l.token }))), now, Math.floor(leaseMs)] },
    ]);
    const extended = new Set(rows!.map((r) => r.id as string));
    return leases.filter((l) => extended.has(l.id)).map((l) => l.id);
  }

  async complete(outcomes: Outcome[], now: number): Promise<CompletionResult[]> {
    if (outcomes.length === 0) return [];
    // The first outcome per job goes; a second one in the same batch is
    // lost, as it would be one call later.
    const seen = new Map<string, number>();
    const sent: Array<Record<string, unknown>> = [];
    outcomes.forEach((o, i) => {
      if (seen.has(o.id)) return;
      seen.set(o.id, i);
      const row: Record<string, unknown> = { id: o.id, token: o.token, state: o.state, reason: o.reason, worker: o.worker };
      if (o.runAt !== undefined) row.run_at = o.runAt;
      if (o.countAttempt === true) row.count_attempt = 1;
      // As arguments (see insert): JSON text inside the JSON, stored as written.
      if (o.result !== undefined) row.result = JSON.stringify(o.result);
      if (o.error !== undefined) row.error = JSON.stringify(o.error);
      sent.push(row);
    });
    // Every tally before any update (each counts what is still held), then the deletes, then the updates.
    const chunks = jsonChunks(sent);
    const statements: SqlStatement[] = chunks.map((c) => ({ sql: sql.completeTally, params: [c, now] }));
    if (this.maxFinished === 0) statements.push(...chunks.map((c): SqlStatement => ({ sql: sql.completeDelete, params: [c] })));
    statements.push(...chunks.map((c): SqlStatement => ({ sql: sql.completeUpdate, params: [c, now] })));
    const writes = statements.length - chunks.length;
    const results = await this.run(this.withPrune(statements, now));
    // Applied id → whether jobs wait for it (the update's `deps`; a job the delete removed has no waiters).
    const applied = new Map<string, boolean>();
    for (const rows of results.slice(chunks.length, chunks.length + writes)) for (const r of rows) applied.set(r.id as string, Number(r.deps) === 1);
    return outcomes.map((o, i): CompletionResult => {
      if (seen.get(o.id) !== i || !applied.has(o.id)) return { id: o.id, status: "lost" };
      const finished = o.state === JobState.Succeeded || o.state === JobState.Failed;
      if (finished) this.finishedSincePrune++;
      return finished && applied.get(o.id) ? { id: o.id, status: "applied", dependents: true } : { id: o.id, status: "applied" };
    });
  }

  async setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean> {
    const rows = await this.one({ sql: sql.setProgress, params: [lease.id, lease.token, JSON.stringify(progress ?? null), now] });
    return rows.length > 0;
  }

  async promoteDue(now: number, limit: number): Promise<number> {
    if (limit <= 0) return 0;
    return (await this.one({ sql: sql.promoteDue, params: [now, Math.floor(limit)] })).length;
  }

  /** Also prunes finished jobs (TTL, count) and old throughput buckets: see statements/prune.ts. */
  async reclaimExpired(now: number, limit: number): Promise<number> {
    const n = Math.max(0, Math.floor(limit));
    const results = await this.run([{ sql: sql.reclaimTally, params: [now, n] }, { sql: sql.reclaimExpired, params: [now, n] }, ...this.pruneStatements(now)]);
    return results[1]!.length;
  }

  /**
   * One batch (statements/transition.ts): for waiters leaving awaiting, the
   * retention of what they waited for (when released) and their edges; the
   * failed tally (to failed); the update; and the jobs read back after it.
   */
  async transition(req: TransitionRequest): Promise<Array<TransitionResult | null>> {
    if (req.ids.length === 0) return [];
    const ids = JSON.stringify(req.ids);
    const from = JSON.stringify(req.from);
    const failed = req.to === JobState.Failed;
    const error = failed && req.error !== undefined ? JSON.stringify(req.error) : null;
    const statements: SqlStatement[] = [];
    if (req.from.includes(JobState.Awaiting)) {
      if (req.to === JobState.Enqueued) statements.push({ sql: sql.transitionRetain, params: [ids, from, req.now] });
      statements.push({ sql: sql.transitionEdges, params: [ids, from] });
    }
    if (failed) statements.push({ sql: sql.transitionTally, params: [ids, from, req.now] });
    const at = statements.length;
    statements.push({ sql: sql.transition, params: [ids, from, req.to, req.reason, req.now, error] }, { sql: sql.get, params: [ids] });
    const results = await this.run(this.withPrune(statements, req.now));
    // Applied id → whether jobs wait for it.
    const applied = new Map(results[at]!.map((r) => [r.id as string, Number(r.deps) === 1]));
    if (req.to !== JobState.Enqueued) this.finishedSincePrune += applied.size;
    const byId = new Map(results[at + 1]!.map((row) => [row.id as string, row]));
    return req.ids.map((id): TransitionResult | null => {
      const row = byId.get(id);
      if (!row) return null;
      const result: TransitionResult = { record: rowRecord(row), applied: applied.has(id) };
      if (req.to !== JobState.Enqueued && applied.get(id) === true) result.dependents = true;
      return result;
    });
  }

  async dependents(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await this.one({ sql: sql.dependents, params: [JSON.stringify(ids)] })).map((r) => r.waiter as string);
  }

  async purge(states: JobState[], olderThan: number, limit: number): Promise<number> {
    if (states.length === 0 || limit <= 0) return 0;
    return (await this.one({ sql: sql.purge, params: [JSON.stringify(states), olderThan, Math.floor(limit)] })).length;
  }

  /** The retention statements (statements/prune.ts) for a batch at `now`. */
  private pruneStatements(now: number): SqlStatement[] {
    const batch = PRUNE_BATCH + this.finishedSincePrune;
    this.prunedAt = now;
    this.finishedSincePrune = 0;
    const out: SqlStatement[] = [];
    if (this.ttlMs > 0) out.push({ sql: sql.pruneByAge, params: [now - this.ttlMs, batch] });
    out.push({ sql: sql.pruneByCount, params: [this.maxFinished, batch] });
    out.push({ sql: sql.pruneBuckets, params: [now] });
    out.push({ sql: sql.pruneRateStarts, params: [now - RATE_COUNT_KEEP_MS] });
    return out;
  }

  /** `statements`, with the prune statements after them when they are due (a clock that went back counts as due). */
  private withPrune(statements: SqlStatement[], now: number): SqlStatement[] {
    const due = now >= this.prunedAt + PRUNE_EVERY_MS || now < this.prunedAt;
    return due ? [...statements, ...this.pruneStatements(now)] : statements;
  }

  // -------------------------------------------------------------- reads

  async get(ids: string[]): Promise<Array<JobRecord | null>> {
    if (ids.length === 0) return [];
    const rows = await this.one({ sql: sql.get, params: [JSON.stringify(ids)] });
    const byId = new Map(rows.map((row) => [row.id as string, row]));
    return ids.map((id) => {
      const row = byId.get(id);
      return row ? rowRecord(row) : null;
    });
  }

  async list(filter: ListFilter, page: PageQuery): Promise<RecordPage> {
    const wanted = filter.state === undefined ? undefined : Array.isArray(filter.state) ? filter.state : [filter.state];
    const states = wanted === undefined ? null : JSON.stringify(wanted);
    // The maintenance sweep's page of awaiting jobs reads their own index (statements/list.ts).
    const statements = wanted?.length === 1 && wanted[0] === JobState.Awaiting ? sql.listAwaiting : sql.list;
    const rows = await this.one({
      sql: statements[`${page.sort}:${page.order}`],
      params: [states, filter.queue ?? null, filter.name ?? null, filter.text ?? null, page.after?.sortValue ?? null, page.after?.id ?? null, page.limit + 1],
    });
    const items = rows.slice(0, page.limit).map((row) => rowRecord(row));
    const last = items[page.limit - 1];
    return rows.length > page.limit && last ? { items, next: { sortValue: sortValue(last, page.sort), id: last.id } } : { items };
  }

  async stats(req: StatsRequest): Promise<Stats> {
    const minutes = bucketStarts(req.now, MINUTE, req.minutes);
    const hours = bucketStarts(req.now, HOUR, req.hours);
    const [counts, buckets] = await this.run([{ sql: sql.statsCounts }, { sql: sql.statsBuckets, params: [minutes[0]!, hours[0]!] }]);
    const states = emptyCounts();
    const perQueue = new Map<string, StateCounts>();
    let total = 0;
    for (const row of counts!) {
      const state = row.state as JobState;
      const n = Number(row.n);
      if (!(state in states)) continue;
      states[state] += n;
      total += n;
      let q = perQueue.get(row.queue as string);
      if (!q) perQueue.set(row.queue as string, (q = emptyCounts()));
      q[state] += n;
    }
    const bySize = new Map<number, Map<number, { succeeded: number; failed: number }>>([
      [MINUTE, new Map()],
      [HOUR, new Map()],
    ]);
    for (const row of buckets!) bySize.get(Number(row.size_ms))?.set(Number(row.bucket), { succeeded: Number(row.succeeded), failed: Number(row.failed) });
    const series = (size: number, starts: number[]): ThroughputBucket[] =>
      starts.map((at) => ({ at, succeeded: bySize.get(size)!.get(at)?.succeeded ?? 0, failed: bySize.get(size)!.get(at)?.failed ?? 0 }));
    const queues: QueueStats[] = [...perQueue.entries()].map(([name, c]) => ({ name, counts: c })).sort((a, b) => a.name.localeCompare(b.name));
    return { states, total, queues, perMinute: series(MINUTE, minutes), perHour: series(HOUR, hours) };
  }

  // ---------------------------------------------------------- recurring

  async upsertRecurring(def: RecurringDefinition): Promise<void> {
    await this.one({
      sql: sql.upsertRecurring,
      params: [def.id, def.cron, def.timezone ?? null, def.name, JSON.stringify(def.args), JSON.stringify(def.options), def.createdAt, def.updatedAt],
    });
  }

  async listRecurring(): Promise<RecurringDefinition[]> {
    const rows = await this.one({ sql: sql.listRecurring });
    return rows.map(toRecurring).sort((a, b) => a.id.localeCompare(b.id));
  }

  async removeRecurring(id: string): Promise<boolean> {
    return (await this.one({ sql: sql.removeRecurring, params: [id] })).length > 0;
  }

  async markRecurringFired(id: string, slot: number): Promise<boolean> {
    return (await this.one({ sql: sql.markRecurringFired, params: [id, slot] })).length > 0;
  }

  // ---------------------------------------------------------- estimates

  async readEstimates(): Promise<Record<string, number>> {
    const rows = await this.one({ sql: sql.readEstimates });
    return Object.fromEntries(rows.map((r) => [r.name as string, Number(r.ms)]));
  }

  async writeEstimates(estimates: Record<string, number>, now: number): Promise<void> {
    const entries = Object.entries(estimates);
    if (entries.length === 0) return;
    // The column is an integer: whole milliseconds.
    await this.one({ sql: sql.writeEstimates, params: [JSON.stringify(Object.fromEntries(entries.map(([name, ms]) => [name, Math.round(ms)]))), now] });
  }

  // --------------------------------------------------------- key-value (statements/kv.ts)

  async kvGet(key: string, now: number): Promise<string | undefined> {
    const [row] = await this.one({ sql: kv.kvGet, params: [key, now] });
    return row === undefined ? undefined : String(row.value);
  }

  // --------------------------------------------------------- durable steps (statements/steps.ts)

  async saveSteps(lease: LeaseRef, steps: StepRecord[], entry: HistoryEntry, now: number): Promise<boolean> {
    const text = JSON.stringify(steps);
    // The entry as the core gave it, keys in its order; reason and worker only when given (as memory keeps it).
    const line = JSON.stringify({
      state: entry.state,
      at: entry.at,
      ...(entry.reason !== undefined ? { reason: entry.reason } : {}),
      ...(entry.worker !== undefined ? { worker: entry.worker } : {}),
    });
    try {
      const rows = await this.one({ sql: sql.saveSteps, params: [lease.id, lease.token, text, now, line] });
      return rows.length > 0;
    } catch (e) {
      throw tooBigSteps(e, steps, text) ?? e;
    }
  }

  async addWaiter(event: string, id: string, expiresAt: number, now: number): Promise<void> {
    await this.run([
      { sql: sql.waitersPurge, params: [event, id, now] },
      { sql: sql.addWaiter, params: [event, id, expiresAt] },
    ]);
  }

  async waiters(event: string, now: number, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    const rows = await this.one({ sql: sql.waiters, params: [event, now, Math.floor(limit)] });
    return rows.map((r) => String(r.job_id));
  }

  async removeWaiters(event: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.one({ sql: sql.removeWaiters, params: [event, JSON.stringify(ids)] });
  }

  async kvSet(key: string, value: string, expiresAt: number | undefined, now: number): Promise<void> {
    await this.run([
      { sql: kv.kvPurge, params: [key, now] },
      { sql: kv.kvSet, params: [key, value, expiresAt ?? null] },
    ]);
  }

  async kvAdd(key: string, value: string, expiresAt: number | undefined, now: number): Promise<string> {
    const [, [row]] = (await this.run([
      { sql: kv.kvPurge, params: [key, now] },
      { sql: kv.kvAdd, params: [key, now, value, expiresAt ?? null] },
    ])) as [SqliteRow[], SqliteRow[]];
    return row === undefined ? value : String(row.value);
  }

  async kvDelete(key: string): Promise<boolean> {
    return (await this.one({ sql: kv.kvDelete, params: [key] })).length > 0;
  }

  async kvHit(key: string, windowMs: number, now: number): Promise<KvHit> {
    const [, [row]] = (await this.run([
      { sql: kv.kvPurge, params: [key, now] },
      { sql: kv.kvHit, params: [key, now, windowMs] },
    ])) as [SqliteRow[], SqliteRow[]];
    return { count: Number(row!.count), resetAt: Number(row!.reset_at) };
  }

  // ------------------------------------------------------------- extras

  /** Runs the housekeeping now (reclaim + prune) and returns how many leases were reclaimed. */
  prune(now: number): Promise<number> {
    return this.reclaimExpired(now, 1000);
  }
}

/**
 * A save refused because the job's row would outgrow what the database
 * holds in one row: D1 keeps at most 2 MB (the steps with the job's
 * arguments, result and history), better-sqlite3 a gigabyte. The core lets
 * a job reach MAX_STEPS steps of MAX_STEP_RESULT_BYTES each, more than a
 * D1 row, so this is met there: the job fails at once with a StepError
 * that says why, rather than retrying a save that cannot succeed.
 */
function tooBigSteps(e: unknown, steps: StepRecord[], text: string): StepResultTooLargeError | undefined {
  const message = e instanceof Error ? e.message : String(e);
  if (!/SQLITE_TOOBIG|string or blob too big/i.test(message)) return undefined;
  const bytes = new TextEncoder().encode(text).length;
  return new StepResultTooLargeError(
    steps.at(-1)?.id ?? "",
    `the job's ${steps.length} steps are ${bytes} bytes serialised, more than the database keeps in the job's row ` +
      `(D1: 2 MB with its arguments and history): keep large step results elsewhere and return their keys`,
    { cause: e },
  );
}
