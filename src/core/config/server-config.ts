/**
 * ServerConfig: the builder the seed's users know.
 *
 *   new ServerConfig("server-1").workerCount(4).queues(["critical", "default"])
 */
import { systemClock, type Clock } from "../clock.js";
import { ConfigError } from "../errors.js";
import { DEFAULT_QUEUE } from "../job.js";
import { JsonLogger, type Logger } from "../logger.js";
import { defaultRetryPolicy, type RetryPolicy } from "../retry.js";
import { check } from "./bounds.js";

export interface ResolvedServerConfig {
  serverId: string;
  workerCount: number;
  pollingIntervalMs: number;
  maxPollingIntervalMs: number;
  jobTimeoutMs: number | undefined;
  queues: string[];
  fetchBatchSize: number;
  /** Jobs claimed ahead of free workers: a number, or "auto" (the default: adaptive, see prefetch.ts). */
  prefetch: number | "auto";
  enableScheduler: boolean;
  leaseMs: number;
  schedulerIntervalMs: number;
  shutdownTimeoutMs: number;
  retryPolicy: RetryPolicy;
  clock: Clock;
  /** Align the clock with the store's (default: on with the system clock, off with a clock you set). */
  clockSync: boolean;
  logger: Logger;
}

export class ServerConfig {
  private readonly c: ResolvedServerConfig;

  constructor(serverId: string = `server-${crypto.randomUUID().slice(0, 8)}`) {
    check("serverId", serverId);
    this.c = {
      serverId,
      workerCount: 10,
      pollingIntervalMs: 1000,
      maxPollingIntervalMs: 5000,
      jobTimeoutMs: undefined,
      queues: [DEFAULT_QUEUE],
      fetchBatchSize: 100,
      prefetch: "auto",
      enableScheduler: true,
      leaseMs: 30_000,
      schedulerIntervalMs: 5000,
      shutdownTimeoutMs: 10_000,
      retryPolicy: defaultRetryPolicy,
      clock: systemClock,
      clockSync: true,
      logger: new JsonLogger("info"),
    };
  }

  /** Jobs run at once (default 10). */
  workerCount(n: number): this {
    this.c.workerCount = check("workerCount", n);
    return this;
  }
  /** Milliseconds between polls when work may be waiting (default 1000). */
  pollingInterval(ms: number): this {
    this.c.pollingIntervalMs = check("pollingIntervalMs", ms, "pollingInterval");
    if (this.c.maxPollingIntervalMs < ms) this.c.maxPollingIntervalMs = ms;
    return this;
  }
  /** Polls back off up to this when idle (default 5000). In-process enqueues wake the server at once. */
  maxPollingInterval(ms: number): this {
    check("pollingIntervalMs", ms, "maxPollingInterval");
    if (ms < this.c.pollingIntervalMs) throw new ConfigError(`maxPollingInterval must be at least pollingInterval (${this.c.pollingIntervalMs}); got ${ms}`);
    this.c.maxPollingIntervalMs = ms;
    return this;
  }
  /** Default per-job timeout in ms; jobs may set their own (default: none). */
  jobTimeout(ms: number): this {
    this.c.jobTimeoutMs = check("timeoutMs", ms, "jobTimeout");
    return this;
  }
  /** Queues this server takes, in priority order (default ["default"]). */
  queues(names: string[]): this {
    if (!Array.isArray(names) || names.length === 0) throw new ConfigError("queues must be a non-empty list");
    for (const q of names) check("queueName", q, "a queue name");
    this.c.queues = [...new Set(names)];
    return this;
  }
  /** Most jobs claimed in one round trip (default 100; never more than free workers). */
  fetchBatchSize(n: number): this {
    this.c.fetchBatchSize = check("fetchBatchSize", n);
    return this;
  }
  /**
   * Jobs claimed ahead of free workers and held, their leases renewed by
   * heartbeats, so a worker that finishes starts the next job without a
   * round trip. Default "auto": while a backlog lasts, as many as the
   * workers will start within two claim round trips (from the observed
   * run time and round trip, at most 500), none when jobs are long or the
   * queue runs dry, so jobs still spread over a fleet's free workers
   * (src/core/prefetch.ts). A number holds that many whenever there is
   * room; 0 claims only for free workers. Held jobs are released at once
   * on stop().
   */
  prefetch(n: number | "auto"): this {
    this.c.prefetch = n === "auto" ? n : check("prefetch", n);
    return this;
  }
  /** Whether this server promotes, reclaims and fires recurring jobs (default true). */
  enableScheduler(on: boolean): this {
    this.c.enableScheduler = on;
    return this;
  }
  /** Lease on a claimed job in ms, renewed every third of it (default 30000). */
  leaseDuration(ms: number): this {
    this.c.leaseMs = check("leaseMs", ms, "leaseDuration");
    return this;
  }
  /** Milliseconds between housekeeping passes: promote, reclaim, recurring (default 5000). */
  schedulerInterval(ms: number): this {
    this.c.schedulerIntervalMs = check("schedulerIntervalMs", ms, "schedulerInterval");
    return this;
  }
  /** Grace period for running jobs on stop() (default 10000). */
  shutdownTimeout(ms: number): this {
    this.c.shutdownTimeoutMs = check("shutdownTimeoutMs", ms, "shutdownTimeout");
    return this;
  }
  retryPolicy(p: RetryPolicy): this {
    this.c.retryPolicy = p;
    return this;
  }
  /** The clock for store times; a clock you set is used as is (no alignment with the store) unless clockSync(true) follows. */
  clock(c: Clock): this {
    this.c.clock = c;
    this.c.clockSync = false;
    return this;
  }
  /** Align this server's clock with the store's clock (Redis TIME, Postgres clock_timestamp()). */
  clockSync(on: boolean): this {
    this.c.clockSync = on;
    return this;
  }
  logger(l: Logger): this {
    this.c.logger = l;
    return this;
  }

  get serverId(): string {
    return this.c.serverId;
  }

  resolve(): ResolvedServerConfig {
    return { ...this.c, queues: [...this.c.queues] };
  }
}
