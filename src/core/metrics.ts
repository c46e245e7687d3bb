/**
 * Prometheus metrics: counters and histograms fed by the engine's events in
 * this process (an isolate on Workers, an instance on Lambda), and gauges of
 * queue depth read from the store at scrape time, written in the text
 * exposition format (version 0.0.4). Web Standards only, and no
 * prom-client: the format is small, and the Worker bundle's size matters.
 *
 * Label cardinality is bounded: the only label values are queue names, job
 * names and states, and at most `maxLabelSets` distinct (queue, name) pairs
 * are kept (default 1000); a pair first seen beyond that is counted under
 * queue="other", name="other". Queue-depth gauges keep at most as many
 * queues, the rest summed under queue="other".
 *
 * Counters here never see another process's work: on a fleet, sum them
 * (`sum by (queue, name) (rate(...))`). The depth gauges come from the
 * store, so every process reports the same, store-wide figures.
 */
import { systemClock, type Clock } from "./clock.js";
import { ConfigError } from "./errors.js";
import type { JobEventMap } from "./events.js";
import { ALL_STATES, type JobRecord } from "./job.js";
import type { Stats } from "./driver.js";
import type { Storage } from "./storage.js";

const METRICS = { scope: "metrics" };

/** Label value of the (queue, name) pairs past the cap. */
export const OVERFLOW_LABEL = "other";

/**
 * Seconds, from a quick in-process run to a job that waited out a long
 * backoff: 5 ms to an hour. Every bucket is a series per (queue, name), so
 * 16 and not more.
 */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export interface JobMetricsOptions {
  /** Distinct (queue, name) pairs kept before new ones count as "other" (default 1000). */
  maxLabelSets?: number;
  /** Upper bounds of the histograms' buckets, in seconds, ascending (default DEFAULT_BUCKETS). */
  buckets?: readonly number[];
  /** The clock a start is timed against to measure its wait (default the system's). */
  clock?: Clock;
}

/** What the engine emits, as BackgroundJobServer and an Emitter both offer it. */
export interface EventSource {
  on<K extends keyof JobEventMap>(event: K, fn: (payload: JobEventMap[K]) => void): () => void;
}

type Counter = "enqueued" | "started" | "succeeded" | "failed" | "retried" | "cancelled" | "suspended";
const COUNTERS: ReadonlyArray<{ key: Counter; help: string }> = [
  { key: "enqueued", help: "Jobs enqueued through this process (a debounced enqueue that replaces a waiting job counts too)." },
  { key: "started", help: "Attempts started by this process (isolate, instance)." },
  { key: "succeeded", help: "Attempts that succeeded in this process (isolate, instance)." },
  { key: "failed", help: "Jobs that failed for good in this process (no attempts left, or not retryable)." },
  { key: "retried", help: "Failed attempts in this process after which another attempt is scheduled." },
  { key: "cancelled", help: "Running jobs of this process that were cancelled or deleted." },
  { key: "suspended", help: "Runs whose durable steps suspended the job (a sleep, an event wait, a step's retry, an invocation's deadline between steps)." },
];

interface LabelSet {
  queue: string;
  name: string;
  /** `queue="…",name="…"`, escaped once. */
  text: string;
}

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length).fill(0);
  }
  observe(seconds: number): void {
    const v = Number.isFinite(seconds) ? Math.max(0, seconds) : 0;
    this.sum += v;
    this.count++;
    // Per bucket, not cumulative: summed when written, so an observation costs one increment.
    const i = this.bounds.findIndex((b) => v <= b);
    if (i >= 0) this.counts[i]!++;
  }
}

/** Queue depth by state, read from the store at scrape time. */
export type QueueDepths = Pick<Stats, "queues">;

