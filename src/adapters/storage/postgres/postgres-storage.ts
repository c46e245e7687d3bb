/**
 * PostgresStorage: the Storage contract over PostgreSQL.
 *
 * Every contract method is one SQL statement (statements.ts), so it runs the
 * same over a TCP pool, Neon's WebSocket pool and Neon's HTTP endpoint. The
 * claim is `UPDATE … FROM (candidates FOR UPDATE SKIP LOCKED) RETURNING …`
 * on partial indexes that hold only live jobs; completions, lease
 * extensions and inserts take whole batches as one JSON parameter.
 *
 * Wake-ups: inserts (and requeues, promotions, releases) NOTIFY
 * `<schema>_jobs` in the same statement, so the notification goes out only
 * if the transaction commits. On drivers with sessions the storage LISTENs
 * on a dedicated connection once someone subscribes to `onEnqueue` (a
 * BackgroundJobServer does at start), and re-emits what it hears: servers
 * in other processes wake at once instead of waiting for their next poll.
 *
 * Transactional enqueue: `enqueueWith(client, jobs)` runs the insert on the
 * caller's own client, inside the caller's transaction: the job exists if
 * and only if that transaction commits.
 */
import { sleep } from "../../../core/clock.js";
import { ConfigError, StorageUnavailableError, ValidationError, type ErrorInfo } from "../../../core/errors.js";
import { JobState, LazyHistoryRecord, historyFromLines, type Job, type JobRecord } from "../../../core/job.js";
import type { RetrySpec } from "../../../core/retry.js";
import {
  HOUR,
  MINUTE,
  Storage,
  bucketStarts,
  decodeCursor,
  emptyCounts,
  encodeCursor,
  sortValue,
  type ClaimRequest,
  type CompletionResult,
  type EnqueueListener,
  type EnqueueListenerOptions,
  type InsertResult,
  type LeaseRef,
  type ListFilter,
  type Outcome,
  type Page,
  type PageRequest,
  type QueueStats,
  type RecurringDefinition,
  type StateCounts,
  type Stats,
  type StatsRequest,
  type StorageOptions,
  type ThroughputBucket,
  type TransitionResult,
} from "../../../core/storage.js";
import {
  RETRYABLE_SQLSTATES,
  sqlState,
  statementName,
  toStorageError,
  validateSchemaName,
  quoteIdent,
  type SqlClient,
  type SqlDriver,
} from "./driver.js";
import { MIGRATIONS } from "./migrations.generated.js";
import { buildStatements, type Statements } from "./statements.js";

export interface PostgresStorageOptions extends StorageOptions {
  /** Schema holding the tables (default `qml`). */
  schema?: string;
  /** Finished jobs older than this are pruned, in ms (default 24 h). */
  completedJobTtlMs?: number;
  /** Finished jobs kept at most (default 10,000). */
  maxFinishedJobs?: number;
  /** NOTIFY on enqueue and LISTEN when subscribed (default true). */
  notify?: boolean;
  /** Named prepared statements (default true; ignored by drivers without sessions). */
  preparedStatements?: boolean;
  /** Close the driver with the storage (default true). */
  ownsDriver?: boolean;
}

/** The schema version this code expects: the newest embedded migration. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Quote tags of the migration block; the embedder refuses migration files that contain them. */
const BLOCK_QUOTE = "$qml_migrate$";
const MIGRATION_QUOTE = "$qml_migration$";
/** Advisory lock class for migrations (ASCII "qmlm"); the second key is the schema's hash. */
export const MIGRATION_LOCK_CLASS = 0x716d6c6d;

/** Deadlock and serialization failures roll the whole statement back: safe to run it again. */
const MAX_RETRIES = 4;

/** Rows removed per housekeeping pass, so one pass never holds many locks. */
const PRUNE_BATCH = 1000;

type Row = Record<string, unknown>;

