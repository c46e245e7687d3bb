/**
 * RedisBackend: the storage driver over Redis, every state change one Lua
 * script (scripts/*.lua, embedded at build time into scripts.generated.ts).
 *
 * - One round trip per call: claim promotes due jobs and claims in one
 *   script, so an idle server costs one request per polling interval.
 *   Batches (insert, get, transition, complete) larger than a chunk go out
 *   as several script calls at once, which both command drivers pipeline
 *   into one round trip.
 * - One clock: the caller's `now`, passed into every script. No script
 *   reads the server's TIME and no key of the jobs carries a Redis TTL, so
 *   leases, retention and throughput buckets all follow the core's clock
 *   (and a test's ManualClock). Only kv entries and event-waiter sets
 *   expire in Redis, at a span from the caller's now, and their readers
 *   still compare with that now. The core may align that clock with
 *   Redis's own through serverTime(), so machines with skewed clocks still
 *   agree.
 * - No key grows without bound: finished jobs are pruned by age and count
 *   in every write (and their index entries, unique keys and counters with
 *   them), throughput buckets past the window are dropped, empty zsets
 *   vanish on their own. A flow's dependency edges (`deps:<id>` sets of
 *   waiting jobs) are written by the waiter's insert and go when it leaves
 *   `awaiting` (or is purged); while they exist, the job they name is kept
 *   past the retention, its outcome deciding theirs.
 * - Retries: the HTTP client resends a request whose connection failed, so
 *   each write is idempotent: inserts by id and unique key (debounces by an
 *   id per call, see insert.lua), claims and operator transitions by an id
 *   per call, completions by token and state, pauses as set writes are.
 * - Lazy: construction is synchronous and opens nothing. The Upstash
 *   driver is plain `fetch` and made at once; the TCP driver (ioredis) is
 *   loaded with a dynamic import on the first call, so a Workers bundle
 *   never contains it.
 */
import {
  HOUR,
  MINUTE,
  bucketStarts,
  emptyCounts,
  type ClaimRequest,
  type CompletionResult,
  type InsertRecord,
  type InsertResult,
  type KvHit,
  type LeaseRef,
  type ListFilter,
  type Outcome,
  type PageQuery,
  type RecordPage,
  type RecurringDefinition,
  type RemoteEnqueue,
  type StoreEvents,
  type SortField,
  type Stats,
  type StatsRequest,
  type StorageDriver,
  type ThroughputBucket,
  type TransitionRequest,
  type TransitionResult,
} from "../../../core/driver.js";
import { ConfigError } from "../../../core/errors.js";
import { JobState, type HistoryEntry, type JobRecord, type StepRecord } from "../../../core/job.js";
import { decodeClaimed, decodeRecord, encodeRecord, hashOf, json } from "./codec.js";
import { RedisConfig, redact, type ResolvedRedisConfig } from "./config.js";
import { replyText, toStorageError, type LuaScript, type RedisDriver, type RedisReply } from "./driver.js";
import { IoredisDriver } from "./drivers/ioredis.js";
import { UpstashDriver } from "./drivers/upstash.js";
import { assertOneSlot, baseKey } from "./keys.js";
import * as S from "./scripts.generated.js";

/** Schema of the keys; bumped when a change needs old keys migrated. */
export const SCHEMA_VERSION = 1;

/** Jobs, ids or outcomes per script call: bounds how long one script holds the server. */
const CHUNK = 500;
/** Encoded bytes of jobs per insert call (a job may carry 512 KiB of arguments). */
const CHUNK_BYTES = 1024 * 1024;
/** Index entries one list call looks at before it returns a (possibly short) page. */
const LIST_BUDGET = 5000;
/** Index entries one purge call looks at. */
const PURGE_BUDGET = 5000;

const SORT_INDEX: Record<SortField, string> = { createdAt: "created", updatedAt: "updated", runAt: "runat" };

export interface RedisBackendOptions {
  /**
   * The command driver to use instead of the one the URL asks for: an
   * `IoredisDriver` around your own clients (a Cluster, say), an
   * `UpstashDriver` around your own client, or any `RedisDriver`.
   */
  driver?: RedisDriver;
}

export class RedisBackend implements StorageDriver {
  readonly kind = "redis";
  /** "ioredis", "upstash", or the given command driver's kind. */
  readonly transport: string;
  /**
   * Calls reach Redis in the order they are made: one TCP connection
   * (pool size 1), or a given driver that says so. Known from the
   * configuration, before the lazy connect.
   */
  readonly ordered: boolean;
  readonly config: ResolvedRedisConfig;
  /** `<prefix>{<tag>}:`, KEYS[1] of every script. */
  readonly base: string;
  private commands: RedisDriver | undefined;
  private loading: Promise<RedisDriver> | undefined;
  private closed = false;

