/**
 * The benchmark harness: one workload, the same for every contender.
 *
 * A contender is a queue system plus its settings (qml over one store and
 * driver, or a peer). It is written as a small adapter (`QueueAdapter`:
 * enqueue one, enqueue many, start a worker pool with a handler) and the
 * harness turns every adapter into the same measured `Contender`, so no
 * contender measures itself.
 *
 * Phases, each in a fresh namespace (Redis key prefix or Postgres schema)
 * of the contender's own database / prefix:
 * - enqueue single: N single enqueue calls, at most `inflight` in flight;
 * - enqueue bulk: N jobs in calls of `bulkBatch`;
 * - process(c): N jobs enqueued beforehand (untimed), then a worker pool of
 *   concurrency c with a no-op handler; throughput is measured from the
 *   first handler start to the N-th (startup excluded for everyone);
 * - latency: a pool of concurrency 20, jobs enqueued every 10 ms; latency
 *   is from just before the enqueue call to the handler's start;
 * - idle: a pool of concurrency 20 and an open producer with nothing to do;
 *   store requests counted by a proxy (see proxy.ts) over a window.
 * Every handler records its job's payload index: each phase checks that
 * every job ran exactly once (no job missing, none run twice).
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuPerJob, cpuSample, type CpuPerJob } from "./cpu.js";
import { startCountingProxy, type CountingProxy } from "./proxy.js";
import { DATABASE_URL, REDIS_URL, createDatabase, deleteKeys, dropDatabase, hostPort, withHostPort } from "./services.js";

// ---------------------------------------------------------------- the seam

/** The small JSON payload every job carries. `t` is the enqueue time (latency phase), else 0. */
export interface Payload {
  i: number;
  t: number;
  user: string;
  email: string;
  plan: string;
}

export function payload(i: number, t = 0): Payload {
  return { i, t, user: `user-${i}`, email: `user${i}@example.com`, plan: "pro" };
}

export type Store = "memory" | "redis" | "postgres";

/** Where the contender connects: the real servers, or counting proxies in front of them. */
export interface Endpoints {
  redisUrl: string;
  /** The contender's own database. */
  databaseUrl: string;
  /**
   * qml only: called on every Storage seam call (the memory store has no
   * wire, so its requests are counted here); may return a callback for the
   * call's result (bench/tools/seam-timing.ts times calls with it).
   */
  onStoreCall?: (method: string, args: unknown[]) => void | ((result: unknown) => void);
}

export type Handler = (p: Payload) => void;

export interface RunningWorker {
  /** Graceful: running jobs finish and their outcomes are written. */
  stop(): Promise<void>;
}

export interface Producer {
  enqueue(p: Payload): Promise<void>;
  close(): Promise<void>;
}

/** One isolated namespace of a queue system: a key prefix, a schema. */
export interface Namespace {
  enqueue(p: Payload): Promise<void>;
  enqueueMany(ps: Payload[]): Promise<void>;
  startWorker(concurrency: number, handler: Handler): Promise<RunningWorker>;
  /**
   * A second, separate client of the same namespace. Only qml has one: its
   * server is woken at once by enqueues through its own Storage object, so
   * latency is also measured with a producer that cannot wake it that way.
   */
  openProducer?(): Promise<Producer>;
  close(): Promise<void>;
}

export interface QueueAdapter {
  readonly name: string;
  readonly label: string;
  readonly store: Store;
  /** Settings that differ from the defaults, for the report. */
  readonly settings: string;
  /** The idle target: at most one store request per polling interval. */
  readonly pollingIntervalMs?: number;
  /** Drivers that speak HTTP (fetch): the idle phase also counts their HTTP requests. */
  readonly http?: boolean;
  /** Phases that tell something about this variant (default: all). */
  readonly phases?: Phase[];
  /** `ns`: lowercase letters, digits and "_", unique per run and phase. */
  open(ns: string, endpoints: Endpoints): Promise<Namespace>;
  /** Stops what `open` started once per adapter (gateways). */
  close?(): Promise<void>;
}

export type AdapterFactory = () => QueueAdapter | Promise<QueueAdapter>;

// -------------------------------------------------------------- options