export class PostgresStorage extends Storage {
  readonly kind = "postgres";
  readonly schema: string;
  /** NOTIFY channel: `<schema>_jobs`, cut to Postgres' 63-byte identifier limit. */
  readonly channel: string;
  readonly driver: SqlDriver;
  private readonly sql: Statements;
  private readonly ttlMs: number;
  private readonly maxFinished: number;
  /**
   * Whether writes NOTIFY and `onEnqueue` subscribers LISTEN. When on, a
   * subscriber hears every enqueue in the database (other processes' too),
   * not only this instance's.
   */
  readonly notify: boolean;
  private readonly prepared: boolean;
  private readonly ownsDriver: boolean;
  private readonly names = new Map<string, string>();
  private migrated = false;
  private migrating: Promise<void> | undefined;
  private listening: Promise<(() => Promise<void>) | undefined> | undefined;
  private closed = false;

  constructor(driver: SqlDriver, options: PostgresStorageOptions = {}) {
    super(options);
    this.driver = driver;
    this.schema = validateSchemaName(options.schema ?? "qml");
    this.channel = `${this.schema.slice(0, 58)}_jobs`;
    this.sql = buildStatements(this.schema);
    this.ttlMs = options.completedJobTtlMs ?? 24 * HOUR;
    this.maxFinished = options.maxFinishedJobs ?? 10_000;
    this.notify = options.notify ?? true;
    this.prepared = options.preparedStatements ?? true;
    this.ownsDriver = options.ownsDriver ?? true;
  }

  /** The statements this storage runs (for tools and tests, e.g. EXPLAIN). */
  get statements(): Readonly<Statements> {
    return this.sql;
  }

  // ----------------------------------------------------------- plumbing

  private async run<R = Row>(text: string, params: unknown[], client?: SqlClient): Promise<R[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (client) return (await client.query(text, params)).rows as R[];
        const res = await this.driver.query<R>(text, params, this.prepared ? { name: this.nameOf(text) } : {});
        return res.rows;
      } catch (e) {
        // Inside the caller's transaction a deadlock has aborted that
        // transaction: only the caller can retry it.
        if (!client && attempt < MAX_RETRIES && RETRYABLE_SQLSTATES.has(sqlState(e) ?? "")) {
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
    try {
      const [row] = await this.driver.query<{ version: number }>(this.sql.schemaVersion).then((r) => r.rows);
      if (row && Number(row.version) >= SCHEMA_VERSION) {
        this.migrated = true;
        return;
      }
    } catch (e) {
      const state = sqlState(e);
      if (state !== "42P01" && state !== "3F000") throw toStorageError(e, this.schema);
    }
    try {
      await this.driver.query(migrationBlock(this.schema));
    } catch (e) {
      throw toStorageError(e, this.schema);
    }
    this.migrated = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stop = await this.listening?.catch(() => undefined);
    await stop?.();
    if (this.ownsDriver) await this.driver.close();
  }

  /**
   * Subscribes as the base class does, and starts LISTENing (once) so that
   * jobs enqueued by other processes are announced here too.
   */
  override onEnqueue(listener: EnqueueListener, options: EnqueueListenerOptions = {}): () => void {
    const off = super.onEnqueue(listener, options);
    if (options.remote !== false) void this.startListening();
    return off;
  }

  /**
   * Starts LISTEN on a dedicated connection if the driver has sessions and
   * notifications are on. Resolves once the first attempt is done (it keeps
   * retrying in the background). Called by onEnqueue; call it directly to
   * know when wake-ups from other processes start arriving.
   */
  async startListening(): Promise<boolean> {
    if (!this.notify || !this.driver.listen || this.closed) return false;
    this.listening ??= this.driver.listen(this.channel, (payload) => this.onNotification(payload)).catch(() => undefined);
    return (await this.listening) !== undefined;
  }

  private onNotification(payload: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(payload);
    } catch {
      return;
    }
    const { queue, runAt, id } = (msg ?? {}) as { queue?: unknown; runAt?: unknown; id?: unknown };
    if (typeof queue !== "string" || typeof runAt !== "number") return;
    this.emitEnqueued([{ id: typeof id === "string" ? id : "", queue, runAt }], "remote");
  }