  constructor(config: ResolvedRedisConfig, options: RedisBackendOptions = {}) {
    this.config = config;
    this.base = baseKey(config.keyPrefix, config.hashTag);
    // Every script reaches keys past the base: on a cluster they must share its slot.
    assertOneSlot(this.base);
    const given = options.driver;
    if (given) {
      this.commands = given;
      this.transport = given.kind;
      this.ordered = given.ordered === true;
    } else if (config.transport === "upstash") {
      // Plain fetch: nothing to load or open, so made at once.
      this.commands = upstashDriver(config);
      this.transport = "upstash";
      this.ordered = false;
    } else {
      this.transport = "ioredis";
      // IoredisDriver's own rule for a URL: ordered when it opens one connection (a Cluster: never).
      this.ordered = config.poolSize === 1 && !config.cluster;
    }
  }

  // ------------------------------------------------------------ plumbing

  /** The command driver, made on first use. */
  connection(): Promise<RedisDriver> {
    if (this.commands) return Promise.resolve(this.commands);
    if (this.closed) return Promise.reject(toStorageError(new Error("the backend is closed"), this.transport, "connect"));
    // Made here, not at construction: ioredis is loaded (and its connection opened) by the first call.
    this.loading ??= Promise.resolve()
      .then(() => createRedisDriver(this.config))
      .then(
        (driver) => (this.commands = driver),
        (e: unknown) => {
          this.loading = undefined;
          throw new ConfigError(`could not load the TCP driver (ioredis): ${replyText(e)}; pass one with redisBackend(config, { driver })`, {
            scope: "redis",
            cause: e,
          });
        },
      );
    return this.loading;
  }

  /**
   * One script call. Sent at once when the driver is there, so calls made
   * one after another reach the connection in that order (`ordered`).
   */
  private run(script: LuaScript, args: readonly string[]): Promise<RedisReply> {
    const c = this.commands;
    if (c) return c.evalScript(script, [this.base], args);
    return this.connection().then((d) => d.evalScript(script, [this.base], args));
  }

  private command(args: readonly string[]): Promise<RedisReply> {
    const c = this.commands;
    if (c) return c.command(args);
    return this.connection().then((d) => d.command(args));
  }

  /** ARGV[1..4] of every write script: now and the retention settings. */
  private head(now: number): string[] {
    return [int(now), String(this.config.maxFinishedJobs), String(this.config.finishedJobTtlMs), String(this.config.pruneBatch)];
  }

