/**
 * RedisStorage: the Storage contract over Redis, every state change one Lua
 * script (scripts/*.lua, embedded at build time into scripts.generated.ts).
 *
 * - One round trip per call: claim promotes due jobs and claims in one
 *   script, so an idle server costs one request per polling interval.
 *   Batches (insert, complete) larger than a chunk go out as several script
 *   calls at once, which both drivers pipeline into one round trip.
 * - One clock: the caller's `now`, passed into every script. No script
 *   reads the server's TIME and no key carries a Redis TTL, so leases,
 *   retention and throughput buckets all follow the core's clock (and a
 *   test's ManualClock). The core may align that clock with Redis's own
 *   through serverTime(), so machines with skewed clocks still agree.
 * - No key grows without bound: finished jobs are pruned by age and count
 *   in every write (and their index entries, unique keys and counters with
 *   them), throughput buckets past the window are dropped, empty zsets
 *   vanish on their own.
 * - Retries: the HTTP client resends a request whose connection failed, so
 *   each write is idempotent: inserts by id and unique key, claims and
 *   operator transitions by an id per call, completions by token and state.
 */
import { ConfigError, ValidationError } from "../../../core/errors.js";
import { JobState, validateQueueName, type JobRecord } from "../../../core/job.js";
import {
  HOUR,
  MINUTE,
  Storage,
  bucketStarts,
  decodeCursor,
  emptyCounts,
  encodeCursor,
  type ClaimRequest,
  type CompletionResult,
  type InsertResult,
  type LeaseRef,
  type ListFilter,
  type Outcome,
  type Page,
  type RecurringDefinition,
  type SortField,
  type Stats,
  type StatsRequest,
  type StorageOptions,
  type EnqueueListener,
  type EnqueueListenerOptions,
  type ThroughputBucket,
  type TransitionResult,
} from "../../../core/storage.js";
import { decodeClaimed, decodeRecord, encodeRecord, hashOf, json } from "./codec.js";
import { redact, type ResolvedRedisConfig } from "./config.js";
import { replyText, type LuaScript, type RedisDriver, type RedisReply } from "./driver.js";
import { baseKey, keyNames } from "./keys.js";
import * as S from "./scripts.generated.js";

/** Schema of the keys; bumped when a change needs old keys migrated. */
export const SCHEMA_VERSION = 1;

/** Jobs or outcomes per script call: bounds how long one script holds the server. */
const CHUNK = 500;
/** Encoded bytes of jobs per insert call (a job may carry 512 KiB of arguments). */
const CHUNK_BYTES = 1024 * 1024;
/** Index entries one list call looks at before it returns a (possibly short) page. */
const LIST_BUDGET = 5000;
/** Index entries one purge call looks at. */
const PURGE_BUDGET = 5000;

const SORT_INDEX: Record<SortField, string> = { createdAt: "created", updatedAt: "updated", runAt: "runat" };
const OUTCOME_STATES: ReadonlySet<string> = new Set([JobState.Succeeded, JobState.Failed, JobState.AwaitingRetry, JobState.Enqueued]);

export type RedisStorageOptions = StorageOptions;

export class RedisStorage extends Storage {
  readonly kind = "redis";
  readonly driver: RedisDriver;
  readonly config: ResolvedRedisConfig;
  /** `<prefix>{<tag>}:`, KEYS[1] of every script. */
  readonly base: string;
  private readonly keys: ReturnType<typeof keyNames>;
  private subscription: Promise<(() => Promise<void>) | undefined> | undefined;
  private closed = false;

  constructor(driver: RedisDriver, config: ResolvedRedisConfig, options: RedisStorageOptions = {}) {
    super(options);
    this.driver = driver;
    this.config = config;
    this.base = baseKey(config.keyPrefix, config.hashTag);
    this.keys = keyNames(this.base);
  }

  // ------------------------------------------------------------ plumbing

  private run(script: LuaScript, args: readonly string[]): Promise<RedisReply> {
    return this.driver.evalScript(script, [this.base], args);
  }

  /** ARGV[1..4] of every write script: now and the retention settings. */
  private head(now: number): string[] {
    return [int(now, "now"), String(this.config.maxFinishedJobs), String(this.config.completedJobTtlMs), String(this.config.pruneBatch)];
  }