  // ------------------------------------------------------------- writes

  async insertJobs(records: JobRecord[], now: number): Promise<InsertResult[]> {
    return this.insert(records, now);
  }

  /**
   * Enqueues on the caller's client (a pg Client/PoolClient or a Neon Pool
   * client), typically between its BEGIN and COMMIT: the jobs exist if and
   * only if that transaction commits, and the wake-up NOTIFY is delivered
   * only then. Local `onEnqueue` listeners hear about the jobs through that
   * NOTIFY (when listening), never before the commit.
   */
  enqueueWith(client: SqlClient, job: Job): Promise<string>;
  enqueueWith(client: SqlClient, jobs: Job[]): Promise<string[]>;
  async enqueueWith(client: SqlClient, input: Job | Job[]): Promise<string | string[]> {
    if (!client || typeof client.query !== "function") throw new ValidationError("enqueueWith takes a client with a query(text, values) method", "client");
    const { jobs, records, now } = this.prepareJobs(input);
    if (records.length === 0) return [];
    // No local wake-up here: the NOTIFY in the insert goes out when the caller commits.
    const results = await this.insert(records, now, client);
    this.settleJobs(jobs, records, results, now);
    return Array.isArray(input) ? results.map((r) => r.id) : results[0]!.id;
  }

  private async insert(records: JobRecord[], now: number, client?: SqlClient): Promise<InsertResult[]> {
    for (const r of records) {
      // Postgres text cannot hold U+0000: refuse it here rather than fail inside the statement.
      if (r.id.includes("\u0000")) throw new ValidationError("job id cannot contain U+0000 on PostgreSQL", "id");
      if (r.uniqueKey?.includes("\u0000")) throw new ValidationError("uniqueKey cannot contain U+0000 on PostgreSQL", "uniqueKey");
    }
    // Duplicates inside the batch are settled here: the statement sees each
    // id and unique key once, and later copies take the first one's id.
    const out: Array<InsertResult | undefined> = new Array(records.length);
    const aliasOf = new Map<number, number>();
    const byKey = new Map<string, number>();
    const byId = new Map<string, number>();
    const pending: number[] = [];
    records.forEach((r, i) => {
      const first = (r.uniqueKey !== undefined ? byKey.get(r.uniqueKey) : undefined) ?? byId.get(r.id);
      if (first !== undefined) {
        aliasOf.set(i, first);
        return;
      }
      byId.set(r.id, i);
      if (r.uniqueKey !== undefined) byKey.set(r.uniqueKey, i);
      pending.push(i);
    });

    let todo = pending;
    for (let round = 0; todo.length > 0; round++) {
      if (round >= 3) throw new StorageUnavailableError("[qml] [postgres] enqueue kept racing with concurrent inserts and deletes of the same unique keys; retry it");
      const payload = jsonText(
        todo.map((i) => {
          const r = records[i]!;
          return {
            i,
            id: r.id,
            name: r.name,
            queue: r.queue,
            priority: r.priority,
            state: r.state,
            max_attempts: r.maxAttempts,
            retry: r.retry ?? null,
            timeout_ms: r.timeoutMs ?? null,
            unique_key: r.uniqueKey ?? null,
            metadata: r.metadata ?? null,
            run_at: r.runAt,
            // Serialised apart: arguments are stored exactly (json, not jsonb), NUL characters included.
            args: JSON.stringify(r.args),
            // The row's history text (migration 0002): entries' JSON joined by newlines, and their count.
            history: r.history.map((h) => jsonText(h)).join("\n"),
            hn: r.history.length,
          };
        }),
      );
      const rows = await this.run<{ i: number; created: boolean; id: string | null }>(this.sql.insertJobs, [payload, now, this.notifyChannel], client);
      const unresolved: number[] = [];
      for (const row of rows) {
        const i = Number(row.i);
        if (row.id !== null) out[i] = { id: row.id, created: row.created === true };
        else unresolved.push(i);
      }
      if (unresolved.length === 0) break;
      // The conflicting job was committed by a concurrent statement after
      // this one took its snapshot: a new statement sees it.
      const lookup = jsonText(unresolved.map((i) => ({ i, id: records[i]!.id, unique_key: records[i]!.uniqueKey ?? null })));
      const found = await this.run<{ i: number; id: string | null }>(this.sql.lookupExisting, [lookup], client);
      todo = [];
      for (const row of found) {
        const i = Number(row.i);
        if (row.id !== null) out[i] = { id: row.id, created: false };
        else todo.push(i); // deleted in between: insert again
      }
    }
    for (const [i, first] of aliasOf) out[i] = { id: out[first]!.id, created: false };
    return out as InsertResult[];
  }