/** Escapes a label value: backslash, double quote and line feed (the exposition format's three). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatNumber(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (Number.isNaN(v)) return "NaN";
  return String(v);
}

export class JobMetrics {
  readonly maxLabelSets: number;
  readonly buckets: readonly number[];
  private readonly clock: Clock;
  private readonly labelSets = new Map<string, LabelSet>();
  private readonly overflow: LabelSet = {
    queue: OVERFLOW_LABEL,
    name: OVERFLOW_LABEL,
    text: `queue="${OVERFLOW_LABEL}",name="${OVERFLOW_LABEL}"`,
  };
  private readonly counters = new Map<Counter, Map<LabelSet, number>>(COUNTERS.map((c) => [c.key, new Map()]));
  private readonly wait = new Map<LabelSet, Histogram>();
  private readonly run = new Map<LabelSet, Histogram>();
  private reclaimedTotal = 0;
  private readonly storages = new WeakSet<Storage>();

  constructor(options: JobMetricsOptions = {}) {
    const max = options.maxLabelSets ?? 1000;
    if (!Number.isInteger(max) || max < 1) throw new ConfigError("maxLabelSets must be an integer >= 1", METRICS);
    const buckets = options.buckets ?? DEFAULT_BUCKETS;
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!)))
      throw new ConfigError("buckets must be finite and ascending", METRICS);
    this.maxLabelSets = max;
    this.buckets = [...buckets];
    this.clock = options.clock ?? systemClock;
  }

  /** Distinct (queue, name) pairs counted so far, the "other" pair not included. */
  get labelSetCount(): number {
    return this.labelSets.size;
  }

  /** Counts what a BackgroundJobServer (or a tick's Emitter) emits. Returns a function that stops counting. */
  observe(source: EventSource): () => void {
    const offs = [
      source.on("job:start", ({ job }) => {
        const l = this.labels(job);
        this.inc("started", l);
        // From when the job was due (enqueued, or its scheduled or retry time) to its start.
        this.histogram(this.wait, l).observe((this.clock.now() - job.runAt) / 1000);
      }),
      source.on("job:succeeded", ({ job, durationMs }) => this.outcome("succeeded", job, durationMs)),
      source.on("job:failed", ({ job, durationMs }) => this.outcome("failed", job, durationMs)),
      source.on("job:retry", ({ job, durationMs }) => this.outcome("retried", job, durationMs)),
      source.on("job:cancelled", ({ job }) => this.inc("cancelled", this.labels(job))),
      source.on("job:suspended", ({ job }) => this.inc("suspended", this.labels(job))),
      source.on("jobs:reclaimed", ({ count }) => this.countReclaimed(count)),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /**
   * Counts the jobs enqueued through this Storage object (jobs other
   * processes enqueue are theirs to count). Once per storage, however often
   * asked; returns a function that stops counting.
   */
  observeEnqueues(storage: Storage): () => void {
    if (this.storages.has(storage)) return () => {};
    this.storages.add(storage);
    const off = storage.onEnqueue(
      (jobs) => {
        // Only new jobs carry their name; a requeue or a resumed queue announces ids alone.
        for (const j of jobs) if (j.name !== undefined) this.inc("enqueued", this.labels({ queue: j.queue, name: j.name }));
      },
      { remote: false },
    );
    return () => {
      this.storages.delete(storage);
      off();
    };
  }

  /** Jobs whose lease had expired, handed back by the store (it reports a count, not which jobs). */
  countReclaimed(count: number): void {
    if (Number.isFinite(count) && count > 0) this.reclaimedTotal += count;
  }

  /** The exposition text: every counter and histogram, and the depth gauges when `depths` is given (`storeUp` false: the read failed). */
  render(depths?: QueueDepths, storeUp = depths !== undefined): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const { key, help } of COUNTERS) {
      const name = `qml_jobs_${key}_total`;
      family(name, "counter", help);
      for (const [l, v] of this.counters.get(key)!) out.push(`${name}{${l.text}} ${formatNumber(v)}`);
    }
    family(
      "qml_jobs_reclaimed_total",
      "counter",
      "Jobs whose lease expired, handed back to their queue (or failed) by this process's housekeeping; the store reports a count, not which jobs.",
    );
    out.push(`qml_jobs_reclaimed_total ${formatNumber(this.reclaimedTotal)}`);
    this.renderHistogram(
      out,
      "qml_job_wait_seconds",
      "Time from when a job was due (enqueued, scheduled or retry time) to its start in this process (isolate, instance).",
      this.wait,
    );
    this.renderHistogram(out, "qml_job_run_seconds", "Run time of the attempts this process finished (succeeded, failed or retried).", this.run);
    family("qml_queue_jobs", "gauge", "Jobs in the store by queue and state (every process reports the same figures).");
    if (depths) for (const line of this.depthLines(depths)) out.push(line);
    family("qml_store_up", "gauge", "1 when this scrape read the queue depths from the store, 0 when the read failed.");
    out.push(`qml_store_up ${storeUp ? 1 : 0}`);
    return out.join("\n") + "\n";
  }

  private renderHistogram(out: string[], name: string, help: string, map: Map<LabelSet, Histogram>): void {
    out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} histogram`);
    for (const [l, h] of map) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += h.counts[i]!;
        out.push(`${name}_bucket{${l.text},le="${formatNumber(b)}"} ${cumulative}`);
      });
      out.push(`${name}_bucket{${l.text},le="+Inf"} ${h.count}`, `${name}_sum{${l.text}} ${formatNumber(h.sum)}`, `${name}_count{${l.text}} ${h.count}`);
    }
  }

  private depthLines(depths: QueueDepths): string[] {
    const byQueue = new Map<string, Record<string, number>>();
    for (const q of depths.queues) {
      const key = byQueue.has(q.name) || byQueue.size < this.maxLabelSets ? q.name : OVERFLOW_LABEL;
      const acc = byQueue.get(key) ?? {};
      for (const s of ALL_STATES) acc[s] = (acc[s] ?? 0) + (q.counts[s] ?? 0);
      byQueue.set(key, acc);
    }
    const lines: string[] = [];
    for (const [queue, counts] of byQueue) {
      for (const s of ALL_STATES) lines.push(`qml_queue_jobs{queue="${escapeLabelValue(queue)}",state="${s}"} ${formatNumber(counts[s] ?? 0)}`);
    }
    return lines;
  }

  private outcome(kind: "succeeded" | "failed" | "retried", job: JobRecord, durationMs: number): void {
    const l = this.labels(job);
    this.inc(kind, l);
    this.histogram(this.run, l).observe(durationMs / 1000);
  }

  private labels(job: { queue: string; name: string }): LabelSet {
    const key = `${job.queue}\u0000${job.name}`;
    let l = this.labelSets.get(key);
    if (l) return l;
    if (this.labelSets.size >= this.maxLabelSets) return this.overflow;
    l = { queue: job.queue, name: job.name, text: `queue="${escapeLabelValue(job.queue)}",name="${escapeLabelValue(job.name)}"` };
    this.labelSets.set(key, l);
    return l;
  }

  private inc(kind: Counter, l: LabelSet): void {
    const m = this.counters.get(kind)!;
    m.set(l, (m.get(l) ?? 0) + 1);
  }

  private histogram(map: Map<LabelSet, Histogram>, l: LabelSet): Histogram {
    let h = map.get(l);
    if (!h) map.set(l, (h = new Histogram(this.buckets)));
    return h;
  }
}

let processWide: JobMetrics | undefined;

/**
 * This process's collector (an isolate's on Workers, an instance's on
 * Lambda): the one the Node server, the serverless consumer and createApp
 * use unless given another.
 */
export function processMetrics(): JobMetrics {
  return (processWide ??= new JobMetrics());
}
