/**
 * One set of bounds for every setting and option, as zod schemas: the
 * builders (ServerConfig, the backend configs), the table of environment
 * variables (env.ts) and the HTTP schemas all check a value against the
 * same schema here, so a number accepted in one place is accepted in all.
 */
import { z } from "zod";
import { ConfigError } from "../errors.js";
import { JOB_BOUNDS, JOB_NAME, QUEUE_NAME, RECURRING_ID } from "../rules.js";

const int = (min: number, max: number) => z.number().int().min(min).max(max);

const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const bounds = {
  // ------------------------------------------------------------ a job
  priority: int(JOB_BOUNDS.priority.min, JOB_BOUNDS.priority.max),
  maxAttempts: int(JOB_BOUNDS.maxAttempts.min, JOB_BOUNDS.maxAttempts.max),
  timeoutMs: int(JOB_BOUNDS.timeoutMs.min, JOB_BOUNDS.timeoutMs.max),
  delayMs: int(JOB_BOUNDS.delayMs.min, JOB_BOUNDS.delayMs.max),
  retryDelayMs: int(JOB_BOUNDS.retryDelayMs.min, JOB_BOUNDS.retryDelayMs.max),
  uniqueTtlMs: int(JOB_BOUNDS.uniqueTtlMs.min, JOB_BOUNDS.uniqueTtlMs.max),
  limit: int(JOB_BOUNDS.limit.min, JOB_BOUNDS.limit.max),
  rateIntervalMs: int(JOB_BOUNDS.rateIntervalMs.min, JOB_BOUNDS.rateIntervalMs.max),
  queueName: z.string().regex(QUEUE_NAME, 'must be 1-64 characters of letters, digits, "_", "-" or "."'),
  jobName: z.string().regex(JOB_NAME, 'must be 1-128 characters of letters, digits, "_", "-", "." or "/"'),
  recurringId: z.string().regex(RECURRING_ID, 'must be 1-128 characters of letters, digits, "_", "-", "." or "/"'),

  // ---------------------------------------------------- a server or tick
  serverId: z.string().regex(/^[A-Za-z0-9_.:/-]{1,128}$/, "must be 1-128 letters, digits or _ . : / -"),
  workerCount: int(1, 10_000),
  pollingIntervalMs: int(1, HOUR),
  fetchBatchSize: int(1, 10_000),
  prefetch: int(0, 100_000),
  leaseMs: int(30, DAY),
  schedulerIntervalMs: int(10, DAY),
  shutdownTimeoutMs: int(0, HOUR),
  /** Wall time one serverless invocation spends on jobs (Workers allow 15 min of wall time per cron or Queue invocation). */
  budgetMs: int(SECOND, 15 * 60 * SECOND),
  safetyMs: int(0, 5 * 60 * SECOND),
  maxJobs: int(1, 1_000_000),

  /** Connections in one client's pool. */
  poolSize: int(1, 1000),

  // --------------------------------------------------------- retention
  finishedJobTtlMs: int(0, 366 * DAY),
  maxFinishedJobs: int(0, 100_000_000),

  // ---------------------------------------------------------------- HTTP
  port: int(0, 65_535),
  /** Dashboard tokens: long enough to resist guessing (see auth). */
  token: z.string().min(16, "must be at least 16 characters").max(1024),
  liveIntervalMs: int(10, HOUR),
  /** Live updates (WebSocket, SSE) open at once in one process or isolate, and per session. */
  liveConnections: int(1, 100_000),
  livePerSession: int(1, 10_000),
} as const;

export type BoundName = keyof typeof bounds;

/** `value` checked against `bounds[name]`; a ConfigError naming `label` otherwise. */
export function check<K extends BoundName>(name: K, value: unknown, label: string = name, scope?: string): z.infer<(typeof bounds)[K]> {
  const r = bounds[name].safeParse(value);
  if (r.success) return r.data as z.infer<(typeof bounds)[K]>;
  throw new ConfigError(`${label} ${describeIssue(bounds[name], r.error)}; got ${JSON.stringify(value)}`, scope !== undefined ? { scope } : {});
}

/** "must be an integer between 1 and 10000", from a schema and its first issue. */
export function describeIssue(schema: z.ZodType, error: z.ZodError): string {
  if (schema instanceof z.ZodNumber) {
    const { minValue, maxValue } = schema;
    return `must be an integer between ${minValue} and ${maxValue}`;
  }
  const issue = error.issues[0];
  return issue?.message.startsWith("must") ? issue.message : `is invalid: ${issue?.message ?? "unknown"}`;
}