  async claim(req: ClaimRequest): Promise<JobRecord[]> {
    if (req.queues.length === 0 || req.limit <= 0) return [];
    const owner = clean(req.owner);
    const leaseMs = Math.floor(req.leaseMs);
    const rows = await this.run(this.sql.claim, [JSON.stringify(req.queues), Math.floor(req.limit), req.now, owner, leaseMs]);
    // The claim sets state, lease and updated_at to its parameters and does
    // not send them back. The history is parsed if the job's worker reads it.
    const leaseUntil = req.now + leaseMs;
    return claimOrder(rows, req.queues).map((row) => {
      const fields = recordFields(row);
      fields.state = JobState.Processing;
      fields.leaseOwner = owner;
      fields.leaseUntil = leaseUntil;
      fields.updatedAt = req.now;
      return new LazyHistoryRecord(fields, row.history as string);
    });
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
      if (o.result !== undefined) row.result = JSON.stringify(o.result);
      if (o.error !== undefined) row.error = o.error;
      sent.push(row);
    });
    const statement = this.maxFinished === 0 ? this.sql.completeAndDelete : this.sql.complete;
    const rows = await this.run<{ i: number }>(statement, [jsonText(sent), now, this.notifyChannel]);
    const applied = new Set(rows.map((r) => Number(r.i)));
    return outcomes.map((o, i) => ({ id: o.id, status: applied.has(i) ? "applied" : "lost" }));
  }

  async promoteDue(now: number, limit: number): Promise<number> {
    if (limit <= 0) return 0;
    const [row] = await this.run<{ n: number }>(this.sql.promoteDue, [now, Math.floor(limit), this.notifyChannel]);
    return Number(row?.n ?? 0);
  }

  /** Also prunes finished jobs (TTL, count) and old throughput buckets: see statements.ts. */
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

  async transition(id: string, from: JobState[], to: typeof JobState.Deleted | typeof JobState.Enqueued, reason: string, now: number): Promise<TransitionResult | null> {
    if (id.includes("\u0000")) return null;
    const rows = await this.run<Row & { applied: boolean }>(this.sql.transition, [id, JSON.stringify(from), to, clean(reason), now, this.notifyChannel]);
    const row = rows[0];
    return row ? { record: toRecord(row), applied: row.applied === true } : null;
  }

  async purge(states: JobState[], olderThan: number, limit: number): Promise<number> {
    if (states.length === 0 || limit <= 0) return 0;
    const [row] = await this.run<{ n: number }>(this.sql.purge, [JSON.stringify(states), olderThan, Math.floor(limit)]);
    return Number(row?.n ?? 0);
  }

  async setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean> {
    const rows = await this.run(this.sql.setProgress, [lease.id, lease.token, JSON.stringify(progress ?? null), now]);
    return rows.length > 0;
  }

  /** The database's clock (`clock_timestamp()`), so servers on skewed machines agree on lease times. */
  override async serverTime(): Promise<number | undefined> {
    const [row] = await this.run<{ t: string | number }>("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS t", []);
    return row === undefined ? undefined : Number(row.t);
  }

  // -------------------------------------------------------------- reads

  async getRecord(id: string): Promise<JobRecord | null> {
    if (id.includes("\u0000")) return null; // no stored id holds one (see insert)
    const [row] = await this.run(this.sql.getRecord, [id]);
    return row ? toRecord(row) : null;
  }

  async listRecords(filter: ListFilter, page: Required<Pick<PageRequest, "limit" | "sort" | "order">> & { cursor?: string }): Promise<Page<JobRecord>> {
    let after: { sortValue: number; id: string } | undefined;
    if (page.cursor !== undefined) {
      after = decodeCursor(page.cursor);
      if (!Number.isSafeInteger(after.sortValue)) throw new ValidationError("cursor is malformed", "cursor");
    }
    const states = filter.state === undefined ? null : JSON.stringify(Array.isArray(filter.state) ? filter.state : [filter.state]);
    const text = this.sql.list[`${page.sort}:${page.order}`];
    const rows = await this.run(text, [
      states,
      filter.queue ?? null,
      filter.name ?? null,
      filter.text ? clean(filter.text) : null,
      after?.sortValue ?? null,
      after?.id ?? null,
      page.limit + 1,
    ]);
    const items = rows.slice(0, page.limit).map((row) => toRecord(row));
    const last = items[page.limit - 1];
    return rows.length > page.limit && last ? { items, nextCursor: encodeCursor(sortValue(last, page.sort), last.id) } : { items };
  }

  async statsAt(req: Required<StatsRequest>): Promise<Stats> {
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
      jsonText(def.options),
      def.createdAt,
      def.updatedAt,
    ]);
  }

  async listRecurring(): Promise<RecurringDefinition[]> {
    const rows = await this.run(this.sql.listRecurring, []);
    return rows.map(toRecurring).sort((a, b) => a.id.localeCompare(b.id));
  }

  async removeRecurring(id: string): Promise<boolean> {
    if (id.includes("\u0000")) return false;
    return (await this.run(this.sql.removeRecurring, [id])).length > 0;
  }

  async markRecurringFired(id: string, slot: number): Promise<boolean> {
    if (id.includes("\u0000")) return false;
    return (await this.run(this.sql.markRecurringFired, [id, slot])).length > 0;
  }

  // ------------------------------------------------------------- extras

  /** Runs the housekeeping now (reclaim + prune) and returns how many leases were reclaimed. */
  prune(now: number = this.clock.now()): Promise<number> {
    return this.reclaimExpired(now, 1000);
  }
}

