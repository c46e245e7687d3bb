/**
 * MemoryBackend: the whole storage driver in one process.
 *
 * Atomic because every method body runs synchronously between two awaits:
 * no other caller can interleave inside a claim or a completion. Ready jobs
 * sit in one heap per queue (priority desc, runAt, insertion); delayed jobs
 * in one heap by runAt. Heaps are lazily cleaned: an entry is valid only
 * while its job still has the sequence number the entry was pushed with.
 *
 * Arguments and results are kept as JSON text, as every other backend keeps
 * them, so a job reads back the same here as on Redis or Postgres.
 */
import {
  DEFAULT_RETENTION,
  HOUR,
  MINUTE,
  RATE_COUNT_KEEP_MS,
  bucketStarts,
  emptyCounts,
  matchesFilter,
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
  type RecordPage,
  type RecurringDefinition,
  type Retention,
  type StateCounts,
  type Stats,
  type StatsRequest,
  type StorageDriver,
  type TransitionRequest,
  type TransitionResult,
} from "../../../core/driver.js";
import { DELAYED_STATES, FINISHED_STATES, JobState, appendHistory, type HistoryEntry, type JobRecord, type StepRecord } from "../../../core/job.js";
import { Heap } from "./heap.js";
import { MemoryKv } from "./kv.js";

export type MemoryBackendOptions = Partial<Retention>;

interface Stored {
  rec: JobRecord; // rec.args / rec.result are not used: see argsJson / resultJson
  argsJson: string;
  resultJson: string | undefined;
  /** Bumped whenever the job enters a heap or the finished list; older entries are stale. */
  seq: number;
  /** Insertion order: breaks ties among ready jobs, and a released job keeps it. */
  order: number;
}

interface ReadyEntry {
  id: string;
  priority: number;
  runAt: number;
  order: number;
  seq: number;
}
interface ParkedEntry extends ReadyEntry {
  queue: string;
}
/** A rate key's next start (window × limit + starts given in it) and when the count may be forgotten. */
interface RateCount {
  next: number;
  until: number;
}
interface DelayedEntry {
  id: string;
  runAt: number;
  seq: number;
}

const readyLess = (a: ReadyEntry, b: ReadyEntry) =>
  a.priority !== b.priority ? a.priority > b.priority : a.runAt !== b.runAt ? a.runAt < b.runAt : a.order < b.order;
const delayedLess = (a: DelayedEntry, b: DelayedEntry) => (a.runAt !== b.runAt ? a.runAt < b.runAt : a.seq < b.seq);

export class MemoryBackend implements StorageDriver {
  readonly kind = "memory";
  readonly transport = "memory";
  private readonly jobs = new Map<string, Stored>();
  private readonly unique = new Map<string, string>();
  private readonly ready = new Map<string, Heap<ReadyEntry>>();
  private readonly delayed = new Heap<DelayedEntry>(delayedLess);
  private readonly processing = new Set<string>();
  private readonly finished: Array<{ id: string; seq: number; at: number }> = [];
  private finishedHead = 0;
  private readonly counts: StateCounts = emptyCounts();
  private readonly queueCounts = new Map<string, StateCounts>();
  private readonly perMinute = new Map<number, { succeeded: number; failed: number }>();
  private readonly perHour = new Map<number, { succeeded: number; failed: number }>();
  private readonly recurring = new Map<string, RecurringDefinition>();
  private readonly estimates = new Map<string, number>();
  private readonly paused = new Set<string>();
  private readonly kv = new MemoryKv();
  /** Concurrency key → jobs with it in processing. */
  private readonly active = new Map<string, number>();
  /** Concurrency key → ready jobs set aside while the key was full, back one per freed slot. */
  private readonly parked = new Map<string, Heap<ParkedEntry>>();
  /** Rate key → its count of starts, kept RATE_COUNT_KEEP_MS past its last start's window. */
  private readonly rateCounts = new Map<string, RateCount>();
  /** When forgetRateCounts last walked rateCounts. */
  private rateSweptAt = -Infinity;
  /** Dependency id → the awaiting jobs that wait for it (flows, continuations). */
  private readonly edges = new Map<string, Set<string>>();
  /** Event waiters: event name → job id → expiresAt. */
  private readonly waiting = new Map<string, Map<string, number>>();
  private seq = 0;
  private inserted = 0;
  private readonly maxFinished: number;
  private readonly finishedTtl: number;