export interface BenchOptions {
  /** Jobs per throughput phase. */
  n: number;
  inflight: number;
  bulkBatch: number;
  concurrencies: number[];
  latencyJobs: number;
  latencySpacingMs: number;
  latencyConcurrency: number;
  idleConcurrency: number;
  idleWarmupMs: number;
  idleWindowMs: number;
  /** Jobs of the requests-per-job phase (at concurrency 20). */
  requestsJobs: number;
  /** A process phase that has not finished by then is reported as partial. */
  processTimeoutMs: number;
  phases: Phase[];
  log: (line: string) => void;
  /** Called with the result so far after every phase (a child sends it to the parent, in case it dies). */
  onProgress?: (partial: ContenderResult) => void;
}

export const PHASES = ["enqueue", "process", "latency", "idle", "requests"] as const;
export type Phase = (typeof PHASES)[number];

export function defaultOptions(quick: boolean): BenchOptions {
  return quick
    ? {
        n: 500,
        inflight: 50,
        bulkBatch: 100,
        concurrencies: [1, 20, 100],
        latencyJobs: 30,
        latencySpacingMs: 10,
        latencyConcurrency: 20,
        idleConcurrency: 20,
        idleWarmupMs: 200,
        idleWindowMs: 1000,
        requestsJobs: 200,
        processTimeoutMs: 10_000,
        phases: [...PHASES],
        log: () => {},
      }
    : {
        n: 20_000,
        inflight: 50,
        bulkBatch: 1000,
        concurrencies: [1, 20, 100],
        latencyJobs: 500,
        latencySpacingMs: 10,
        latencyConcurrency: 20,
        idleConcurrency: 20,
        // qml's idle back-off reaches its ceiling (5 s) after about 12 s
        idleWarmupMs: 15_000,
        idleWindowMs: 30_000,
        requestsJobs: 5000,
        processTimeoutMs: 60_000,
        phases: [...PHASES],
        log: () => {},
      };
}

// -------------------------------------------------------------- results

export interface ExactlyOnce {
  expected: number;
  ran: number;
  distinct: number;
  duplicates: number;
  missing: number;
  ok: boolean;
}

export interface ThroughputResult {
  jobs: number;
  ms: number;
  perSecond: number;
  /** False when the phase hit its time limit: `jobs` of the N ran. */
  complete: boolean;
  exactlyOnce?: ExactlyOnce;
  /** Process phases: CPU µs per job, from the worker's start to the last job (bench/cpu.ts). */
  cpuUsPerJob?: CpuPerJob;
  error?: string;
}

export interface LatencyResult {
  jobs: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
  exactlyOnce: ExactlyOnce;
  error?: string;
}

export interface IdleResult {
  windowMs: number;
  /** Store requests (Redis commands, Postgres statements, memory storage calls) per minute. */
  requestsPerMinute: number;
  /** fetch() calls per minute, for HTTP drivers. */
  httpRequestsPerMinute?: number;
  /** The idle target for qml: 60000 / pollingInterval. */
  budgetPerMinute?: number;
  unit: string;
  error?: string;
}

export interface RequestsResult {
  concurrency: number;
  /** Jobs processed (all N unless the phase hit its time limit). */
  jobs: number;
  complete: boolean;
  unit: string;
  enqueueBulkPerJob: number;
  processPerJob: number;
  httpEnqueueBulkPerJob?: number;
  httpProcessPerJob?: number;
  error?: string;
}

export interface ContenderResult {
  name: string;
  label: string;
  store: Store;
  settings: string;
  enqueueSingle?: ThroughputResult;
  enqueueBulk?: ThroughputResult;
  /** By concurrency. */
  process: Record<string, ThroughputResult>;
  latency?: LatencyResult;
  /** qml only: producer with its own Storage object (no in-process wake-up). */
  latencyRemote?: LatencyResult;
  idle?: IdleResult;
  requests?: RequestsResult;
  error?: string;
  wallMs: number;
}

// -------------------------------------------------------------- tracking

/** Which payload indices ran, how often, and when the first and last ran. */
export class Tracker {
  private readonly runs: Uint16Array;
  ran = 0;
  distinct = 0;
  firstAt = 0;
  lastAt = 0;
  private waiters: Array<{ until: () => boolean; done: () => void }> = [];

  constructor(readonly expected: number) {
    this.runs = new Uint16Array(expected);
  }

  readonly hit = (i: number): void => {
    const now = performance.now();
    if (this.ran === 0) this.firstAt = now;
    this.ran++;
    if (i >= 0 && i < this.expected && this.runs[i]!++ === 0) {
      this.distinct++;
      this.lastAt = now;
    }
    if (this.waiters.length > 0) for (const w of [...this.waiters]) if (w.until()) w.done();
  };