// ---------------------------------------------------------------------------

/**
 * The migration block: one DO statement, so one implicit transaction on
 * every driver. The advisory lock makes a second starter wait, then find
 * the versions already recorded (each plpgsql statement takes a fresh
 * snapshot under READ COMMITTED) and apply nothing.
 */
export function migrationBlock(schema: string): string {
  const s = quoteIdent(validateSchemaName(schema));
  const steps = MIGRATIONS.map((m) => {
    if (m.sql.includes(MIGRATION_QUOTE) || m.sql.includes(BLOCK_QUOTE)) throw new ConfigError(`[qml] [postgres] migration ${m.name} contains a reserved quote tag`);
    const body = m.sql.replaceAll(":QML_SCHEMA", s);
    return `
  IF NOT EXISTS (SELECT 1 FROM ${s}.migrations WHERE version = ${m.version}) THEN
    EXECUTE ${MIGRATION_QUOTE}${body}${MIGRATION_QUOTE};
    INSERT INTO ${s}.migrations (version, name) VALUES (${m.version}, '${m.name}');
  END IF;`;
  }).join("");
  return `DO ${BLOCK_QUOTE}
BEGIN
  PERFORM pg_advisory_xact_lock(${MIGRATION_LOCK_CLASS}, hashtext('${schema}'));
  CREATE SCHEMA IF NOT EXISTS ${s};
  CREATE TABLE IF NOT EXISTS ${s}.migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  );${steps}
END
${BLOCK_QUOTE}`;
}

/**
 * JSON for jsonb-bound data. Postgres text and jsonb cannot hold U+0000 or
 * an unpaired surrogate, and a job's error message or metadata (values and
 * keys) might: each becomes U+FFFD rather than failing the write (a failure
 * recorded with one character replaced beats a job stuck in processing).
 * Arguments, results and progress are stored as json text and keep it.
 */