  constructor(options: MemoryBackendOptions = {}) {
    this.maxFinished = options.maxFinishedJobs ?? DEFAULT_RETENTION.maxFinishedJobs;
    const ttl = options.finishedJobTtlMs ?? DEFAULT_RETENTION.finishedJobTtlMs;
    this.finishedTtl = ttl === 0 ? Infinity : ttl;
  }

  async migrate(): Promise<void> {}
  async close(): Promise<void> {}

  // ----------------------------------------------------------- writes

  async insert(records: InsertRecord[], now: number): Promise<InsertResult[]> {
    const out: InsertResult[] = [];
    for (const r of records) {
      if (r.uniqueKey !== undefined) {
        const existing = this.unique.get(r.uniqueKey);
        const holder = existing === undefined ? undefined : this.jobs.get(existing);
        if (holder && holder.rec.uniqueUntil !== undefined && holder.rec.uniqueUntil <= now) {
          // The key's window is over: the holder stays, the key moves on.
          this.unique.delete(r.uniqueKey);
          holder.rec.uniqueKey = undefined;
          holder.rec.uniqueUntil = undefined;
        } else if (holder && r.debounce && (holder.rec.state === JobState.Scheduled || holder.rec.state === JobState.Enqueued)) {
          this.debounce(holder, r, now);
          out.push({ id: holder.rec.id, created: false, replaced: true });
          continue;
        } else if (holder && r.debounce) {
          // It has started or finished: the newer enqueue is a job of its own, and takes the key.
          this.unique.delete(r.uniqueKey);
          holder.rec.uniqueKey = undefined;
          holder.rec.uniqueUntil = undefined;
        } else if (existing !== undefined) {
          out.push({ id: existing, created: false });
          continue;
        }
      }
      if (this.jobs.has(r.id)) {
        out.push({ id: r.id, created: false });
        continue;
      }
      // Every optional field is present from the start (and never deleted):
      // records keep one hidden class, which keeps claim/complete fast.
      const rec: JobRecord = {
        leaseOwner: undefined,
        leaseUntil: undefined,
        finishedAt: undefined,
        error: undefined,
        progress: undefined,
        retry: undefined,
        timeoutMs: undefined,
        uniqueKey: undefined,
        uniqueUntil: undefined,
        concurrencyKey: undefined,
        concurrencyLimit: undefined,
        rateKey: undefined,
        rateLimit: undefined,
        rateInterval: undefined,
        rateWindow: undefined,
        metadata: undefined,
        flow: undefined,
        ...r,
        result: undefined,
        args: [],
        history: [...r.history],
      };
      delete (rec as InsertRecord).debounce;
      const s: Stored = { rec, argsJson: JSON.stringify(r.args), resultJson: undefined, seq: 0, order: ++this.inserted };
      this.jobs.set(r.id, s);
      if (r.uniqueKey !== undefined) this.unique.set(r.uniqueKey, r.id);
      if (r.state === JobState.Awaiting && r.flow) {
        rec.flow = { ...r.flow, dependsOn: [...r.flow.dependsOn] };
        for (const dep of r.flow.dependsOn) {
          let set = this.edges.get(dep);
          if (!set) this.edges.set(dep, (set = new Set()));
          set.add(r.id);
        }
      }
      this.count(r.queue, r.state, +1);
      this.place(s);
      out.push({ id: r.id, created: true });
    }
    this.prune(now);
    return out;
  }

  /** A waiting job takes a newer enqueue's arguments, metadata and due time (uniqueMode "debounce"). */
  private debounce(s: Stored, r: InsertRecord, now: number): void {
    const rec = s.rec;
    s.argsJson = JSON.stringify(r.args);
    rec.metadata = r.metadata;
    rec.runAt = r.runAt;
    rec.uniqueUntil = r.uniqueUntil;
    rec.updatedAt = now;
    this.setState(s, r.runAt > now ? JobState.Scheduled : JobState.Enqueued);
    appendHistory(rec.history, { state: rec.state, at: now, reason: "debounced" });
    this.place(s);
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    if (paused) this.paused.add(queue);
    else this.paused.delete(queue);
  }

  async pausedQueues(): Promise<string[]> {
    return [...this.paused].sort();
  }