  /**
   * Refuses to start on a server that may evict keys (unless allowed), loads
   * the scripts and records the schema version. Idempotent.
   */
  async migrate(): Promise<void> {
    const driver = await this.connection();
    if (!this.config.allowEviction) await this.checkEvictionPolicy();
    const meta = `${this.base}meta`;
    const [loaded, fresh] = await Promise.all([driver.loadScripts(S.ALL_SCRIPTS), driver.command(["HSETNX", meta, "version", String(SCHEMA_VERSION)])]);
    loaded.forEach((sha, i) => {
      const s = S.ALL_SCRIPTS[i]!;
      // A mismatch means scripts.generated.ts was edited by hand: EVALSHA would miss every time.
      if (sha !== s.sha)
        throw new ConfigError(`script ${s.name} hashes to ${sha}, not ${s.sha}: regenerate with npx tsx scripts/embed-lua.ts`, { scope: "redis" });
    });
    if (Number(fresh) === 0) {
      const v = Number(await driver.command(["HGET", meta, "version"]));
      if (v > SCHEMA_VERSION) {
        throw new ConfigError(`keys under ${this.base} were written by a newer qml (schema ${v}; this one knows ${SCHEMA_VERSION})`, { scope: "redis" });
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
      reply = await this.command(["CONFIG", "GET", "maxmemory-policy"]);
    } catch (e) {
      if (isRefusal(e)) return;
      throw e;
    }
    const policy = hashOf(reply).get("maxmemory-policy");
    if (policy === undefined || policy === "noeviction") return;
    throw new ConfigError(
      `${redact(this.config.url)} has maxmemory-policy "${policy}": under memory pressure Redis would evict keys and silently lose jobs. ` +
        `Set it to "noeviction" (redis.conf, CONFIG SET maxmemory-policy noeviction, or your provider's console), ` +
        `or accept the risk for a throwaway queue with RedisConfig.withAllowEviction(true).`,
      { scope: "redis" },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const driver = this.commands ?? (await this.loading?.catch(() => undefined));
    await driver?.close();
  }

  // ------------------------------------------------------------ wake-ups

  /**
   * Every insert PUBLISHes the queues it filled, each with its earliest
   * runAt, on `<base>wake`; every transition that takes running jobs to
   * `deleted` PUBLISHes their ids and its reason on `<base>cancel`
   * (whichever transport made the call: the script publishes). Over TCP
   * this subscribes to both on one connection of its own, so a job
   * enqueued by another process wakes this one at once instead of at its
   * next poll, and a job cancelled by another process stops here at once
   * instead of at its next heartbeat. The REST API has no subscriptions:
   * undefined, and polling and heartbeats find both.
   */
  async subscribe(handlers: StoreEvents): Promise<(() => Promise<void>) | undefined> {
    const driver = await this.connection();
    if (!driver.subscribe) return undefined;
    const wake = `${this.base}wake`;
    return driver.subscribe([wake, `${this.base}cancel`], (channel, message) => {
      if (channel === wake) {
        const jobs = wokenQueues(message);
        if (jobs.length > 0) handlers.enqueued(jobs);
        return;
      }
      const cancelled = cancelledJobs(message);
      if (cancelled) handlers.cancelled(cancelled.ids, cancelled.reason);
    });
  }

  /**
   * Redis's TIME, for the core to align its clock with (StoreAlignedClock).
   * Scripts still take `now` from the caller: aligning the caller is what
   * keeps one clock across machines. Undefined where TIME is refused.
   */
  async serverTime(): Promise<number | undefined> {
    let reply: RedisReply;
    try {
      reply = await this.command(["TIME"]);
    } catch (e) {
      if (isRefusal(e)) return undefined;
      throw e;
    }
    const [seconds, micros] = arr(reply).map(Number);
    return Number.isFinite(seconds) && Number.isFinite(micros) ? seconds! * 1000 + Math.floor(micros! / 1000) : undefined;
  }

  // -------------------------------------------------------------- writes

  async insert(records: InsertRecord[], now: number): Promise<InsertResult[]> {
    if (records.length === 0) return [];
    const head = this.head(now);
    const batches: Array<{ jobs: string[][]; debounce: boolean }> = [];
    let batch: { jobs: string[][]; debounce: boolean } = { jobs: [], debounce: false };
    let bytes = 0;
    for (const r of records) {
      const { required, optional } = encodeRecord(r);
      const job = [
        r.uniqueKey ?? "",
        r.debounce && r.uniqueKey !== undefined ? "1" : "",
        int(r.priority),
        int(r.runAt),
        int(r.createdAt),
        ...required,
        String(optional.length / 2),
        ...optional,
      ];
      const size = job.reduce((n, a) => n + a.length, 0);
      if (batch.jobs.length > 0 && (batch.jobs.length >= CHUNK || bytes + size > CHUNK_BYTES)) {
        batches.push(batch);
        batch = { jobs: [], debounce: false };
        bytes = 0;
      }
      batch.jobs.push(job);
      batch.debounce ||= job[1] === "1";
      bytes += size;
    }
    batches.push(batch);
    // Sent together: both drivers pipeline them into one round trip; Redis runs them in order.
    // One id per script call with debounce jobs: a resent call knows the holders it debounced (insert.lua).
    const results = await Promise.all(
      batches.map(async (b) =>
        insertResults(await this.run(S.insert, [...head, b.debounce ? crypto.randomUUID() : "", String(b.jobs.length), ...b.jobs.flat()])),
      ),
    );
    return results.flat();
  }

  async claim(req: ClaimRequest): Promise<JobRecord[]> {
    if (req.queues.length === 0 || req.limit < 1) return [];
    const args = [
      ...this.head(req.now),
      int(Math.min(req.limit, 100_000)),
      int(req.leaseMs),
      req.owner,
      JSON.stringify(req.owner),
      String(this.config.promoteBatch),
      crypto.randomUUID(),
      String(req.queues.length),
      ...req.queues,
    ];
    return decodeClaimed(await this.run(S.claim, args));
  }

  /** One script: the set `<base>paused`, and on resume the queue's parked jobs back (set-paused.lua). */
  async setPaused(queue: string, paused: boolean, now: number): Promise<void> {
    await this.run(S.setPaused, [int(now), queue, paused ? "1" : "0"]);
  }

  async pausedQueues(): Promise<string[]> {
    return arr(await this.command(["SMEMBERS", `${this.base}paused`]))
      .map(String)
      .sort();
  }

  async extendLeases(leases: LeaseRef[], leaseMs: number, now: number): Promise<string[]> {
    if (leases.length === 0) return [];
    const out = await Promise.all(
      chunk(leases, CHUNK).map(async (batch) => {
        const args = [int(now), int(leaseMs), String(batch.length)];
        for (const l of batch) args.push(l.id, int(l.token));
        return arr(await this.run(S.extend, args)).map(String);
      }),
    );
    return out.flat();
  }

  async complete(outcomes: Outcome[], now: number): Promise<CompletionResult[]> {
    if (outcomes.length === 0) return [];
    const head = this.head(now);
    const out = await Promise.all(
      chunk(outcomes, CHUNK).map(async (batch) => {
        // Redis's Lua hashes every byte of every argument it is given, a cost
        // per argument (docs/decisions/redis-script-costs.md): history entries
        // repeat within a batch (one per state, reason and worker), so each
        // goes once, with its state, and outcomes name it by number; an
        // outcome sends only the fields its state uses.
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
          rows.push(o.id, int(o.token), n);
          const error = o.error !== undefined ? JSON.stringify(o.error) : "";
          if (o.state === JobState.Succeeded) rows.push(json(o.result) ?? "");
          else if (o.state === JobState.Failed) rows.push(error);
          else if (o.state === JobState.AwaitingRetry) rows.push(o.runAt !== undefined ? int(o.runAt) : "", error);
          else if (o.state === JobState.Scheduled) rows.push(o.runAt !== undefined ? int(o.runAt) : "", o.countAttempt ? "1" : "");
          else rows.push(o.countAttempt ? "1" : "");
        }
        const args = [...head, String(batch.length), String(entries.size), ...entryArgs, ...rows];
        const reply = arr(await this.run(S.complete, args));
        // 1 applied, 2 applied and jobs wait for the job it finished, 0 lost (complete.lua).
        return batch.map((o, i): CompletionResult => {
          const status = Number(reply[i]);
          return status === 2 ? { id: o.id, status: "applied", dependents: true } : { id: o.id, status: status === 1 ? "applied" : "lost" };
        });
      }),
    );
    return out.flat();
  }

  async promoteDue(now: number, limit: number): Promise<number> {
    if (limit < 1) return 0;
    return Number(await this.run(S.promote, [...this.head(now), int(Math.min(limit, 1_000_000))]));
  }

  async reclaimExpired(now: number, limit: number): Promise<number> {
    if (limit < 1) return 0;
    return Number(await this.run(S.reclaim, [...this.head(now), int(Math.min(limit, 1_000_000))]));
  }

  async transition(req: TransitionRequest): Promise<Array<TransitionResult | null>> {
    if (req.ids.length === 0) return [];
    const entry = JSON.stringify({ state: req.to, at: req.now, reason: req.reason });
    // One operation id per call: a retried request is recognised on every job it changed.
    const error = req.to === JobState.Failed && req.error !== undefined ? JSON.stringify(req.error) : "";
    const fixed = [...this.head(req.now), req.to, entry, crypto.randomUUID(), error, String(req.from.length), ...req.from];
    const out = await Promise.all(
      chunk(req.ids, CHUNK).map(async (ids) =>
        arr(await this.run(S.transition, [...fixed, ...ids])).map((one): TransitionResult | null => {
          if (!Array.isArray(one)) return null;
          const record = decodeRecord(one[1] ?? []);
          if (!record) return null;
          return Number(one[2]) === 1 ? { record, applied: Number(one[0]) === 1, dependents: true } : { record, applied: Number(one[0]) === 1 };
        }),
      ),
    );
    return out.flat();
  }

  /**
   * The waiters of `ids`: the union of their `deps:<id>` sets (see
   * lib/common.lua), one script per chunk of ids, the chunks sent together.
   */
  async dependents(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const out = await Promise.all(chunk(ids, CHUNK).map(async (part) => arr(await this.run(S.dependents, part)).map(String)));
    return out.length === 1 ? out[0]! : [...new Set(out.flat())];
  }

  /** Repeats bounded script calls (each at most PURGE_BUDGET entries looked at) until `limit` or the end. */
  async purge(states: JobState[], olderThan: number, limit: number): Promise<number> {
    if (states.length === 0 || limit < 1) return 0;
    let removed = 0;
    let pos = 0;
    while (removed < limit) {
      const step = Math.min(limit - removed, 1000);
      const [n, exhausted, next] = arr(
        await this.run(S.purge, [int(olderThan), String(step), String(PURGE_BUDGET), String(pos), String(states.length), ...states]),
      );
      removed += Number(n);
      pos = Number(next);
      if (Number(exhausted) === 1) break;
    }
    return removed;
  }

  async setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean> {
    const reply = await this.run(S.progress, [int(now), lease.id, int(lease.token), json(progress ?? null) ?? "null"]);
    return Number(reply) === 1;
  }

  /** steps.lua: the job's steps (a JSON field of its hash) and one history entry, fenced by the lease. */
  async saveSteps(lease: LeaseRef, steps: StepRecord[], entry: HistoryEntry, now: number): Promise<boolean> {
    const e = JSON.stringify({ state: entry.state, at: entry.at, reason: entry.reason, worker: entry.worker });
    const reply = await this.run(S.steps, [int(now), lease.id, int(lease.token), JSON.stringify(steps), e]);
    return Number(reply) === 1;
  }

  // ------------------------------------------------ event waiters (waiters.lua)

  async addWaiter(event: string, id: string, expiresAt: number, now: number): Promise<void> {
    await this.run(S.waiters, [int(now), "add", event, id, int(expiresAt)]);
  }

  async waiters(event: string, now: number, limit: number): Promise<string[]> {
    if (limit < 1) return [];
    return arr(await this.run(S.waiters, [int(now), "list", event, int(Math.floor(limit))])).map(String);
  }

  async removeWaiters(event: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await Promise.all(chunk(ids, CHUNK).map((batch) => this.run(S.waiters, ["0", "remove", event, ...batch])));
  }

  // --------------------------------------------------------------- reads

  async get(ids: string[]): Promise<Array<JobRecord | null>> {
    if (ids.length === 0) return [];
    // Chunks sent together: one round trip over either driver.
    const out = await Promise.all(chunk(ids, CHUNK).map(async (part) => arr(await this.run(S.get, part)).map((h) => (h === null ? null : decodeRecord(h)))));
    return out.flat();
  }

  async list(filter: ListFilter, page: PageQuery): Promise<RecordPage> {
    const states = filter.state === undefined ? [] : Array.isArray(filter.state) ? filter.state : [filter.state];
    const after = page.after;
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
      ? { items: records, next: { sortValue: Number(nextScore), id: String(nextId) } }
      : { items: records };
  }

  async stats(req: StatsRequest): Promise<Stats> {
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
    await this.run(S.recurringUpsert, [def.id, JSON.stringify(stored), int(def.createdAt)]);
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
    return Number(await this.run(S.recurringRemove, [id])) === 1;
  }

  async markRecurringFired(id: string, slot: number): Promise<boolean> {
    return Number(await this.run(S.recurringFired, [id, int(slot)])) === 1;
  }

  // ----------------------------------------------------------- estimates

  /** `<base>estimates`, job name -> ms: one HGETALL. */
  async readEstimates(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const [name, ms] of hashOf(await this.command(["HGETALL", `${this.base}estimates`]))) {
      const n = Number(ms);
      if (Number.isFinite(n)) out[name] = n;
    }
    return out;
  }