function jsonText(value: unknown): string {
  // JSON.stringify writes U+0000 and lone surrogates as \u escapes: text
  // without any "\u" has neither, and skips the (slow) replacer pass.
  const plain = JSON.stringify(value);
  if (!plain.includes("\\u")) return plain;
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === "string") return jsonbSafe(v);
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    // Keys too: the replacer only ever sees values.
    let out: Record<string, unknown> | undefined;
    for (const k of Object.keys(v)) {
      const safe = jsonbSafe(k);
      if (safe === k) continue;
      out ??= { ...(v as Record<string, unknown>) };
      out[safe] = out[k];
      delete out[k];
    }
    return out ?? v;
  });
}

/** jsonb holds neither U+0000 nor unpaired surrogates ("invalid input syntax for type json"): both become U+FFFD. */
function jsonbSafe(s: string): string {
  const t = s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
  return /\p{Surrogate}/u.test(t) ? t.replace(/\p{Surrogate}/gu, "\uFFFD") : t;
}

function clean(s: string): string {
  return s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
}

const num = (v: unknown): number => (typeof v === "number" ? v : Number(v));
const json = (v: unknown): unknown => (typeof v === "string" ? JSON.parse(v) : v);

/**
 * Claimed rows in claim order: the queues in the order asked, then priority
 * (highest first), run_at, seq, as the claim's `pick` ordered them.
 */
function claimOrder(rows: Row[], queues: string[]): Row[] {
  if (rows.length < 2) return rows;
  const rank = new Map(queues.map((q, i) => [q, i] as const));
  const keyed = rows.map((row) => ({ row, q: rank.get(row.queue as string) ?? queues.length, p: num(row.priority), r: num(row.run_at), s: num(row.seq) }));
  keyed.sort((a, b) => a.q - b.q || b.p - a.p || a.r - b.r || a.s - b.s);
  return keyed.map((k) => k.row);
}

function toRecord(row: Row): JobRecord {
  const r = recordFields(row) as JobRecord;
  r.history = historyFromLines(row.history as string);
  return r;
}

/** Every field of a row's record but its history. */
function recordFields(row: Row): Omit<JobRecord, "history"> {
  const r: Omit<JobRecord, "history"> = {
    id: row.id as string,
    name: row.name as string,
    args: json(row.args) as unknown[],
    queue: row.queue as string,
    priority: num(row.priority),
    state: row.state as JobState,
    attempts: num(row.attempts),
    maxAttempts: num(row.max_attempts),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    runAt: num(row.run_at),
    leaseToken: num(row.lease_token),
  };
  if (row.retry != null) r.retry = json(row.retry) as RetrySpec;
  if (row.timeout_ms != null) r.timeoutMs = num(row.timeout_ms);
  if (row.unique_key != null) r.uniqueKey = row.unique_key as string;
  if (row.metadata != null) r.metadata = json(row.metadata) as Record<string, unknown>;
  if (row.lease_owner != null) r.leaseOwner = row.lease_owner as string;
  if (row.lease_until != null) r.leaseUntil = num(row.lease_until);
  if (row.finished_at != null) r.finishedAt = num(row.finished_at);
  if (row.result != null) r.result = json(row.result);
  if (row.error != null) r.error = json(row.error) as ErrorInfo;
  if (row.progress != null) r.progress = json(row.progress);
  return r;
}

function toRecurring(row: Row): RecurringDefinition {
  const d: RecurringDefinition = {
    id: row.id as string,
    cron: row.cron as string,
    name: row.name as string,
    args: json(row.args) as unknown[],
    options: json(row.options) as RecurringDefinition["options"],
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
  if (row.timezone != null) d.timezone = row.timezone as string;
  if (row.last_slot != null) d.lastSlot = num(row.last_slot);
  return d;
}

// Compile-time proof that the class fills the whole contract.
const _fits: new (driver: SqlDriver) => Storage = PostgresStorage;
void _fits;
