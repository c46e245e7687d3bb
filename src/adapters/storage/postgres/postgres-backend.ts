/**
 * PostgresBackend: the storage driver (core/driver.ts) over PostgreSQL.
 *
 *   const storage = new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(url)));
 *
 * Every driver method is one SQL statement (statements/), so it runs the
 * same over a TCP pool, Neon's WebSocket pool and Neon's HTTP endpoint. The
 * claim is `UPDATE … FROM (candidates FOR UPDATE SKIP LOCKED) RETURNING …`
 * on partial indexes that hold only live jobs; completions, lease
 * extensions, inserts, reads and operator transitions take whole batches
 * as one JSON parameter.
 *
 * Construction does no I/O: the SQL driver (drivers/create.ts) is made at
 * the first call, and with `withAutoMigrate(true)` that call migrates
 * first, once. So a backend can be built at module load in any runtime.
 *
 * Wake-ups: inserts and debounces (and requeues, promotions, releases) NOTIFY
 * `<schema>_jobs` in the same statement, so the notification goes out only
 * if the transaction commits; so do cancels and deletes of running jobs,
 * for the servers running them to stop at once. `subscribe` LISTENs on a
 * dedicated connection on drivers with sessions (pg, Neon Pool); Neon's
 * HTTP driver has none, and servers there find other processes' jobs by
 * polling and their cancellations by heartbeat.
 *
 * Transactions: `insert(records, now, tx)` runs the insert on the caller's
 * own client (a pg Client/PoolClient or a Neon Pool client between BEGIN
 * and COMMIT): the jobs exist if and only if that transaction commits, and
 * the NOTIFY is delivered only then. It is not retried: a deadlock aborts
 * the caller's transaction, which only the caller can run again.
 *
 * Paused queues are rows of paused_queues (migration 0004); the claim
 * leaves them out of the queues it scans, in the same statement.
 *
 * Flows (migration 0007): an awaiting job's dependency edges are rows of
 * `edges` (dep, waiter), written by the insert that creates the job and
 * deleted by the transition that takes it out of awaiting. The claim never
 * reads them; complete and transition probe them by dependency to flag
 * jobs others wait for, and the pruning keeps those jobs.
 *
 * Durable steps (migration 0008): a job's steps are the nullable json
 * column jobs.steps, written only by saveSteps (fenced by the lease) and
 * read with the rest of the row, so the claim reads one more column and
 * joins nothing. The event-waiter index is the `waiters` table, apart from
 * jobs; its expired rows are deleted by the calls that pass them.
 *
 * Input arrives valid (Storage checks it against core/rules.ts), so this
 * class converts values to their SQL form and nothing more.
 */
import { sleep } from "../../../core/clock.js";
import {
  HOUR,
  MINUTE,
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
  type RemoteEnqueue,
  type StoreEvents,
  type StateCounts,
  type Stats,
  type StatsRequest,
  type StorageDriver,
  type ThroughputBucket,
  type TransitionRequest,
  type TransitionResult,
} from "../../../core/driver.js";
import { ConfigError, StorageUnavailableError, ValidationError } from "../../../core/errors.js";
import { JobState, LazyHistoryRecord, type HistoryEntry, type JobRecord, type StepRecord } from "../../../core/job.js";
import type { ResolvedPostgresConfig } from "./config.js";
import { RETRYABLE_SQLSTATES, sqlState, statementName, toStorageError, validateSchemaName, type SqlClient, type SqlDriver } from "./driver.js";
import { createPostgresDriver } from "./drivers/create.js";
import { SCHEMA_VERSION, migrationBlock } from "./migrate.js";
import { planInsert, settleGroup, type GroupAnswer, type KeyGroup } from "./insert-plan.js";
import { claimOrder, recordFields, toRecord, toRecurring, type Row } from "./rows.js";
import { buildStatements, type Statements } from "./statements/index.js";
import { kvStatements, type KvStatements } from "./statements/kv.js";

/** What carries the statements, for logs: a driver the config names, or "custom" for an instance of another kind. */
export type PostgresTransport = "pg" | "neon-ws" | "neon-http" | "custom";