  /** Resolves true once `until()` holds, false at the timeout. */
  waitFor(until: () => boolean, timeoutMs: number): Promise<boolean> {
    if (until()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        until,
        done: () => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Resolves true when every index ran, false at the timeout. */
  waitAll(timeoutMs: number): Promise<boolean> {
    return this.waitFor(() => this.distinct === this.expected, timeoutMs);
  }

  check(): ExactlyOnce {
    let duplicates = 0;
    for (let i = 0; i < this.expected; i++) if (this.runs[i]! > 1) duplicates += this.runs[i]! - 1;
    const missing = this.expected - this.distinct;
    return {
      expected: this.expected,
      ran: this.ran,
      distinct: this.distinct,
      duplicates,
      missing,
      ok: duplicates === 0 && missing === 0 && this.ran === this.expected,
    };
  }
}

/** Runs `count` tasks with at most `limit` in flight. */
export async function bounded(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const lane = async () => {
    while (next < count && failure === undefined) {
      const i = next++;
      try {
        await task(i);
      } catch (e) {
        failure = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
  if (failure !== undefined) throw failure;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function message(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Resolves to the promise's value, or throws after `ms` (a stuck shutdown must not hang the run). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------ the phases

export class Contender {
  private seq = 0;
  private dbName: string | undefined;
  private endpoints: Endpoints = { redisUrl: REDIS_URL, databaseUrl: DATABASE_URL };

  constructor(
    readonly adapter: QueueAdapter,
    readonly runId: string,
    readonly options: BenchOptions,
  ) {}

  get name(): string {
    return this.adapter.name;
  }

  private nsFor(phase: string): string {
    return `qb${this.runId}_${String(++this.seq).padStart(2, "0")}${phase}`.slice(0, 60);
  }

  /** A fresh database (Postgres) for this contender; Redis namespaces are key prefixes under the run id. */
  async setup(): Promise<void> {
    if (this.adapter.store === "postgres") {
      this.dbName = `qb${this.runId}_${this.adapter.name.replace(/[^a-z0-9]/g, "_")}`.slice(0, 60);
      this.endpoints = { ...this.endpoints, databaseUrl: await createDatabase(this.dbName) };
    }
  }

  async teardown(): Promise<void> {
    const errors: unknown[] = [];
    try {
      await this.adapter.close?.();
    } catch (e) {
      errors.push(e);
    }
    if (this.dbName) {
      try {
        await dropDatabase(this.dbName);
      } catch (e) {
        errors.push(e);
      }
    }
    if (this.adapter.store === "redis") {
      try {
        await deleteKeys(`*qb${this.runId}_*`);
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  async enqueueSingle(n: number, inflight: number): Promise<ThroughputResult> {
    const ns = await this.adapter.open(this.nsFor("enq1"), this.endpoints);
    try {
      const t0 = performance.now();
      await bounded(n, inflight, (i) => ns.enqueue(payload(i)));
      const ms = performance.now() - t0;
      return { jobs: n, ms: round(ms), perSecond: round((n / ms) * 1000, 0), complete: true };
    } finally {
      await ns.close();
    }
  }

  async enqueueBulk(n: number, batch: number): Promise<ThroughputResult> {
    const ns = await this.adapter.open(this.nsFor("enqn"), this.endpoints);
    try {
      const batches = chunks(n, batch);
      const t0 = performance.now();
      for (const b of batches) await ns.enqueueMany(b);
      const ms = performance.now() - t0;
      return { jobs: n, ms: round(ms), perSecond: round((n / ms) * 1000, 0), complete: true };
    } finally {
      await ns.close();
    }
  }

  async process(concurrency: number, n: number): Promise<ThroughputResult> {
    const ns = await this.adapter.open(this.nsFor(`proc${concurrency}`), this.endpoints);
    try {
      for (const b of chunks(n, 1000)) await ns.enqueueMany(b);
      const tracker = new Tracker(n);
      const cpu0 = cpuSample();
      const worker = await ns.startWorker(concurrency, (p) => tracker.hit(p.i));
      const complete = await tracker.waitAll(this.options.processTimeoutMs);
      const elapsedAtEnd = performance.now();
      const cpu1 = cpuSample();
      await within(worker.stop(), 60_000, "stopping the worker");
      const exactlyOnce = tracker.check();
      // First handler start to last (startup excluded); a partial run counts to the time limit.
      const ms = complete ? tracker.lastAt - tracker.firstAt : elapsedAtEnd - (tracker.firstAt || elapsedAtEnd);
      const jobs = complete ? n : tracker.distinct;
      const intervals = complete ? n - 1 : jobs;
      const perSecond = ms > 0 ? (intervals / ms) * 1000 : jobs > 0 ? Infinity : 0;
      if (complete && !exactlyOnce.ok) throw new Error(`exactly-once violated: ${JSON.stringify(exactlyOnce)}`);
      if (!complete && exactlyOnce.duplicates > 0) throw new Error(`jobs ran twice: ${JSON.stringify(exactlyOnce)}`);
      const cpuUsPerJob = cpuPerJob(cpu0, cpu1, jobs, this.adapter.store);
      return { jobs, ms: round(ms), perSecond: round(perSecond, 0), complete, exactlyOnce, cpuUsPerJob };
    } finally {
      await ns.close();
    }
  }

  async latency(count: number, spacingMs: number, concurrency: number, remoteProducer = false): Promise<LatencyResult> {
    const ns = await this.adapter.open(this.nsFor(remoteProducer ? "latr" : "lat"), this.endpoints);
    let producer: Producer | undefined;
    try {
      if (remoteProducer) {
        if (!ns.openProducer) throw new Error("no separate producer for this contender");
        producer = await ns.openProducer();
      }
      const enqueue = producer ? (p: Payload) => producer!.enqueue(p) : (p: Payload) => ns.enqueue(p);
      // Index `count` is the warm-up job: connections open, the worker polls.
      const tracker = new Tracker(count + 1);
      const samples: number[] = [];
      const worker = await ns.startWorker(concurrency, (p) => {
        if (p.i < count) samples.push(performance.now() - p.t);
        tracker.hit(p.i);
      });
      try {
        await enqueue(payload(count, performance.now()));
        if (!(await tracker.waitFor(() => tracker.ran > 0, 30_000))) throw new Error("the warm-up job did not run within 30 s");
        const failures: unknown[] = [];
        const start = performance.now();
        for (let i = 0; i < count; i++) {
          const due = start + i * spacingMs;
          const wait = due - performance.now();
          if (wait > 1) await sleep(wait);
          // Not awaited: a slow enqueue must not push the following ones back.
          enqueue(payload(i, performance.now())).catch((e) => failures.push(e));
        }
        const all = await tracker.waitAll(30_000 + count * spacingMs);
        if (failures.length > 0) throw failures[0];
        if (!all) throw new Error(`only ${tracker.distinct - 1} of ${count} jobs ran within the time limit`);
      } finally {
        await within(worker.stop(), 60_000, "stopping the worker");
      }
      const exactlyOnce = tracker.check();
      if (!exactlyOnce.ok) throw new Error(`exactly-once violated: ${JSON.stringify(exactlyOnce)}`);
      const sorted = samples.sort((a, b) => a - b);
      return {
        jobs: count,
        p50: round(percentile(sorted, 50)),
        p95: round(percentile(sorted, 95)),
        p99: round(percentile(sorted, 99)),
        max: round(sorted[sorted.length - 1] ?? NaN),
        mean: round(sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length)),
        exactlyOnce,
      };
    } finally {
      await producer?.close();
      await ns.close();
    }
  }

  /**
   * Endpoints through a counting proxy (memory: a storage-call counter), and
   * a fetch counter for HTTP drivers. `count()` and `fetches()` are totals.
   */
  private async counted<T>(fn: (endpoints: Endpoints, counters: { count(): number; fetches(): number; unit: string }) => Promise<T>): Promise<T> {
    let proxy: CountingProxy | undefined;
    let storeCalls = 0;
    let unit: string;
    const endpoints: Endpoints = { ...this.endpoints };
    if (this.adapter.store === "redis") {
      proxy = await startCountingProxy(hostPort(REDIS_URL, 6379), "resp");
      endpoints.redisUrl = withHostPort(REDIS_URL, "127.0.0.1", proxy.port);
      unit = "Redis commands";
    } else if (this.adapter.store === "postgres") {
      proxy = await startCountingProxy(hostPort(this.endpoints.databaseUrl, 5432), "postgres");
      endpoints.databaseUrl = withHostPort(this.endpoints.databaseUrl, "127.0.0.1", proxy.port);
      unit = "SQL statements";
    } else {
      endpoints.onStoreCall = () => void storeCalls++;
      unit = "storage calls";
    }
    // HTTP drivers use the global fetch: count their requests too.
    const realFetch = globalThis.fetch;
    let fetches = 0;
    if (this.adapter.http) {
      globalThis.fetch = ((...args: Parameters<typeof fetch>) => {
        fetches++;
        return realFetch(...args);
      }) as typeof fetch;
    }
    try {
      return await fn(endpoints, { count: () => (proxy ? proxy.count() : storeCalls), fetches: () => fetches, unit });
    } finally {
      globalThis.fetch = realFetch;
      await proxy?.close();
    }
  }

  async idleRequests(concurrency: number, warmupMs: number, windowMs: number): Promise<IdleResult> {
    return this.counted(async (endpoints, counters) => {
      const ns = await this.adapter.open(this.nsFor("idle"), endpoints);
      try {
        const worker = await ns.startWorker(concurrency, () => {});
        try {
          await sleep(warmupMs);
          const c0 = counters.count();
          const f0 = counters.fetches();
          const t0 = performance.now();
          await sleep(windowMs);
          const ms = performance.now() - t0;
          const requests = counters.count() - c0;
          const result: IdleResult = { windowMs: round(ms, 0), requestsPerMinute: round((requests / ms) * 60_000, 1), unit: counters.unit };
          if (this.adapter.http) result.httpRequestsPerMinute = round(((counters.fetches() - f0) / ms) * 60_000, 1);
          if (this.adapter.pollingIntervalMs) result.budgetPerMinute = round(60_000 / this.adapter.pollingIntervalMs, 1);
          return result;
        } finally {
          await within(worker.stop(), 60_000, "stopping the worker");
        }
      } finally {
        await ns.close();
      }
    });
  }

  /**
   * Store requests per job, through the counting proxy: for a bulk enqueue,
   * and for processing at `concurrency`. Round trips are what an HTTP store
   * bills and waits for, and unlike throughput they do not move with the
   * machine's load. Not timed (the proxy is in the path).
   */
  async requestsPerJob(concurrency: number, n: number, batch: number): Promise<RequestsResult> {
    return this.counted(async (endpoints, counters) => {
      const ns = await this.adapter.open(this.nsFor(`req${concurrency}`), endpoints);
      try {
        const c0 = counters.count();
        const f0 = counters.fetches();
        for (const b of chunks(n, batch)) await ns.enqueueMany(b);
        const c1 = counters.count();
        const f1 = counters.fetches();
        const tracker = new Tracker(n);
        const worker = await ns.startWorker(concurrency, (p) => tracker.hit(p.i));
        const complete = await tracker.waitAll(this.options.processTimeoutMs);
        await within(worker.stop(), 60_000, "stopping the worker");
        const exactlyOnce = tracker.check();
        if (exactlyOnce.duplicates > 0) throw new Error(`jobs ran twice: ${JSON.stringify(exactlyOnce)}`);
        const jobs = tracker.distinct;
        // Worker start-up (migrations, LISTEN) and shutdown are included: over many jobs they vanish.
        const result: RequestsResult = {
          concurrency,
          jobs,
          complete,
          unit: counters.unit,
          enqueueBulkPerJob: round((c1 - c0) / n, 4),
          processPerJob: round((counters.count() - c1) / Math.max(1, jobs), 3),
        };
        if (this.adapter.http) {
          result.httpEnqueueBulkPerJob = round((f1 - f0) / n, 4);
          result.httpProcessPerJob = round((counters.fetches() - f1) / Math.max(1, jobs), 3);
        }
        return result;
      } finally {
        await ns.close();
      }
    });
  }
}

function chunks(n: number, size: number): Payload[][] {
  const out: Payload[][] = [];
  for (let start = 0; start < n; start += size) {
    const b: Payload[] = [];
    for (let i = start; i < Math.min(n, start + size); i++) b.push(payload(i));
    out.push(b);
  }
  return out;
}

/** Runs every selected phase of one contender; a failing phase is recorded and the others still run. */
export async function runContender(adapter: QueueAdapter, runId: string, options: BenchOptions): Promise<ContenderResult> {
  const t0 = performance.now();
  const log = options.log;
  const result: ContenderResult = { name: adapter.name, label: adapter.label, store: adapter.store, settings: adapter.settings, process: {}, wallMs: 0 };
  const c = new Contender(adapter, runId, options);
  const phase = async <T>(what: string, fn: () => Promise<T>, onError: (e: string) => T): Promise<T> => {
    const started = performance.now();
    try {
      const r = await fn();
      log(`  ${adapter.name} ${what}: ${summary(r)} (${Math.round(performance.now() - started)} ms)`);
      return r;
    } catch (e) {
      log(`  ${adapter.name} ${what}: FAILED ${message(e)}`);
      return onError(message(e));
    } finally {
      // After the caller stored this phase's result: a microtask later.
      queueMicrotask(() => options.onProgress?.({ ...result, wallMs: Math.round(performance.now() - t0) }));
    }
  };
  const failed = (error: string): ThroughputResult => ({ jobs: 0, ms: 0, perSecond: NaN, complete: false, error });
  const failedLatency = (error: string): LatencyResult => ({
    jobs: 0,
    p50: NaN,
    p95: NaN,
    p99: NaN,
    max: NaN,
    mean: NaN,
    exactlyOnce: { expected: 0, ran: 0, distinct: 0, duplicates: 0, missing: 0, ok: false },
    error,
  });
  try {
    await c.setup();
    const n = options.n;
    const phases = options.phases.filter((p) => !adapter.phases || adapter.phases.includes(p));
    if (phases.includes("enqueue")) {
      result.enqueueSingle = await phase("enqueue single", () => c.enqueueSingle(n, options.inflight), failed);
      result.enqueueBulk = await phase("enqueue bulk", () => c.enqueueBulk(n, options.bulkBatch), failed);
    }
    if (phases.includes("process")) {
      for (const conc of options.concurrencies) {
        result.process[String(conc)] = await phase(`process c=${conc}`, () => c.process(conc, n), failed);
      }
    }
    if (phases.includes("latency")) {
      result.latency = await phase("latency", () => c.latency(options.latencyJobs, options.latencySpacingMs, options.latencyConcurrency), failedLatency);
      if (adapter.name.startsWith("qml-") && adapter.store !== "memory") {
        result.latencyRemote = await phase(
          "latency (separate producer)",
          () => c.latency(options.latencyJobs, options.latencySpacingMs, options.latencyConcurrency, true),
          failedLatency,
        );
      }
    }
    if (phases.includes("requests")) {
      result.requests = await phase(
        "requests per job (c=20)",
        () => c.requestsPerJob(20, options.requestsJobs, options.bulkBatch),
        (error) => ({
          concurrency: 20,
          jobs: 0,
          complete: false,
          unit: "",
          enqueueBulkPerJob: NaN,
          processPerJob: NaN,
          error,
        }),
      );
    }
    if (phases.includes("idle")) {
      result.idle = await phase(
        "idle",
        () => c.idleRequests(options.idleConcurrency, options.idleWarmupMs, options.idleWindowMs),
        (error) => ({
          windowMs: 0,
          requestsPerMinute: NaN,
          unit: "",
          error,
        }),
      );
    }
  } catch (e) {
    result.error = message(e);
    log(`  ${adapter.name}: FAILED ${result.error}`);
  } finally {
    try {
      await c.teardown();
    } catch (e) {
      result.error ??= `teardown: ${message(e)}`;
    }
  }
  result.wallMs = Math.round(performance.now() - t0);
  return result;
}

function summary(r: unknown): string {
  const o = r as Partial<ThroughputResult & LatencyResult & IdleResult & RequestsResult>;
  if (o.perSecond !== undefined)
    return `${o.perSecond} jobs/s${o.complete ? "" : ` (partial: ${o.jobs} jobs)`}${o.exactlyOnce ? (o.exactlyOnce.ok ? ", exactly once" : o.exactlyOnce.duplicates > 0 ? ", RAN TWICE" : ", no duplicates") : ""}`;
  if (o.p50 !== undefined) return `p50 ${o.p50} ms, p95 ${o.p95} ms, p99 ${o.p99} ms`;
  if (o.processPerJob !== undefined)
    return `${o.processPerJob} ${o.unit}/job processing, ${o.enqueueBulkPerJob}/job bulk enqueue${o.httpProcessPerJob !== undefined ? `; HTTP: ${o.httpProcessPerJob}/job, ${o.httpEnqueueBulkPerJob}/job` : ""}${o.complete ? "" : ` (partial: ${o.jobs} jobs)`}`;
  if (o.requestsPerMinute !== undefined)
    return `${o.requestsPerMinute} ${o.unit}/min${o.httpRequestsPerMinute !== undefined ? `, ${o.httpRequestsPerMinute} HTTP requests/min` : ""}`;
  return JSON.stringify(r);
}
