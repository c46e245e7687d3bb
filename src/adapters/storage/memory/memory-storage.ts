/**
 * MemoryStorage: the whole Storage contract in one process.
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
import { DELAYED_STATES, FINISHED_STATES, JobState, appendHistory, type JobRecord } from "../../../core/job.js";
import {
  HOUR,
  MINUTE,
  Storage,
  bucketStarts,
  decodeCursor,
  emptyCounts,
  encodeCursor,
  matchesFilter,
  sortValue,
  type ClaimRequest,
  type CompletionResult,
  type InsertResult,
  type LeaseRef,
  type ListFilter,
  type Outcome,
  type Page,
  type RecurringDefinition,
  type StateCounts,
  type Stats,
  type StatsRequest,
  type StorageOptions,
  type TransitionResult,
} from "../../../core/storage.js";
import { Heap } from "./heap.js";

export interface MemoryStorageOptions extends StorageOptions {
  /** Finished (succeeded, failed, deleted) jobs kept; the oldest are pruned past it (default 10,000). */
  maxFinishedJobs?: number;
  /** Finished jobs older than this are pruned, in ms (default 24 h). */
  finishedJobTtlMs?: number;
}

interface Stored {
  rec: JobRecord; // rec.args / rec.result are not used: see argsJson / resultJson
  argsJson: string;
  resultJson: string | undefined;
  /** Bumped whenever the job enters a heap or the finished list; older entries are stale. */
  seq: number;
}

interface ReadyEntry {
  id: string;
  priority: number;
  runAt: number;
  seq: number;
}
interface DelayedEntry {
  id: string;
  runAt: number;
  seq: number;
}

const readyLess = (a: ReadyEntry, b: ReadyEntry) =>
  a.priority !== b.priority ? a.priority > b.priority : a.runAt !== b.runAt ? a.runAt < b.runAt : a.seq < b.seq;
const delayedLess = (a: DelayedEntry, b: DelayedEntry) => (a.runAt !== b.runAt ? a.runAt < b.runAt : a.seq < b.seq);

export class MemoryStorage extends Storage {
  readonly kind = "memory";
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
  private seq = 0;
  private readonly maxFinished: number;
  private readonly finishedTtl: number;

  constructor(options: MemoryStorageOptions = {}) {
    super(options);
    this.maxFinished = options.maxFinishedJobs ?? 10_000;
    this.finishedTtl = options.finishedJobTtlMs ?? 24 * HOUR;
  }

  async migrate(): Promise<void> {}
  async close(): Promise<void> {}

  // ----------------------------------------------------------- writes

  async insertJobs(records: JobRecord[], now: number): Promise<InsertResult[]> {
    const out: InsertResult[] = [];
    for (const r of records) {
      if (r.uniqueKey !== undefined) {
        const existing = this.unique.get(r.uniqueKey);
        if (existing !== undefined) {
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
        metadata: undefined,
        ...r,
        result: undefined,
        args: [],
        history: [...r.history],
      };
      const s: Stored = { rec, argsJson: JSON.stringify(r.args), resultJson: undefined, seq: 0 };
      this.jobs.set(r.id, s);
      if (r.uniqueKey !== undefined) this.unique.set(r.uniqueKey, r.id);
      this.count(r.queue, r.state, +1);
      this.place(s);
      out.push({ id: r.id, created: true });
    }
    this.prune(now);
    return out;
  }

  async claim(req: ClaimRequest): Promise<JobRecord[]> {
    const { now } = req;
    this.promote(now, Infinity);
    const out: JobRecord[] = [];
    for (const queue of req.queues) {
      const heap = this.ready.get(queue);
      while (heap && heap.size > 0 && out.length < req.limit) {
        const e = heap.pop()!;
        const s = this.jobs.get(e.id);
        if (!s || s.seq !== e.seq || s.rec.state !== JobState.Enqueued) continue;
        const r = s.rec;
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
          r.attempts = Math.max(0, r.attempts - 1);
          r.runAt = now;
          break;
      }
      this.setState(s, o.state);
      appendHistory(r.history, { state: o.state, at: now, reason: o.reason, worker: o.worker });
      this.place(s);
      out.push({ id: o.id, status: "applied" });
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
    return n;
  }

  async transition(id: string, from: JobState[], to: typeof JobState.Deleted | typeof JobState.Enqueued, reason: string, now: number): Promise<TransitionResult | null> {
    const s = this.jobs.get(id);
    if (!s) return null;
    const r = s.rec;
    if (!from.includes(r.state)) return { record: this.snapshot(s), applied: false };
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
    }
    this.setState(s, to);
    appendHistory(r.history, { state: to, at: now, reason });
    this.place(s);
    this.prune(now);
    return { record: this.snapshot(s), applied: true };
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

  async getRecord(id: string): Promise<JobRecord | null> {
    const s = this.jobs.get(id);
    return s ? this.snapshot(s) : null;
  }

  async listRecords(filter: ListFilter, page: { limit: number; sort: "createdAt" | "updatedAt" | "runAt"; order: "asc" | "desc"; cursor?: string }): Promise<Page<JobRecord>> {
    const dir = page.order === "asc" ? 1 : -1;
    const after = page.cursor ? decodeCursor(page.cursor) : undefined;
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
    return rows.length > page.limit && last ? { items, nextCursor: encodeCursor(last.v, last.s.rec.id) } : { items };
  }

  async statsAt(req: Required<StatsRequest>): Promise<Stats> {
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
    if (r.error) r.error = { ...r.error };
    return r;
  }

  /** Puts a job into the structure its state needs (ready heap, delayed heap, finished list). */
  private place(s: Stored): void {
    const r = s.rec;
    s.seq = ++this.seq;
    if (r.state === JobState.Enqueued) {
      let heap = this.ready.get(r.queue);
      if (!heap) this.ready.set(r.queue, (heap = new Heap(readyLess)));
      heap.push({ id: r.id, priority: r.priority, runAt: r.runAt, seq: s.seq });
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
    this.count(s.rec.queue, s.rec.state, -1);
    s.rec.state = to;
    this.count(s.rec.queue, to, +1);
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
    if (r.uniqueKey !== undefined && this.unique.get(r.uniqueKey) === r.id) this.unique.delete(r.uniqueKey);
    this.count(r.queue, r.state, -1);
    s.seq = -1;
  }

  /** Drops the oldest finished jobs past the count limit or the age limit. */
  private prune(now: number): void {
    const cutoff = now - this.finishedTtl;
    while (this.finishedHead < this.finished.length) {
      const e = this.finished[this.finishedHead]!;
      const s = this.jobs.get(e.id);
      const live = s !== undefined && s.seq === e.seq && FINISHED_STATES.includes(s.rec.state);
      if (live && this.counts.succeeded + this.counts.failed + this.counts.deleted <= this.maxFinished && e.at >= cutoff) break;
      if (live) this.remove(s);
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