/** Deadlock and serialization failures roll the whole statement back: safe to run it again. */
const MAX_RETRIES = 4;

/**
 * Statements per insert before giving up: each round settles every group
 * but those whose key a concurrent statement changed after the round's
 * snapshot, so a round past the second needs that to happen again to the
 * same key (a holder claimed between a debounce's read and its write).
 */
const MAX_INSERT_ROUNDS = 10;

/** Rows removed per housekeeping pass, so one pass never holds many locks. */
const PRUNE_BATCH = 1000;

/**
 * A TTL of 0 means no age limit. The prune statement compares
 * `finished_at < now - ttl`; this TTL puts the cutoff ~285,000 years before
 * the epoch, which no job finished at, and keeps one statement text.
 */
const NO_AGE_LIMIT = Number.MAX_SAFE_INTEGER;

export class PostgresBackend implements StorageDriver {
  readonly kind = "postgres";
  readonly transport: PostgresTransport;
  readonly transactions = true;
  readonly schema: string;
  /** NOTIFY channel: `<schema>_jobs`, cut to Postgres' 63-byte identifier limit. */
  readonly channel: string;
  /**
   * Whether writes NOTIFY and `subscribe` LISTENs. When on, a subscriber
   * hears every enqueue in the schema (other processes' too).
   */
  readonly notify: boolean;
  private readonly config: ResolvedPostgresConfig;
  private readonly sql: Statements;
  private readonly kvSql: KvStatements;
  private readonly ttlMs: number;
  private readonly maxFinished: number;
  private readonly prepared: boolean;
  private readonly ownsDriver: boolean;
  private readonly names = new Map<string, string>();
  /** The SQL driver, once made (at once when the config carries one). */
  private db: SqlDriver | undefined;
  private connecting: Promise<SqlDriver> | undefined;
  private migrated = false;
  private migrating: Promise<void> | undefined;
  private readonly subscriptions = new Set<() => Promise<void>>();
  private closed = false;

  constructor(config: ResolvedPostgresConfig) {
    this.config = config;
    this.schema = validateSchemaName(config.schema);
    this.channel = `${this.schema.slice(0, 58)}_jobs`;
    this.sql = buildStatements(this.schema);
    this.kvSql = kvStatements(this.schema);
    this.ttlMs = config.finishedJobTtlMs === 0 ? NO_AGE_LIMIT : config.finishedJobTtlMs;
    this.maxFinished = config.maxFinishedJobs;
    this.notify = config.notify;
    this.prepared = config.preparedStatements;
    if (typeof config.driver === "string") {
      // Known now, not at the first call: a missing URL is a mistake in the code that built the config.
      if (!config.databaseUrl) throw new ConfigError("no database URL: use withDatabaseUrl(url) or set QML_DATABASE_URL / DATABASE_URL", { scope: "postgres" });
      this.transport = config.driver;
      this.ownsDriver = true;
    } else {
      this.db = config.driver;
      const name = config.driver.name;
      this.transport = name === "pg" || name === "neon-ws" || name === "neon-http" ? name : "custom";
      this.ownsDriver = false;
    }
  }

  /** The statements this backend runs (for tools and tests, e.g. EXPLAIN). */
  get statements(): Readonly<Statements> {
    return this.sql;
  }

  // ----------------------------------------------------------- plumbing

  /** The driver, made on first use; with autoMigrate, after the migration. */
  private ready(): SqlDriver | Promise<SqlDriver> {
    if (this.db !== undefined && (this.migrated || !this.config.autoMigrate)) return this.db;
    return this.connect().then(async (db) => {
      if (this.config.autoMigrate) await this.migrate();
      return db;
    });
  }

  private connect(): Promise<SqlDriver> {
    if (this.db !== undefined) return Promise.resolve(this.db);
    if (this.closed) return Promise.reject(new StorageUnavailableError("the backend is closed", { scope: "postgres" }));
    this.connecting ??= createPostgresDriver(this.config).then(
      (db) => (this.db = db),
      (e: unknown) => {
        // Not kept: the next call tries again.
        this.connecting = undefined;
        throw e;
      },
    );
    return this.connecting;
  }