  /** One HSET of the names given: the others stay. */
  async writeEstimates(estimates: Record<string, number>): Promise<void> {
    const fields = Object.entries(estimates).flatMap(([name, ms]) => [name, String(ms)]);
    if (fields.length === 0) return;
    await this.command(["HSET", `${this.base}estimates`, ...fields]);
  }

  // --------------------------------------------------------- key-value

  /** `<base>kv:<key>`, a hash {v, e} (kv-set.lua): one HMGET, expiry checked against `now`. */
  async kvGet(key: string, now: number): Promise<string | undefined> {
    const [v, e] = arr(await this.command(["HMGET", `${this.base}kv:${key}`, "v", "e"]));
    if (typeof v !== "string") return undefined;
    return typeof e === "string" && e !== "" && Number(e) <= now ? undefined : v;
  }

  async kvSet(key: string, value: string, expiresAt: number | undefined, now: number): Promise<void> {
    await this.run(S.kvSet, [int(now), key, value, expiresAt === undefined ? "" : int(expiresAt), "0"]);
  }

  async kvAdd(key: string, value: string, expiresAt: number | undefined, now: number): Promise<string> {
    const reply = await this.run(S.kvSet, [int(now), key, value, expiresAt === undefined ? "" : int(expiresAt), "1"]);
    return typeof reply === "string" ? reply : value;
  }

