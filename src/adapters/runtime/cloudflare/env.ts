/**
 * Runtime settings from a Worker's `vars` (wrangler.jsonc), so a deployment
 * is tuned without a rebuild. Every value is checked; a bad one fails the
 * invocation with a message naming the variable.
 */
import { ConfigError } from "../../../core/errors.js";
import { JsonLogger, LOG_LEVELS, type LogLevel } from "../../../core/logger.js";
import type { CloudflareConfig } from "./worker.js";

/** The variables read here; documented in deploy/cloudflare/README.md. */
export const CLOUDFLARE_ENV_VARS = [
  "QML_QUEUES",
  "QML_BUDGET_MS",
  "QML_SAFETY_MS",
  "QML_CONCURRENCY",
  "QML_MAX_JOBS",
  "QML_LEASE_MS",
  "QML_JOB_TIMEOUT_MS",
  "QML_DEAD_LETTER_QUEUE",
  "QML_LOG_LEVEL",
] as const;

function text(env: Record<string, unknown>, name: string): string | undefined {
  const v = env[name];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "number") return String(v);
  if (typeof v !== "string") throw new ConfigError(`[qml] [cloudflare] ${name} must be a string`);
  return v.trim();
}

function int(env: Record<string, unknown>, name: string): number | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`[qml] [cloudflare] ${name}=${JSON.stringify(raw)} is not a whole number`);
  return Number(raw);
}

/** `createWorker({ …, config: configFromEnv })`, or spread it under your own settings. */
export function configFromEnv(env: unknown): CloudflareConfig {
  const e = (env ?? {}) as Record<string, unknown>;
  const c: CloudflareConfig = {};
  const queues = text(e, "QML_QUEUES");
  if (queues !== undefined) c.queues = queues.split(",").map((q) => q.trim()).filter((q) => q.length > 0);
  const budgetMs = int(e, "QML_BUDGET_MS");
  if (budgetMs !== undefined) c.budgetMs = budgetMs;
  const safetyMs = int(e, "QML_SAFETY_MS");
  if (safetyMs !== undefined) c.safetyMs = safetyMs;
  const concurrency = int(e, "QML_CONCURRENCY");
  if (concurrency !== undefined) c.concurrency = concurrency;
  const maxJobs = int(e, "QML_MAX_JOBS");
  if (maxJobs !== undefined) c.maxJobs = maxJobs;
  const leaseMs = int(e, "QML_LEASE_MS");
  if (leaseMs !== undefined) c.leaseMs = leaseMs;
  const jobTimeoutMs = int(e, "QML_JOB_TIMEOUT_MS");
  if (jobTimeoutMs !== undefined) c.jobTimeoutMs = jobTimeoutMs;
  const dlq = text(e, "QML_DEAD_LETTER_QUEUE");
  if (dlq !== undefined) c.deadLetterQueue = dlq;
  const level = text(e, "QML_LOG_LEVEL");
  if (level !== undefined) {
    if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new ConfigError(`[qml] [cloudflare] QML_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
    c.logger = new JsonLogger(level as LogLevel, { runtime: "cloudflare" });
  }
  return c;
}