  private async run<R = Row>(text: string, params: unknown[], tx?: SqlClient): Promise<R[]> {
    const db = await this.ready();
    for (let attempt = 0; ; attempt++) {
      try {
        if (tx) return (await tx.query(text, params)).rows as R[];
        return (await db.query<R>(text, params, this.prepared ? { name: this.nameOf(text) } : {})).rows;
      } catch (e) {
        // Inside the caller's transaction a deadlock has aborted that
        // transaction: only the caller can retry it.
        if (!tx && attempt < MAX_RETRIES && RETRYABLE_SQLSTATES.has(sqlState(e) ?? "")) {
          await sleep(5 + Math.random() * 20 * 2 ** attempt);
          continue;
        }
        throw toStorageError(e, this.schema);
      }
    }
  }

  private nameOf(text: string): string {
    let name = this.names.get(text);
    if (!name) this.names.set(text, (name = statementName(text)));
    return name;
  }

  private get notifyChannel(): string | null {
    return this.notify ? this.channel : null;
  }

  // ---------------------------------------------------------- lifecycle

  /**
   * Creates or upgrades the schema. Cheap when it is current (one SELECT).
   * Otherwise one DO block applies the missing migrations in one
   * transaction under an advisory lock, so concurrent starters migrate
   * exactly once, over any driver (the HTTP one included).
   */
  async migrate(): Promise<void> {
    if (this.migrated) return;
    this.migrating ??= this.doMigrate().finally(() => (this.migrating = undefined));
    return this.migrating;
  }

  private async doMigrate(): Promise<void> {
    const db = await this.connect();
    try {
      const [row] = await db.query<{ version: number }>(this.sql.schemaVersion).then((r) => r.rows);
      if (row && Number(row.version) >= SCHEMA_VERSION) {
        this.migrated = true;
        return;
      }
    } catch (e) {
      const state = sqlState(e);
      if (state !== "42P01" && state !== "3F000") throw toStorageError(e, this.schema);
    }
    try {
      await db.query(migrationBlock(this.schema));
    } catch (e) {
      throw toStorageError(e, this.schema);
    }
    this.migrated = true;
  }