  async kvDelete(key: string): Promise<boolean> {
    return Number(await this.command(["DEL", `${this.base}kv:${key}`])) === 1;
  }

  /** One script (kv-hit.lua). Under Upstash's retry of a request whose answer was lost, a hit may count twice: a throttle errs towards refusing. */
  async kvHit(key: string, windowMs: number, now: number): Promise<KvHit> {
    const [count, resetAt] = arr(await this.run(S.kvHit, [int(now), int(windowMs), key]));
    return { count: Number(count), resetAt: Number(resetAt) };
  }
}

// ---------------------------------------------------------------------------

/** A Redis backend for `config` (`new Storage(redisBackend(new RedisConfig(url)))`). Opens nothing until the first call. */
export function redisBackend(config: RedisConfig | ResolvedRedisConfig, options: RedisBackendOptions = {}): RedisBackend {
  return new RedisBackend(config instanceof RedisConfig ? config.resolve() : config, options);
}

/** The command driver a resolved configuration asks for, by URL scheme. */
export function createRedisDriver(config: ResolvedRedisConfig): RedisDriver {
  if (config.transport === "upstash") return upstashDriver(config);
  return new IoredisDriver({
    url: config.url,
    poolSize: config.poolSize,
    commandTimeoutMs: config.commandTimeoutMs,
    autoPipelining: config.autoPipelining,
    ...(config.cluster ? { cluster: true, clusterNodes: config.clusterNodes } : {}),
  });
}