  /**
   * Refuses to start on a server that may evict keys (unless allowed), loads
   * the scripts and records the schema version. Idempotent.
   */
  async migrate(): Promise<void> {
    if (!this.config.allowEviction) await this.checkEvictionPolicy();
    const [loaded, fresh] = await Promise.all([
      this.driver.loadScripts(S.ALL_SCRIPTS),
      this.driver.command(["HSETNX", this.keys.meta, "version", String(SCHEMA_VERSION)]),
    ]);
    loaded.forEach((sha, i) => {
      const s = S.ALL_SCRIPTS[i]!;
      // A mismatch means scripts.generated.ts was edited by hand: EVALSHA would miss every time.
      if (sha !== s.sha) throw new ConfigError(`[qml] [redis] script ${s.name} hashes to ${sha}, not ${s.sha}: regenerate with npx tsx scripts/embed-lua.ts`);
    });
    if (Number(fresh) === 0) {
      const v = Number(await this.driver.command(["HGET", this.keys.meta, "version"]));
      if (v > SCHEMA_VERSION) {
        throw new ConfigError(`[qml] [redis] keys under ${this.base} were written by a newer qml (schema ${v}; this one knows ${SCHEMA_VERSION})`);
      }
    }
  }

  /**
   * Anything but `noeviction` lets Redis drop keys under memory pressure:
   * a job, or the index entry that makes it claimable, would vanish without
   * an error. Servers that refuse CONFIG (Upstash, most managed Redis)
   * are taken as they are: their policy is the provider's to document.
   */
  private async checkEvictionPolicy(): Promise<void> {
    let reply: RedisReply;
    try {
      reply = await this.driver.command(["CONFIG", "GET", "maxmemory-policy"]);
    } catch (e) {
      if (isRefusal(e)) return;
      throw e;
    }
    const h = hashOf(reply);
    const policy = h.get("maxmemory-policy");
    if (policy === undefined || policy === "noeviction") return;
    throw new ConfigError(
      `[qml] [redis] ${redact(this.config.url)} has maxmemory-policy "${policy}": under memory pressure Redis would evict keys and silently lose jobs. ` +
        `Set it to "noeviction" (redis.conf, CONFIG SET maxmemory-policy noeviction, or your provider's console), ` +
        `or accept the risk for a throwaway queue with RedisConfig.withAllowEviction(true).`,
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const stop = await this.subscription?.catch(() => undefined);
    await stop?.().catch(() => {});
    await this.driver.close();
  }

  // ------------------------------------------------------------ wake-ups

  /**
   * Every insert PUBLISHes the queues it filled on `<base>wake`. The first
   * `onEnqueue` subscriber (a BackgroundJobServer) subscribes to it, on the
   * TCP driver, so a job enqueued by another process wakes this one at once
   * instead of at its next poll. Over REST there is no subscription and
   * polling stays the wake-up.
   */
  override onEnqueue(listener: EnqueueListener, options: EnqueueListenerOptions = {}): () => void {
    const off = super.onEnqueue(listener, options);
    if (options.remote !== false && this.driver.subscribe && !this.closed) {
      this.subscription ??= this.driver.subscribe(`${this.base}wake`, (message) => this.onWake(message)).catch(() => undefined);
    }
    return off;
  }

  /** One ordered connection: a server's claim can go right behind this process's insert. */
  protected override get callsRunInOrder(): boolean {
    return this.driver.ordered === true;
  }

  private onWake(message: string): void {
    let woken: Record<string, number>;
    try {
      woken = JSON.parse(message) as Record<string, number>;
    } catch {
      return;
    }
    if (typeof woken !== "object" || woken === null) return;
    const jobs = Object.entries(woken).filter(([, runAt]) => typeof runAt === "number").map(([queue, runAt]) => ({ id: "", queue, runAt }));
    if (jobs.length > 0) this.emitEnqueued(jobs, "remote");
  }

  /**
   * Redis's TIME, for the core to align its clock with (StoreAlignedClock).
   * Scripts still take `now` from the caller: aligning the caller is what
   * keeps one clock across machines. Undefined where TIME is refused.
   */
  override async serverTime(): Promise<number | undefined> {
    let reply: RedisReply;
    try {
      reply = await this.driver.command(["TIME"]);
    } catch (e) {
      if (isRefusal(e)) return undefined;
      throw e;
    }
    const [seconds, micros] = arr(reply).map(Number);
    return Number.isFinite(seconds) && Number.isFinite(micros) ? seconds! * 1000 + Math.floor(micros! / 1000) : undefined;
  }

  // -------------------------------------------------------------- writes

  async insertJobs(records: JobRecord[], now: number): Promise<InsertResult[]> {
    if (records.length === 0) return [];
    for (const r of records) {
      // Core gives UUIDs, but Job.id is writable: an id must still be readable back (get() takes <= 200 chars).
      if (typeof r.id !== "string" || r.id.length === 0 || r.id.length > 200) throw new ValidationError("job id must be 1-200 characters", "id");
    }
    const head = this.head(now);
    const batches: string[][][] = [];
    let batch: string[][] = [];
    let bytes = 0;
    for (const r of records) {
      const { required, optional } = encodeRecord(r);
      const job = [r.uniqueKey ?? "", int(r.priority, "priority"), int(r.runAt, "runAt"), int(r.createdAt, "createdAt"), ...required, String(optional.length / 2), ...optional];
      const size = job.reduce((n, a) => n + a.length, 0);
      if (batch.length > 0 && (batch.length >= CHUNK || bytes + size > CHUNK_BYTES)) {
        batches.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(job);
      bytes += size;
    }
    batches.push(batch);
    // Sent together: both drivers pipeline them into one round trip; Redis runs them in order.
    const results = await Promise.all(batches.map(async (b) => pairs(await this.run(S.insert, [...head, String(b.length), ...b.flat()]))));
    return results.flat();
  }

  async claim(req: ClaimRequest): Promise<JobRecord[]> {
    if (!Array.isArray(req.queues) || req.queues.length === 0) return [];
    for (const q of req.queues) validateQueueName(q, "queues");
    if (!(req.limit >= 1)) return [];
    if (typeof req.owner !== "string" || req.owner.length === 0) throw new ValidationError("owner must be a non-empty string", "owner");
    const args = [
      ...this.head(req.now),
      int(Math.min(req.limit, 100_000), "limit"),
      int(req.leaseMs, "leaseMs"),
      req.owner,
      JSON.stringify(req.owner),
      String(this.config.promoteBatch),
      crypto.randomUUID(),
      String(req.queues.length),
      ...req.queues,
    ];
    const reply = await this.run(S.claim, args);
    return decodeClaimed(reply);
  }

  async extendLeases(leases: LeaseRef[], leaseMs: number, now: number): Promise<string[]> {
    if (leases.length === 0) return [];
    const out = await Promise.all(
      chunk(leases, CHUNK).map(async (batch) => {
        const args = [int(now, "now"), int(leaseMs, "leaseMs"), String(batch.length)];
        for (const l of batch) args.push(String(l.id), int(l.token, "token"));
        return arr(await this.run(S.extend, args)).map(String);
      }),
    );
    return out.flat();
  }

  async complete(outcomes: Outcome[], now: number): Promise<CompletionResult[]> {
    if (outcomes.length === 0) return [];
    for (const o of outcomes) {
      if (!OUTCOME_STATES.has(o.state)) throw new ValidationError(`an outcome's state must be succeeded, failed, awaiting_retry or enqueued; got ${JSON.stringify(o.state)}`, "state");
    }
    const head = this.head(now);
    const out = await Promise.all(
      chunk(outcomes, CHUNK).map(async (batch) => {
        // Redis's Lua hashes every byte of every argument it is given (~0.14 us an
        // argument): history entries repeat within a batch (one per state,
        // reason and worker), so each goes once, with its state, and outcomes
        // name it by number; an outcome sends only the fields its state uses.
        const entries = new Map<string, string>();
        const entryArgs: string[] = [];
        const rows: string[] = [];
        for (const o of batch) {
          const e = JSON.stringify({ state: o.state, at: now, reason: o.reason, worker: o.worker });
          let n = entries.get(e);
          if (n === undefined) {
            entries.set(e, (n = String(entries.size + 1)));
            entryArgs.push(o.state, e);
          }
          rows.push(String(o.id), int(o.token, "token"), n);
          const runAt = o.runAt !== undefined ? int(o.runAt, "runAt") : "";
          const error = o.error !== undefined ? JSON.stringify(o.error) : "";
          if (o.state === JobState.Succeeded) rows.push(json(o.result) ?? "");
          else if (o.state === JobState.Failed) rows.push(error);
          else if (o.state === JobState.AwaitingRetry) rows.push(runAt, error);
        }
        const args = [...head, String(batch.length), String(entries.size), ...entryArgs, ...rows];
        const reply = arr(await this.run(S.complete, args));
        return batch.map((o, i): CompletionResult => ({ id: o.id, status: Number(reply[i]) === 1 ? "applied" : "lost" }));
      }),
    );
    return out.flat();
  }

  async promoteDue(now: number, limit: number): Promise<number> {
    if (!(limit >= 1)) return 0;
    return Number(await this.run(S.promote, [...this.head(now), int(Math.min(limit, 1_000_000), "limit")]));
  }

  async reclaimExpired(now: number, limit: number): Promise<number> {
    if (!(limit >= 1)) return 0;
    return Number(await this.run(S.reclaim, [...this.head(now), int(Math.min(limit, 1_000_000), "limit")]));
  }

  async transition(id: string, from: JobState[], to: typeof JobState.Deleted | typeof JobState.Enqueued, reason: string, now: number): Promise<TransitionResult | null> {
    if (typeof id !== "string" || id.length === 0) return null;
    const entry = JSON.stringify({ state: to, at: now, reason });
    const reply = await this.run(S.transition, [...this.head(now), id, to, entry, crypto.randomUUID(), String(from.length), ...from]);
    if (reply === null) return null;
    const [applied, fields] = arr(reply);
    const record = decodeRecord(fields ?? []);
    if (!record) return null;
    return { record, applied: Number(applied) === 1 };
  }

  /** Repeats bounded script calls (each at most PURGE_BUDGET entries looked at) until `limit` or the end. */
  async purge(states: JobState[], olderThan: number, limit: number): Promise<number> {
    if (states.length === 0 || !(limit >= 1)) return 0;
    let removed = 0;
    let pos = 0;
    while (removed < limit) {
      const step = Math.min(limit - removed, 1000);
      const [n, exhausted, next] = arr(await this.run(S.purge, [int(olderThan, "olderThan"), String(step), String(PURGE_BUDGET), String(pos), String(states.length), ...states]));
      removed += Number(n);
      pos = Number(next);
      if (Number(exhausted) === 1) break;
    }
    return removed;
  }

  async setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean> {
    const reply = await this.run(S.progress, [int(now, "now"), String(lease.id), int(lease.token, "token"), json(progress ?? null) ?? "null"]);
    return Number(reply) === 1;
  }

  // --------------------------------------------------------------- reads

  async getRecord(id: string): Promise<JobRecord | null> {
    if (typeof id !== "string" || id.length === 0) return null;
    return decodeRecord(await this.run(S.get, [id]));
  }

  async listRecords(filter: ListFilter, page: { limit: number; sort: SortField; order: "asc" | "desc"; cursor?: string }): Promise<Page<JobRecord>> {
    const states = filter.state === undefined ? [] : Array.isArray(filter.state) ? filter.state : [filter.state];
    const after = page.cursor !== undefined ? decodeCursor(page.cursor) : undefined;
    const args = [
      SORT_INDEX[page.sort],
      page.order,
      String(page.limit),
      String(LIST_BUDGET + page.limit),
      after ? "1" : "0",
      after ? String(after.sortValue) : "",
      after ? after.id : "",
      filter.queue ?? "",
      filter.name ?? "",
      filter.text !== undefined ? filter.text.toLowerCase() : "",
      String(states.length),
      ...states,
    ];
    const [nextScore, nextId, ...items] = arr(await this.run(S.list, args));
    const records = items.map(decodeRecord).filter((r): r is JobRecord => r !== null);
    return nextScore !== "" && nextScore !== null && nextScore !== undefined
      ? { items: records, nextCursor: encodeCursor(Number(nextScore), String(nextId)) }
      : { items: records };
  }

  async statsAt(req: Required<StatsRequest>): Promise<Stats> {
    const minutes = bucketStarts(req.now, MINUTE, req.minutes);
    const hours = bucketStarts(req.now, HOUR, req.hours);
    const [counts, qcounts, m, h] = arr(await this.run(S.stats, [String(minutes.length), ...minutes.map(String), ...hours.map(String)]));
    const states = emptyCounts();
    for (const [k, v] of hashOf(counts ?? [])) if (k in states) states[k as JobState] = Number(v);
    const queues = new Map<string, ReturnType<typeof emptyCounts>>();
    for (const [k, v] of hashOf(qcounts ?? [])) {
      const at = k.lastIndexOf(":");
      const name = k.slice(0, at);
      const state = k.slice(at + 1);
      if (!(state in states) || Number(v) === 0) continue;
      let c = queues.get(name);
      if (!c) queues.set(name, (c = emptyCounts()));
      c[state as JobState] = Number(v);
    }
    const series = (starts: number[], reply: RedisReply | undefined): ThroughputBucket[] => {
      const values = arr(reply ?? []);
      return starts.map((at, i) => ({ at, succeeded: Number(values[2 * i] ?? 0), failed: Number(values[2 * i + 1] ?? 0) }));
    };
    return {
      states,
      total: Object.values(states).reduce((a, b) => a + b, 0),
      queues: [...queues.entries()].map(([name, c]) => ({ name, counts: c })).sort((a, b) => a.name.localeCompare(b.name)),
      perMinute: series(minutes, m),
      perHour: series(hours, h),
    };
  }

  // ----------------------------------------------------------- recurring

  async upsertRecurring(def: RecurringDefinition): Promise<void> {
    const { lastSlot: _lastSlot, ...stored } = def;
    await this.run(S.recurringUpsert, [def.id, JSON.stringify(stored), int(def.createdAt, "createdAt")]);
  }

  async listRecurring(): Promise<RecurringDefinition[]> {
    const [defs, created, slots] = arr(await this.run(S.recurringList, []));
    const createdAt = hashOf(created ?? []);
    const lastSlot = hashOf(slots ?? []);
    const out: RecurringDefinition[] = [];
    for (const [id, text] of hashOf(defs ?? [])) {
      const d = JSON.parse(text) as RecurringDefinition;
      const c = createdAt.get(id);
      if (c !== undefined) d.createdAt = Number(c);
      const s = lastSlot.get(id);
      if (s !== undefined) d.lastSlot = Number(s);
      out.push(d);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  async removeRecurring(id: string): Promise<boolean> {
    if (typeof id !== "string" || id.length === 0) return false;
    return Number(await this.run(S.recurringRemove, [id])) === 1;
  }

  async markRecurringFired(id: string, slot: number): Promise<boolean> {
    return Number(await this.run(S.recurringFired, [id, int(slot, "slot")])) === 1;
  }
}

// ---------------------------------------------------------------------------

/** The server answered that it does not allow the command (managed Redis, ACLs), as opposed to failing to answer. */
function isRefusal(e: unknown): boolean {
  const text = replyText((e as { cause?: unknown }).cause ?? e);
  return /unknown command|NOPERM|not allowed|not available|not supported|disabled|ERR /i.test(text) && !/ECONN|ETIMEDOUT|fetch failed|closed|timeout|timed out/i.test(text);
}

/** An integer as the decimal string the scripts expect; refuses what would corrupt a key or a score. */
function int(v: number, field: string): string {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ValidationError(`${field} must be a finite number; got ${String(v)}`, field);
  return String(Math.floor(v));
}

function arr(reply: RedisReply | undefined): RedisReply[] {
  return Array.isArray(reply) ? reply : [];
}

function pairs(reply: RedisReply): InsertResult[] {
  const a = arr(reply);
  const out: InsertResult[] = [];
  for (let i = 0; i + 1 < a.length; i += 2) out.push({ id: String(a[i]), created: Number(a[i + 1]) === 1 });
  return out;
}

function chunk<T>(items: T[], size: number): T[][] {
  if (items.length <= size) return [items];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