  /** Stops subscriptions and, unless the config carried the driver, closes it. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((stop) => stop().catch(() => {})));
    if (!this.ownsDriver) return;
    const db = this.db ?? (await this.connecting?.catch(() => undefined));
    await db?.close();
  }

  /**
   * LISTENs on a dedicated connection (drivers with sessions, notify on)
   * and calls `handlers.enqueued` with what each enqueue NOTIFY announces
   * (per queue, the earliest runAt and one id), `handlers.cancelled` with
   * the running jobs a transition ended and its reason. Resolves once the
   * first attempt is done (the connection keeps coming back in the
   * background); to undefined where there is nothing to listen with (Neon
   * HTTP, notify off: servers there find cancellations at their next
   * heartbeat).
   */
  async subscribe(handlers: StoreEvents): Promise<(() => Promise<void>) | undefined> {
    if (!this.notify || this.closed) return undefined;
    const db = await this.connect();
    if (!db.listen) return undefined;
    const stopListening = await db.listen(this.channel, (payload) => {
      const msg = parseNotification(payload);
      if (!msg) return;
      if ("cancelled" in msg) handlers.cancelled(msg.cancelled, msg.reason);
      else handlers.enqueued(msg.enqueued);
    });
    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      this.subscriptions.delete(stop);
      await stopListening();
    };
    this.subscriptions.add(stop);
    if (this.closed) {
      await stop();
      return undefined;
    }
    return stop;
  }

  // ------------------------------------------------------------- writes

  /**
   * One statement per round (statements/insert.ts) over the batch folded
   * into key groups (insert-plan.ts). A group comes back unsettled when a
   * concurrent statement changed its key's holder after this one's snapshot
   * was taken; the next round, a new statement, sees the change. Each round
   * settles every group but those that lost such a race.
   */
  async insert(records: InsertRecord[], now: number, tx?: unknown): Promise<InsertResult[]> {
    const client = tx === undefined ? undefined : asClient(tx);
    const { groups, aliases } = planInsert(records, now);
    const out: Array<InsertResult | undefined> = new Array(records.length);
    let todo = groups;
    for (let round = 0; todo.length > 0; round++) {
      if (round >= MAX_INSERT_ROUNDS)
        throw new StorageUnavailableError("enqueue kept racing with concurrent writes of the same unique keys; retry it", { scope: "postgres" });
      const rows = await this.run<GroupAnswer & { g: number }>(
        this.sql.insert,
        [JSON.stringify(todo.map((grp) => grp.row)), now, this.notifyChannel, JSON.stringify(todo.flatMap((grp) => grp.records))],
        client,
      );
      const answers = new Map(rows.map((row) => [Number(row.g), row]));
      const again: KeyGroup[] = [];
      for (const grp of todo) {
        const results = settleGroup(grp, records, answers.get(grp.g)!);
        if (results === undefined) again.push(grp);
        else results.forEach((r, j) => (out[grp.members[j]!] = r));
      }
      todo = again;
    }
    for (const [i, first] of aliases) out[i] = { id: out[first]!.id, created: false };
    return out as InsertResult[];
  }

  async claim(req: ClaimRequest): Promise<JobRecord[]> {
    if (req.queues.length === 0 || req.limit <= 0) return [];
    const leaseMs = Math.floor(req.leaseMs);
    const rows = await this.run(this.sql.claim, [JSON.stringify(req.queues), Math.floor(req.limit), req.now, req.owner, leaseMs]);
    // The claim sets state, lease and updated_at to its parameters and does
    // not send them back. The history is parsed if the job's worker reads it.
    const leaseUntil = req.now + leaseMs;
    return claimOrder(rows, req.queues).map((row) => {
      const fields = recordFields(row);
      fields.state = JobState.Processing;
      fields.leaseOwner = req.owner;
      fields.leaseUntil = leaseUntil;
      fields.updatedAt = req.now;
      return new LazyHistoryRecord(fields, row.history as string);
    });
  }

  async setPaused(queue: string, paused: boolean, now: number): Promise<void> {
    await this.run(this.sql.setPaused, [queue, paused, now]);
  }

  async pausedQueues(): Promise<string[]> {
    const rows = await this.run<{ queue: string }>(this.sql.pausedQueues, []);
    return rows.map((r) => r.queue);
  }

  async extendLeases(leases: LeaseRef[], leaseMs: number, now: number): Promise<string[]> {
    if (leases.length === 0) return [];
    const payload = JSON.stringify(leases.map((l, i) => ({ i, id: l.id, token: l.token })));
    const rows = await this.run<{ id: string }>(this.sql.extendLeases, [payload, now, Math.floor(leaseMs)]);
    return rows.map((r) => r.id);
  }

  async complete(outcomes: Outcome[], now: number): Promise<CompletionResult[]> {
    if (outcomes.length === 0) return [];
    // Absent keys read as NULL in json_to_recordset: a success sends only
    // what it has. The first outcome per job goes; a second one in the same
    // batch is lost, as it would be one call later.
    const seen = new Set<string>();
    const sent: Array<Record<string, unknown>> = [];
    outcomes.forEach((o, i) => {
      if (seen.has(o.id)) return;
      seen.add(o.id);
      const row: Record<string, unknown> = { i, id: o.id, token: o.token, state: o.state, reason: o.reason, worker: o.worker };
      if (o.runAt !== undefined) row.run_at = o.runAt;
      if (o.countAttempt === true) row.count_attempt = true;
      // As arguments (see insert): a result may hold U+0000, the json column keeps it.
      if (o.result !== undefined) row.result = JSON.stringify(o.result);
      if (o.error !== undefined) row.error = o.error;
      sent.push(row);
    });
    const statement = this.maxFinished === 0 ? this.sql.completeAndDelete : this.sql.complete;
    const rows = await this.run<{ i: number; dependents: boolean }>(statement, [JSON.stringify(sent), now, this.notifyChannel]);
    const applied = new Map(rows.map((r) => [Number(r.i), r.dependents === true]));
    return outcomes.map((o, i) => {
      const awaited = applied.get(i);
      if (awaited === undefined) return { id: o.id, status: "lost" };
      return awaited ? { id: o.id, status: "applied", dependents: true } : { id: o.id, status: "applied" };
    });
  }

  async setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean> {
    const rows = await this.run(this.sql.setProgress, [lease.id, lease.token, JSON.stringify(progress ?? null), now]);
    return rows.length > 0;
  }

  /** Replaces the job's steps (jobs.steps, migration 0008) and appends `entry`, fenced by the lease as setProgress is. */
  async saveSteps(lease: LeaseRef, steps: StepRecord[], entry: HistoryEntry, now: number): Promise<boolean> {
    // As arguments (see insert): a step's result may hold U+0000, the json column keeps it.
    const rows = await this.run(this.sql.saveSteps, [
      lease.id,
      lease.token,
      JSON.stringify(steps),
      now,
      entry.state,
      entry.at,
      entry.reason ?? null,
      entry.worker ?? null,
    ]);
    return rows.length > 0;
  }

  async promoteDue(now: number, limit: number): Promise<number> {
    if (limit <= 0) return 0;
    const [row] = await this.run<{ n: number }>(this.sql.promoteDue, [now, Math.floor(limit), this.notifyChannel]);
    return Number(row?.n ?? 0);
  }

  /** Also prunes finished jobs (TTL, count) and old throughput buckets: see statements/reclaim-expired.ts. */
  async reclaimExpired(now: number, limit: number): Promise<number> {
    const [row] = await this.run<{ n: number }>(this.sql.reclaimExpired, [
      now,
      Math.max(0, Math.floor(limit)),
      this.notifyChannel,
      this.ttlMs,
      this.maxFinished,
      PRUNE_BATCH,
    ]);
    return Number(row?.n ?? 0);
  }

  async transition(req: TransitionRequest): Promise<Array<TransitionResult | null>> {
    if (req.ids.length === 0) return [];
    const rows = await this.run<Row & { applied: boolean; dependents: boolean }>(this.sql.transition, [
      JSON.stringify(req.ids),
      JSON.stringify(req.from),
      req.to,
      req.reason,
      req.now,
      this.notifyChannel,
      req.to === JobState.Failed && req.error !== undefined ? JSON.stringify(req.error) : null,
    ]);
    const byId = new Map(rows.map((row) => [row.id as string, row]));
    return req.ids.map((id) => {
      const row = byId.get(id);
      if (!row) return null;
      const result: TransitionResult = { record: toRecord(row), applied: row.applied === true };
      if (row.dependents === true) result.dependents = true;
      return result;
    });
  }

  /** The waiters of the dependency edges of `ids` (migration 0007), each once. */
  async dependents(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.run<{ waiter: string }>(this.sql.dependents, [JSON.stringify(ids)]);
    return rows.map((r) => r.waiter);
  }

  async purge(states: JobState[], olderThan: number, limit: number): Promise<number> {
    if (states.length === 0 || limit <= 0) return 0;
    const [row] = await this.run<{ n: number }>(this.sql.purge, [JSON.stringify(states), olderThan, Math.floor(limit)]);
    return Number(row?.n ?? 0);
  }

  /** The database's clock (`clock_timestamp()`), so servers on skewed machines agree on lease times. */
  async serverTime(): Promise<number | undefined> {
    const [row] = await this.run<{ t: string | number }>(this.sql.serverTime, []);
    return row === undefined ? undefined : Number(row.t);
  }

  // -------------------------------------------------------------- reads

  async get(ids: string[]): Promise<Array<JobRecord | null>> {
    if (ids.length === 0) return [];
    const rows = await this.run(this.sql.get, [JSON.stringify(ids)]);
    const byId = new Map(rows.map((row) => [row.id as string, row]));
    return ids.map((id) => {
      const row = byId.get(id);
      return row ? toRecord(row) : null;
    });
  }

  async list(filter: ListFilter, page: PageQuery): Promise<RecordPage> {
    const wanted = filter.state === undefined ? undefined : Array.isArray(filter.state) ? filter.state : [filter.state];
    const rest = [filter.queue ?? null, filter.name ?? null, filter.text ?? null, page.after?.sortValue ?? null, page.after?.id ?? null, page.limit + 1];
    // The maintenance sweep's page (every beat): on the partial index of awaiting jobs.
    const awaiting = page.sort === "createdAt" && wanted !== undefined && wanted.length > 0 && wanted.every((st) => st === JobState.Awaiting);
    const rows = awaiting
      ? await this.run(this.sql.listAwaiting[page.order], rest)
      : await this.run(this.sql.list[`${page.sort}:${page.order}`], [wanted === undefined ? null : JSON.stringify(wanted), ...rest]);
    const items = rows.slice(0, page.limit).map((row) => toRecord(row));
    const last = items[page.limit - 1];
    return rows.length > page.limit && last ? { items, next: { sortValue: sortValue(last, page.sort), id: last.id } } : { items };
  }

  async stats(req: StatsRequest): Promise<Stats> {
    const minutes = bucketStarts(req.now, MINUTE, req.minutes);
    const hours = bucketStarts(req.now, HOUR, req.hours);
    const [row] = await this.run<{ counts: string; buckets: string }>(this.sql.stats, [minutes[0]!, hours[0]!]);
    const states = emptyCounts();
    const perQueue = new Map<string, StateCounts>();
    let total = 0;
    for (const [queue, state, n] of JSON.parse(row?.counts ?? "[]") as Array<[string, JobState, number]>) {
      if (!(state in states)) continue;
      states[state] += n;
      total += n;
      let q = perQueue.get(queue);
      if (!q) perQueue.set(queue, (q = emptyCounts()));
      q[state] += n;
    }
    const bySize = new Map<number, Map<number, { succeeded: number; failed: number }>>([
      [MINUTE, new Map()],
      [HOUR, new Map()],
    ]);
    for (const [size, bucket, succeeded, failed] of JSON.parse(row?.buckets ?? "[]") as Array<[number, number, number, number]>) {
      bySize.get(size)?.set(bucket, { succeeded, failed });
    }
    const series = (size: number, starts: number[]): ThroughputBucket[] =>
      starts.map((at) => ({ at, succeeded: bySize.get(size)!.get(at)?.succeeded ?? 0, failed: bySize.get(size)!.get(at)?.failed ?? 0 }));
    const queues: QueueStats[] = [...perQueue.entries()].map(([name, counts]) => ({ name, counts })).sort((a, b) => a.name.localeCompare(b.name));
    return { states, total, queues, perMinute: series(MINUTE, minutes), perHour: series(HOUR, hours) };
  }

  // ---------------------------------------------------------- recurring

  async upsertRecurring(def: RecurringDefinition): Promise<void> {
    await this.run(this.sql.upsertRecurring, [
      def.id,
      def.cron,
      def.timezone ?? null,
      def.name,
      JSON.stringify(def.args),
      JSON.stringify(def.options),
      def.createdAt,
      def.updatedAt,
    ]);
  }

  async listRecurring(): Promise<RecurringDefinition[]> {
    const rows = await this.run(this.sql.listRecurring, []);
    return rows.map(toRecurring).sort((a, b) => a.id.localeCompare(b.id));
  }

  async removeRecurring(id: string): Promise<boolean> {
    return (await this.run(this.sql.removeRecurring, [id])).length > 0;
  }

  async markRecurringFired(id: string, slot: number): Promise<boolean> {
    return (await this.run(this.sql.markRecurringFired, [id, slot])).length > 0;
  }

  // ---------------------------------------------------------- estimates

  async readEstimates(): Promise<Record<string, number>> {
    const rows = await this.run<{ name: string; ms: string }>(this.sql.readEstimates, []);
    return Object.fromEntries(rows.map((r) => [r.name, Number(r.ms)]));
  }

  async writeEstimates(estimates: Record<string, number>, now: number): Promise<void> {
    const entries = Object.entries(estimates);
    if (entries.length === 0) return;
    // The column is bigint: whole milliseconds.
    await this.run(this.sql.writeEstimates, [JSON.stringify(Object.fromEntries(entries.map(([name, ms]) => [name, Math.round(ms)]))), now]);
  }

  // --------------------------------------------------------- key-value (statements/kv.ts)

  async kvGet(key: string, now: number): Promise<string | undefined> {
    const [row] = await this.run<{ value: string }>(this.kvSql.kvGet, [key, now]);
    return row?.value;
  }

  async kvSet(key: string, value: string, expiresAt: number | undefined, now: number): Promise<void> {
    await this.run(this.kvSql.kvSet, [key, now, value, expiresAt ?? null]);
  }

  async kvAdd(key: string, value: string, expiresAt: number | undefined, now: number): Promise<string> {
    const [row] = await this.run<{ value: string }>(this.kvSql.kvAdd, [key, now, value, expiresAt ?? null]);
    return row?.value ?? value;
  }

  async kvDelete(key: string): Promise<boolean> {
    return (await this.run(this.kvSql.kvDelete, [key])).length > 0;
  }

  async kvHit(key: string, windowMs: number, now: number): Promise<KvHit> {
    const [row] = await this.run<{ count: string; reset_at: string }>(this.kvSql.kvHit, [key, now, windowMs]);
    return { count: Number(row!.count), resetAt: Number(row!.reset_at) };
  }

  // ------------------------------------------------ event waiters (statements/steps.ts)

  async addWaiter(event: string, id: string, expiresAt: number, now: number): Promise<void> {
    await this.run(this.sql.addWaiter, [event, id, expiresAt, now]);
  }

  async waiters(event: string, now: number, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    const rows = await this.run<{ job_id: string }>(this.sql.waiters, [event, now, Math.floor(limit)]);
    return rows.map((r) => r.job_id);
  }

  async removeWaiters(event: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.run(this.sql.removeWaiters, [event, JSON.stringify(ids)]);
  }

  // ------------------------------------------------------------- extras

  /** Runs the housekeeping now (reclaim + prune) and returns how many leases were reclaimed. */
  prune(now: number): Promise<number> {
    return this.reclaimExpired(now, 1000);
  }
}