  async claim(req: ClaimRequest): Promise<JobRecord[]> {
    const { now } = req;
    this.promote(now, Infinity);
    const out: JobRecord[] = [];
    for (const queue of req.queues) {
      if (this.paused.has(queue)) continue;
      const heap = this.ready.get(queue);
      while (heap && heap.size > 0 && out.length < req.limit) {
        const e = heap.pop()!;
        const s = this.jobs.get(e.id);
        if (!s || s.seq !== e.seq || s.rec.state !== JobState.Enqueued) continue;
        const r = s.rec;
        if (r.concurrencyKey !== undefined && (this.active.get(r.concurrencyKey) ?? 0) >= r.concurrencyLimit!) {
          this.park(r.concurrencyKey, { ...e, queue });
          continue;
        }
        if (r.rateKey !== undefined && !this.takeStart(s, now)) continue;
        this.setState(s, JobState.Processing);
        r.attempts++;
        r.leaseToken++;
        r.leaseOwner = req.owner;
        r.leaseUntil = now + req.leaseMs;
        r.updatedAt = now;
        appendHistory(r.history, { state: JobState.Processing, at: now, reason: `claimed (attempt ${r.attempts})`, worker: req.owner });
        this.processing.add(r.id);
        out.push(this.snapshot(s));
      }
      if (out.length >= req.limit) break;
    }
    return out;
  }

  async extendLeases(leases: LeaseRef[], leaseMs: number, now: number): Promise<string[]> {
    const owned: string[] = [];
    for (const l of leases) {
      const s = this.owned(l);
      if (!s) continue;
      s.rec.leaseUntil = now + leaseMs;
      owned.push(l.id);
    }
    return owned;
  }

  async complete(outcomes: Outcome[], now: number): Promise<CompletionResult[]> {
    const out: CompletionResult[] = [];
    for (const o of outcomes) {
      const s = this.owned(o);
      if (!s) {
        out.push({ id: o.id, status: "lost" });
        continue;
      }
      const r = s.rec;
      this.processing.delete(r.id);
      r.leaseOwner = undefined;
      r.leaseUntil = undefined;
      r.updatedAt = now;
      switch (o.state) {
        case JobState.Succeeded:
          s.resultJson = o.result === undefined ? undefined : JSON.stringify(o.result);
          r.error = undefined;
          r.finishedAt = now;
          this.tally(now, "succeeded");
          break;
        case JobState.Failed:
          if (o.error) r.error = o.error;
          r.finishedAt = now;
          this.tally(now, "failed");
          break;
        case JobState.AwaitingRetry:
          if (o.error) r.error = o.error;
          r.runAt = o.runAt ?? now;
          break;
        case JobState.Enqueued:
          // A release keeps runAt: the job keeps its place at the head of its queue.
          if (!o.countAttempt) r.attempts = Math.max(0, r.attempts - 1);
          break;
        case JobState.Scheduled:
          if (!o.countAttempt) r.attempts = Math.max(0, r.attempts - 1);
          r.runAt = o.runAt ?? now;
          break;
      }
      this.setState(s, o.state);
      appendHistory(r.history, { state: o.state, at: now, reason: o.reason, worker: o.worker });
      this.place(s);
      out.push(FINISHED_STATES.includes(o.state) && this.edges.has(o.id) ? { id: o.id, status: "applied", dependents: true } : { id: o.id, status: "applied" });
    }
    this.prune(now);
    return out;
  }

  async promoteDue(now: number, limit: number): Promise<number> {
    return this.promote(now, limit);
  }

  async reclaimExpired(now: number, limit: number): Promise<number> {
    let n = 0;
    for (const id of [...this.processing]) {
      if (n >= limit) break;
      const s = this.jobs.get(id)!;
      const r = s.rec;
      if (r.leaseUntil === undefined || r.leaseUntil >= now) continue;
      this.processing.delete(id);
      const owner = r.leaseOwner;
      r.leaseOwner = undefined;
      r.leaseUntil = undefined;
      r.leaseToken++;
      r.updatedAt = now;
      if (r.attempts >= r.maxAttempts) {
        r.error = { name: "LeaseExpiredError", message: `lease expired on attempt ${r.attempts} of ${r.maxAttempts} (owner ${owner ?? "?"})` };
        r.finishedAt = now;
        this.setState(s, JobState.Failed);
        appendHistory(r.history, { state: JobState.Failed, at: now, reason: `lease expired; no attempts left (owner ${owner ?? "?"})` });
        this.tally(now, "failed");
      } else {
        r.runAt = now;
        this.setState(s, JobState.Enqueued);
        appendHistory(r.history, { state: JobState.Enqueued, at: now, reason: `lease expired (owner ${owner ?? "?"})` });
      }
      this.place(s);
      n++;
    }
    if (n > 0) this.prune(now);
    this.forgetRateCounts(now);
    return n;
  }

