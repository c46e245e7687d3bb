/**
 * tick(): one bounded pass for short-lived invocations (a Workers cron or
 * Queue event, a Lambda). Housekeeping (promote, reclaim, recurring), then
 * process until the deadline.
 *
 * The deadline is respected in three ways:
 * - no claim is made once less than `safetyMs` remains;
 * - a claimed job whose expected duration (its timeout, the default timeout,
 *   or the p95 observed for its name) would not fit what is left is handed
 *   back at once, keeping its place at the head of its queue, and claiming
 *   stops: the budget only shrinks. A job that would not fit even a whole
 *   invocation fails with BudgetExceededError instead of coming back forever;
 * - at `deadline - safetyMs`, jobs still running are aborted and released
 *   to `enqueued`, so the next invocation runs them first. A run cut off
 *   after at least half a budget counts as an attempt (see
 *   Processor.cutOff), so a job that always outgrows the budget ends
 *   `failed`. If the platform kills us before even that, their leases
 *   simply run out and any invocation reclaims them.
 *
 * Expected durations persist in the store (`readEstimates` at the start of
 * a tick, `writeEstimates` of what it measured at the end), so a cold
 * isolate plans with what earlier invocations learned.
 */
import { StoreAlignedClock, systemClock } from "./clock.js";
import { DeadlineError } from "./errors.js";
import { Emitter, type JobEventMap } from "./events.js";
import { DEFAULT_QUEUE } from "./job.js";
import { silentLogger, type Logger } from "./logger.js";
import { DurationStats, Processor } from "./processor.js";
import type { WorkerRegistry } from "./registry.js";
import { defaultRetryPolicy, type RetryPolicy } from "./retry.js";
import { Scheduler, type MaintenanceReport } from "./scheduler.js";
import type { Storage } from "./storage.js";
import type { Clock } from "./clock.js";

export interface TickOptions {
  storage: Storage;
  registry: WorkerRegistry;
  /** Epoch ms by which the invocation must have finished its work. */
  deadline: number;
  /** Margin kept before the deadline for the final writes (default 1000 ms). */
  safetyMs?: number;
  queues?: string[];
  concurrency?: number;
  leaseMs?: number;
  jobTimeoutMs?: number;
  retryPolicy?: RetryPolicy;
  serverId?: string;
  clock?: Clock;
  logger?: Logger;
  events?: Emitter<JobEventMap>;
  /** Skip promote/reclaim/recurring (a Queue consumer that only processes). */
  maintenance?: boolean;
  /** Stop once this many jobs were started (default: no limit). */
  maxJobs?: number;
  /** Align with the store's clock (default true unless `clock` is given). */
  clockSync?: boolean;
  /** Durations observed by earlier ticks in this isolate, for deadline planning. */
  durations?: DurationStats;
}

export interface TickReport extends MaintenanceReport {
  /** Jobs started. */
  processed: number;
  /** Jobs handed back because they would not fit. */
  deferred: number;
  /** Jobs still running at the deadline, released. */
  released: number;
  succeeded: number;
  failed: number;
  retried: number;
}

/** Durations observed in this isolate/process, shared by ticks by default. */
const sharedDurations = new DurationStats();

export async function tick(o: TickOptions): Promise<TickReport> {
  let clock: Clock = o.clock ?? systemClock;
  let deadline = o.deadline;
  const durations = o.durations ?? sharedDurations;
  const driver = o.storage.driver;
  const logger = o.logger ?? silentLogger;
  const sync = o.clock === undefined && o.clockSync !== false;
  // Both go out together: over an HTTP driver they share one request.
  const aligned = sync ? new StoreAlignedClock(systemClock) : undefined;
  const [offset, estimates] = await Promise.all([
    aligned ? aligned.sync(() => o.storage.serverTime()) : 0,
    driver.readEstimates().catch((error: unknown) => {
      logger.warn("could not read duration estimates; planning with this isolate's own", { error });
      return {};
    }),
  ]);
  durations.prime(estimates);
  if (aligned) {
    // Leases follow the store's clock; the platform's deadline is on ours, so it moves by the same offset.
    deadline += offset;
    clock = aligned;
  }
  const events = o.events ?? new Emitter<JobEventMap>();
  const safetyMs = o.safetyMs ?? 1000;
  const stopAt = deadline - safetyMs;
  const report: TickReport = { promoted: 0, reclaimed: 0, fired: 0, processed: 0, deferred: 0, released: 0, succeeded: 0, failed: 0, retried: 0 };
  const offs = [
    events.on("job:succeeded", () => report.succeeded++),
    events.on("job:failed", () => report.failed++),
    events.on("job:retry", () => report.retried++),
    events.on("job:released", () => report.released++),
  ];
  try {
    if (o.maintenance !== false && clock.now() < stopAt) {
      Object.assign(report, await new Scheduler(o.storage, events, logger).maintain(clock.now()));
    }
    const leaseMs = o.leaseMs ?? 30_000;
    const processor = new Processor(
      o.storage,
      o.registry,
      {
        serverId: o.serverId ?? `tick-${crypto.randomUUID().slice(0, 8)}`,
        concurrency: o.concurrency ?? 10,
        queues: o.queues ?? [DEFAULT_QUEUE],
        leaseMs,
        fetchBatchSize: o.concurrency ?? 10,
        jobTimeoutMs: o.jobTimeoutMs,
        retryPolicy: o.retryPolicy ?? defaultRetryPolicy,
        clock,
        logger,
        events,
      },
      durations,
    );
    const budgetMs = Math.max(0, stopAt - clock.now());
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), Math.max(0, stopAt - clock.now()));
    try {
      let drained = false;
      while (!stop.signal.aborted && !drained) {
        if (o.maxJobs !== undefined && report.processed >= o.maxJobs) break;
        if (processor.freeSlots() > 0) {
          const limit = o.maxJobs !== undefined ? o.maxJobs - report.processed : undefined;
          const r = await processor.fill({ deadline: stopAt, budgetMs, ...(limit !== undefined ? { limit } : {}) });
          report.processed += r.started;
          report.deferred += r.unfit;
          // The budget only shrinks: once a job did not fit what is left, the next would not either.
          if (r.unfit > 0) break;
          if (r.claimed === 0) {
            if (processor.runningCount === 0) drained = true;
            else await processor.waitForCompletion(stop.signal);
            continue;
          }
        } else {
          await processor.waitForCompletion(stop.signal);
        }
      }
      await processor.drain(Math.max(0, stopAt - clock.now()), new DeadlineError());
      // "released" counts jobs cut off at the deadline; those that did not fit are "deferred".
      report.released -= report.deferred;
    } finally {
      clearTimeout(timer);
    }
    const learned = durations.takeChanged();
    if (Object.keys(learned).length > 0) {
      await driver.writeEstimates(learned, clock.now()).catch((error: unknown) => logger.warn("could not store duration estimates", { error }));
    }
    return report;
  } finally {
    for (const off of offs) off();
  }
}