// ---------------------------------------------------------------------------

/**
 * A NOTIFY payload: {queue, runAt, id} for an enqueue (notifyCte), or
 * {cancelled: [ids], reason} for running jobs a transition ended
 * (notifyCancelledCte); anything else is ignored.
 */
function parseNotification(payload: string): { enqueued: RemoteEnqueue } | { cancelled: string[]; reason: string } | undefined {
  let msg: unknown;
  try {
    msg = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const { queue, runAt, id, cancelled, reason } = (msg ?? {}) as { queue?: unknown; runAt?: unknown; id?: unknown; cancelled?: unknown; reason?: unknown };
  if (Array.isArray(cancelled)) {
    const ids = cancelled.filter((c): c is string => typeof c === "string");
    return ids.length > 0 ? { cancelled: ids, reason: typeof reason === "string" ? reason : "cancelled" } : undefined;
  }
  if (typeof queue !== "string" || typeof runAt !== "number") return undefined;
  return { enqueued: [{ id: typeof id === "string" ? id : "", queue, runAt }] };
}

/** The caller's transaction handle. Its shape is this backend's business: Storage passes it through unseen. */
function asClient(tx: unknown): SqlClient {
  if (typeof (tx as SqlClient | null)?.query !== "function") {
    throw new ValidationError("the transaction must be a client with query(text, values): a pg or Neon Pool client between BEGIN and COMMIT", "transaction");
  }
  return tx as SqlClient;
}