  async transition(req: TransitionRequest): Promise<Array<TransitionResult | null>> {
    const out = req.ids.map((id) => this.transitionOne(id, req));
    this.prune(req.now);
    return out;
  }

  private transitionOne(id: string, req: TransitionRequest): TransitionResult | null {
    const s = this.jobs.get(id);
    if (!s) return null;
    const r = s.rec;
    const { now, to } = req;
    if (!req.from.includes(r.state)) return { record: this.snapshot(s), applied: false };
    const waitingKey = r.state === JobState.Enqueued ? r.concurrencyKey : undefined;
    if (r.state === JobState.Awaiting) this.dropEdges(r);
    this.processing.delete(id);
    r.leaseOwner = undefined;
    r.leaseUntil = undefined;
    r.leaseToken++;
    r.updatedAt = now;
    if (to === JobState.Enqueued) {
      r.attempts = 0;
      r.runAt = now;
      r.error = undefined;
      r.finishedAt = undefined;
      r.progress = undefined;
      s.resultJson = undefined;
    } else {
      r.finishedAt = now;
      if (to === JobState.Failed) {
        if (req.error) r.error = { ...req.error };
        this.tally(now, "failed");
      }
    }
    this.setState(s, to);
    appendHistory(r.history, { state: to, at: now, reason: req.reason });
    this.place(s);
    if (waitingKey !== undefined) this.unparkOne(waitingKey);
    const result: TransitionResult = { record: this.snapshot(s), applied: true };
    if (to !== JobState.Enqueued && this.edges.has(id)) result.dependents = true;
    return result;
  }

  /** A job leaves `awaiting`: the edges it is the waiter of go. */
  private dropEdges(r: JobRecord): void {
    for (const dep of r.flow?.dependsOn ?? []) {
      const set = this.edges.get(dep);
      if (!set) continue;
      set.delete(r.id);
      if (set.size === 0) this.edges.delete(dep);
    }
  }

  async dependents(ids: string[]): Promise<string[]> {
    const out = new Set<string>();
    for (const id of ids) for (const w of this.edges.get(id) ?? []) out.add(w);
    return [...out];
  }

  async purge(states: JobState[], olderThan: number, limit: number): Promise<number> {
    let n = 0;
    for (const s of [...this.jobs.values()]) {
      if (n >= limit) break;
      if (states.includes(s.rec.state) && s.rec.updatedAt < olderThan) {
        this.remove(s);
        n++;
      }
    }
    return n;
  }

  async setProgress(lease: LeaseRef, progress: unknown, now: number): Promise<boolean> {
    const s = this.owned(lease);
    if (!s) return false;
    s.rec.progress = JSON.parse(JSON.stringify(progress ?? null));
    s.rec.updatedAt = now;
    return true;
  }

  // ------------------------------------------------------------ reads

  async get(ids: string[]): Promise<Array<JobRecord | null>> {
    return ids.map((id) => {
      const s = this.jobs.get(id);
      return s ? this.snapshot(s) : null;
    });
  }

  async list(filter: ListFilter, page: PageQuery): Promise<RecordPage> {
    const dir = page.order === "asc" ? 1 : -1;
    const after = page.after;
    const rows: Array<{ s: Stored; v: number }> = [];
    for (const s of this.jobs.values()) {
      const r = s.rec;
      // Arguments are parsed only when a text search needs them.
      if (!matchesFilter(filter.text ? { ...r, args: JSON.parse(s.argsJson) as unknown[] } : r, filter)) continue;
      const v = sortValue(r, page.sort);
      if (after && !(dir * (v - after.sortValue) > 0 || (v === after.sortValue && dir * compare(r.id, after.id) > 0))) continue;
      rows.push({ s, v });
    }
    rows.sort((a, b) => dir * (a.v - b.v) || dir * compare(a.s.rec.id, b.s.rec.id));
    const items = rows.slice(0, page.limit).map((x) => this.snapshot(x.s));
    const last = rows[page.limit - 1];
    return rows.length > page.limit && last ? { items, next: { sortValue: last.v, id: last.s.rec.id } } : { items };
  }

