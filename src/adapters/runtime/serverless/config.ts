/**
 * What the two serverless runtimes share of their settings, checked once.
 * Each runtime adds its own (Workers: the Queue binding, the dead-letter
 * queue, the dashboard's path; Lambda: the HTTP API) and its defaults.
 */
import { systemClock, type Clock } from "../../../core/clock.js";
import { ConfigError } from "../../../core/errors.js";
import { DEFAULT_QUEUE } from "../../../core/job.js";
import { JsonLogger, type Logger } from "../../../core/logger.js";
import type { RetryPolicy } from "../../../core/retry.js";
import { validateQueueName } from "../../../core/rules.js";
import { check, type BoundName } from "../../../core/config/bounds.js";

export interface ServerlessConfig {
  /** Queues served, in priority order (default ["default"]). */
  queues?: string[];
  /**
   * Wall time one invocation spends on jobs, in ms. Workers: default
   * 25 000. Lambda: the invocation's remaining time, capped by this when set.
   */
  budgetMs?: number;
  /** Kept back from the budget for releasing unfinished jobs, the final writes and the answer. */
  safetyMs?: number;
  /** Jobs run at once in one invocation (default 10). */
  concurrency?: number;
  /**
   * Most jobs one invocation starts (default: no limit). Every store call
   * is a subrequest on Workers, capped per invocation (50 on the Free
   * plan): a cap on jobs keeps a tick under it.
   */
  maxJobs?: number;
  /** Lease on a claimed job in ms, renewed while it runs (default 30 000). */
  leaseMs?: number;
  /** Timeout for jobs without their own (default: none). */
  jobTimeoutMs?: number;
  retryPolicy?: RetryPolicy;
  clock?: Clock;
  /** Default: JSON lines at level info. Every line carries `runtime`. */
  logger?: Logger;
}

export interface ResolvedServerlessConfig {
  runtime: string;
  queues: string[];
  budgetMs: number | undefined;
  safetyMs: number;
  concurrency: number;
  maxJobs: number | undefined;
  leaseMs: number;
  jobTimeoutMs: number | undefined;
  retryPolicy: RetryPolicy | undefined;
  clock: Clock;
  logger: Logger;
}

/** What differs by runtime: its name (for errors and logs) and its defaults. */
export interface RuntimeDefaults {
  runtime: string;
  budgetMs: number | undefined;
  /** Largest budget the platform allows. */
  maxBudgetMs: number;
  /** Default margin for a budget (undefined: none known yet). */
  safetyMs(budgetMs: number | undefined): number;
}

function int(runtime: string, name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}; got ${JSON.stringify(v)}`, { scope: runtime });
  }
  return v;
}

/** A setting checked against the one set of bounds (core/config/bounds.ts). */
function bounded(runtime: string, bound: BoundName, name: string, v: unknown): number {
  return check(bound, v, name, runtime) as number;
}

export function resolveServerlessConfig(c: ServerlessConfig, d: RuntimeDefaults): ResolvedServerlessConfig {
  const { runtime } = d;
  const budget = c.budgetMs ?? d.budgetMs;
  const budgetMs = budget === undefined ? undefined : int(runtime, "budgetMs", budget, 100, d.maxBudgetMs);
  const safetyMs = int(runtime, "safetyMs", c.safetyMs ?? d.safetyMs(budgetMs), 0, budgetMs === undefined ? Number.MAX_SAFE_INTEGER : budgetMs - 50);
  const queues = c.queues ?? [DEFAULT_QUEUE];
  if (!Array.isArray(queues) || queues.length === 0) throw new ConfigError("queues must be a non-empty list", { scope: runtime });
  for (const q of queues) validateQueueName(q, "queues");
  return {
    runtime,
    queues: [...new Set(queues)],
    budgetMs,
    safetyMs,
    concurrency: bounded(runtime, "workerCount", "concurrency", c.concurrency ?? 10),
    maxJobs: c.maxJobs === undefined ? undefined : bounded(runtime, "maxJobs", "maxJobs", c.maxJobs),
    leaseMs: bounded(runtime, "leaseMs", "leaseMs", c.leaseMs ?? 30_000),
    jobTimeoutMs: c.jobTimeoutMs === undefined ? undefined : bounded(runtime, "timeoutMs", "jobTimeoutMs", c.jobTimeoutMs),
    retryPolicy: c.retryPolicy,
    clock: c.clock ?? systemClock,
    logger: (c.logger ?? new JsonLogger("info")).child({ runtime }),
  };
}