function upstashDriver(config: ResolvedRedisConfig): UpstashDriver {
  return new UpstashDriver({
    url: config.url,
    token: config.token!,
    commandTimeoutMs: config.commandTimeoutMs,
    retries: config.retries,
    autoPipelining: config.autoPipelining,
  });
}

/** The server answered that it does not allow the command (managed Redis, ACLs), as opposed to failing to answer. */
function isRefusal(e: unknown): boolean {
  const text = replyText((e as { cause?: unknown }).cause ?? e);
  return (
    /unknown command|NOPERM|not allowed|not available|not supported|disabled|ERR /i.test(text) &&
    !/ECONN|ETIMEDOUT|fetch failed|closed|timeout|timed out/i.test(text)
  );
}

/** A `<base>wake` message, {queue: earliest runAt}, as the jobs it announces (without ids). */
function wokenQueues(message: string): RemoteEnqueue {
  let woken: unknown;
  try {
    woken = JSON.parse(message);
  } catch {
    return [];
  }
  if (typeof woken !== "object" || woken === null) return [];
  return Object.entries(woken as Record<string, unknown>).flatMap(([queue, runAt]) => (typeof runAt === "number" ? [{ id: "", queue, runAt }] : []));
}

/** A `<base>cancel` message, {"ids": [...], "reason": "..."}; undefined when it is not one. */
function cancelledJobs(message: string): { ids: string[]; reason: string } | undefined {
  let msg: unknown;
  try {
    msg = JSON.parse(message);
  } catch {
    return undefined;
  }
  const { ids, reason } = (msg ?? {}) as { ids?: unknown; reason?: unknown };
  if (!Array.isArray(ids)) return undefined;
  const valid = ids.filter((id): id is string => typeof id === "string");
  return valid.length > 0 ? { ids: valid, reason: typeof reason === "string" ? reason : "cancelled" } : undefined;
}

/** An integer as the decimal string the scripts expect (core passes finite numbers). */
function int(v: number): string {
  return String(Math.floor(v));
}

function arr(reply: RedisReply | undefined): RedisReply[] {
  return Array.isArray(reply) ? reply : [];
}

/** insert.lua's reply: id, status (1 created, 0 existing, 2 debounced into the existing job), ... */
function insertResults(reply: RedisReply): InsertResult[] {
  const a = arr(reply);
  const out: InsertResult[] = [];
  for (let i = 0; i + 1 < a.length; i += 2) {
    const status = Number(a[i + 1]);
    out.push(status === 2 ? { id: String(a[i]), created: false, replaced: true } : { id: String(a[i]), created: status === 1 });
  }
  return out;
}

function chunk<T>(items: T[], size: number): T[][] {
  if (items.length <= size) return [items];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