  async stats(req: StatsRequest): Promise<Stats> {
    const queues = [...this.queueCounts.entries()]
      .filter(([, c]) => Object.values(c).some((n) => n > 0))
      .map(([name, c]) => ({ name, counts: { ...c } }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const series = (map: Map<number, { succeeded: number; failed: number }>, size: number, count: number) =>
      bucketStarts(req.now, size, count).map((at) => ({ at, succeeded: map.get(at)?.succeeded ?? 0, failed: map.get(at)?.failed ?? 0 }));
    return {
      states: { ...this.counts },
      total: this.jobs.size,
      queues,
      perMinute: series(this.perMinute, MINUTE, req.minutes),
      perHour: series(this.perHour, HOUR, req.hours),
    };
  }

  // -------------------------------------------------------- recurring

  async upsertRecurring(def: RecurringDefinition): Promise<void> {
    const existing = this.recurring.get(def.id);
    const next: RecurringDefinition = JSON.parse(JSON.stringify(def));
    if (existing) {
      next.createdAt = existing.createdAt;
      if (existing.lastSlot !== undefined) next.lastSlot = existing.lastSlot;
    }
    this.recurring.set(def.id, next);
  }

  async listRecurring(): Promise<RecurringDefinition[]> {
    return [...this.recurring.values()].map((d) => JSON.parse(JSON.stringify(d)) as RecurringDefinition).sort((a, b) => a.id.localeCompare(b.id));
  }

  async removeRecurring(id: string): Promise<boolean> {
    return this.recurring.delete(id);
  }

  async markRecurringFired(id: string, slot: number): Promise<boolean> {
    const d = this.recurring.get(id);
    if (!d || (d.lastSlot !== undefined && d.lastSlot >= slot)) return false;
    d.lastSlot = slot;
    return true;
  }

  // -------------------------------------------------------- estimates

  async readEstimates(): Promise<Record<string, number>> {
    return Object.fromEntries(this.estimates);
  }

  async writeEstimates(estimates: Record<string, number>): Promise<void> {
    for (const [name, ms] of Object.entries(estimates)) this.estimates.set(name, ms);
  }

  // Key-value entries (kv.ts).
  async kvGet(key: string, now: number): Promise<string | undefined> {
    return this.kv.get(key, now);
  }

  async kvSet(key: string, value: string, expiresAt: number | undefined, now: number): Promise<void> {
    this.kv.set(key, value, expiresAt, now);
  }

  async kvAdd(key: string, value: string, expiresAt: number | undefined, now: number): Promise<string> {
    return this.kv.add(key, value, expiresAt, now);
  }

  async saveSteps(lease: LeaseRef, steps: StepRecord[], entry: HistoryEntry, now: number): Promise<boolean> {
    const s = this.owned(lease);
    if (!s) return false;
    s.rec.steps = JSON.parse(JSON.stringify(steps)) as StepRecord[];
    s.rec.updatedAt = now;
    appendHistory(s.rec.history, { ...entry });
    return true;
  }

  async addWaiter(event: string, id: string, expiresAt: number): Promise<void> {
    let ids = this.waiting.get(event);
    if (!ids) this.waiting.set(event, (ids = new Map()));
    ids.set(id, expiresAt);
  }

  async waiters(event: string, now: number, limit: number): Promise<string[]> {
    const ids = this.waiting.get(event);
    if (!ids) return [];
    const out: string[] = [];
    for (const [id, expiresAt] of ids) {
      if (expiresAt <= now) ids.delete(id);
      else if (out.length < limit) out.push(id);
    }
    if (ids.size === 0) this.waiting.delete(event);
    return out;
  }

  async removeWaiters(event: string, ids: string[]): Promise<void> {
    const map = this.waiting.get(event);
    if (!map) return;
    for (const id of ids) map.delete(id);
    if (map.size === 0) this.waiting.delete(event);
  }

  async kvDelete(key: string): Promise<boolean> {
    return this.kv.delete(key);
  }

  async kvHit(key: string, windowMs: number, now: number): Promise<KvHit> {
    return this.kv.hit(key, windowMs, now);
  }

  // ---------------------------------------------------------- helpers

  /** The stored job if `lease` still holds it. */
  private owned(lease: LeaseRef): Stored | undefined {
    const s = this.jobs.get(lease.id);
    return s && s.rec.state === JobState.Processing && s.rec.leaseToken === lease.token ? s : undefined;
  }

  private snapshot(s: Stored): JobRecord {
    const r: JobRecord = { ...s.rec, args: JSON.parse(s.argsJson) as unknown[], history: s.rec.history.map((h) => ({ ...h })) };
    if (s.resultJson !== undefined) r.result = JSON.parse(s.resultJson);
    if (r.metadata) r.metadata = JSON.parse(JSON.stringify(r.metadata));
    if (r.flow) r.flow = { ...r.flow, dependsOn: [...r.flow.dependsOn] };
    if (r.error) r.error = { ...r.error };
    if (r.steps) r.steps = JSON.parse(JSON.stringify(r.steps)) as StepRecord[];
    return r;
  }

  /** Puts a job into the structure its state needs (ready heap, delayed heap, finished list). */
  private place(s: Stored): void {
    const r = s.rec;
    s.seq = ++this.seq;
    if (r.state === JobState.Enqueued) {
      let heap = this.ready.get(r.queue);
      if (!heap) this.ready.set(r.queue, (heap = new Heap(readyLess)));
      heap.push({ id: r.id, priority: r.priority, runAt: r.runAt, order: s.order, seq: s.seq });
    } else if (DELAYED_STATES.includes(r.state)) {
      this.delayed.push({ id: r.id, runAt: r.runAt, seq: s.seq });
    } else if (FINISHED_STATES.includes(r.state)) {
      this.finished.push({ id: r.id, seq: s.seq, at: r.finishedAt ?? r.updatedAt });
    }
  }

  private promote(now: number, limit: number): number {
    let n = 0;
    while (n < limit) {
      const e = this.delayed.peek();
      if (!e || e.runAt > now) break;
      this.delayed.pop();
      const s = this.jobs.get(e.id);
      if (!s || s.seq !== e.seq || !DELAYED_STATES.includes(s.rec.state)) continue;
      const from = s.rec.state;
      this.setState(s, JobState.Enqueued);
      s.rec.updatedAt = now;
      appendHistory(s.rec.history, { state: JobState.Enqueued, at: now, reason: from === JobState.Scheduled ? "due" : "retry due" });
      this.place(s);
      n++;
    }
    return n;
  }

  private setState(s: Stored, to: JobState): void {
    const key = s.rec.concurrencyKey;
    if (key !== undefined && (s.rec.state === JobState.Processing) !== (to === JobState.Processing)) {
      if (to === JobState.Processing) this.active.set(key, (this.active.get(key) ?? 0) + 1);
      else this.freeSlot(key);
    }
    this.count(s.rec.queue, s.rec.state, -1);
    s.rec.state = to;
    this.count(s.rec.queue, to, +1);
  }

  private park(key: string, e: ParkedEntry): void {
    let heap = this.parked.get(key);
    if (!heap) this.parked.set(key, (heap = new Heap<ParkedEntry>(readyLess)));
    heap.push(e);
  }

  /** A job with the key left processing: the count goes down and one parked job goes back (unparkOne). */
  private freeSlot(key: string): void {
    const n = (this.active.get(key) ?? 1) - 1;
    if (n > 0) this.active.set(key, n);
    else this.active.delete(key);
    this.unparkOne(key);
  }

  /**
   * The best parked job of the key still waiting as parked goes back to its
   * queue. Once per freed slot, and when a waiting job of the key leaves its
   * queue by another way than a claim (deleted, put off by its rate limit):
   * it may be the one a freed slot sent back, and the slot would otherwise
   * wait for the next job of the key to finish.
   */
  private unparkOne(key: string): void {
    const heap = this.parked.get(key);
    while (heap && heap.size > 0) {
      const e = heap.pop()!;
      const s = this.jobs.get(e.id);
      if (!s || s.seq !== e.seq || s.rec.state !== JobState.Enqueued) continue;
      let ready = this.ready.get(e.queue);
      if (!ready) this.ready.set(e.queue, (ready = new Heap(readyLess)));
      ready.push(e);
      break;
    }
    if (heap && heap.size === 0) this.parked.delete(key);
  }

  /**
   * A rate-limited job about to be claimed takes its start: the one it holds
   * for this window, or the key's next. True when that start is now; else
   * the job waits, scheduled for its start's window.
   */
  private takeStart(s: Stored, now: number): boolean {
    const r = s.rec;
    const interval = r.rateInterval!;
    const limit = r.rateLimit!;
    const current = Math.floor(now / interval);
    if (r.rateWindow === current) {
      r.rateWindow = undefined;
      return true;
    }
    const count = this.rateCounts.get(r.rateKey!);
    const next = Math.max(count?.next ?? 0, current * limit);
    const window = Math.floor(next / limit);
    const until = (window + 1) * interval + RATE_COUNT_KEEP_MS;
    if (count) {
      count.next = next + 1;
      count.until = until;
    } else this.rateCounts.set(r.rateKey!, { next: next + 1, until });
    if (window === current) {
      r.rateWindow = undefined;
      return true;
    }
    r.rateWindow = window;
    r.runAt = window * interval;
    r.updatedAt = now;
    this.setState(s, JobState.Scheduled);
    if (r.concurrencyKey !== undefined) this.unparkOne(r.concurrencyKey);
    appendHistory(r.history, { state: JobState.Scheduled, at: now, reason: `rate limited (${r.rateKey}): starts at ${new Date(r.runAt).toISOString()}` });
    this.place(s);
    return false;
  }

  private count(queue: string, state: JobState, delta: number): void {
    this.counts[state] += delta;
    let q = this.queueCounts.get(queue);
    if (!q) this.queueCounts.set(queue, (q = emptyCounts()));
    q[state] += delta;
  }

  private tally(now: number, kind: "succeeded" | "failed"): void {
    for (const [map, size, keep] of [
      [this.perMinute, MINUTE, 24 * 60],
      [this.perHour, HOUR, 24 * 31],
    ] as const) {
      const at = Math.floor(now / size) * size;
      let b = map.get(at);
      if (!b) {
        map.set(at, (b = { succeeded: 0, failed: 0 }));
        if (map.size > keep) {
          const cutoff = at - keep * size;
          for (const k of map.keys()) if (k < cutoff) map.delete(k);
        }
      }
      b[kind]++;
    }
  }

  private remove(s: Stored): void {
    const r = s.rec;
    this.jobs.delete(r.id);
    this.processing.delete(r.id);
    if (r.state === JobState.Processing && r.concurrencyKey !== undefined) this.freeSlot(r.concurrencyKey);
    if (r.uniqueKey !== undefined && this.unique.get(r.uniqueKey) === r.id) this.unique.delete(r.uniqueKey);
    this.count(r.queue, r.state, -1);
    s.seq = -1;
  }

  /**
   * Forgets the rate counts whose last window ended RATE_COUNT_KEEP_MS ago,
   * as the SQL stores' housekeeping does, so a key used once does not stay
   * for the life of the process. The walk over every key runs at most once
   * a minute (a clock that went back counts as due).
   */
  private forgetRateCounts(now: number): void {
    if (now >= this.rateSweptAt && now < this.rateSweptAt + MINUTE) return;
    this.rateSweptAt = now;
    for (const [key, count] of this.rateCounts) if (count.until <= now) this.rateCounts.delete(key);
  }

  /**
   * Drops the oldest finished jobs past the count limit or the age limit.
   * A job others still wait for stays (its outcome decides theirs): it goes
   * to the back of the line, to be looked at again.
   */
  private prune(now: number): void {
    const cutoff = now - this.finishedTtl;
    const end = this.finished.length;
    while (this.finishedHead < end) {
      const e = this.finished[this.finishedHead]!;
      const s = this.jobs.get(e.id);
      const live = s !== undefined && s.seq === e.seq && FINISHED_STATES.includes(s.rec.state);
      if (live && this.counts.succeeded + this.counts.failed + this.counts.deleted <= this.maxFinished && e.at >= cutoff) break;
      if (live && this.edges.has(e.id)) this.finished.push({ ...e, at: now });
      else if (live) this.remove(s);
      this.finishedHead++;
    }
    if (this.finishedHead > 1024 && this.finishedHead * 2 > this.finished.length) {
      this.finished.splice(0, this.finishedHead);
      this.finishedHead = 0;
    }
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
