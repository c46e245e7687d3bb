/**
 * Runtime settings from environment variables, for both serverless
 * runtimes: a Worker's `vars` (wrangler.jsonc) or a Lambda's environment,
 * so a deployment is tuned without a rebuild. The variables are rows of the
 * one table (src/core/config/env.ts) and read through it, with the same
 * names and checks as on Node; a bad value fails with a message naming the
 * variable.
 */
import { ENV, ENV_TABLE, rawEnv, readEnv, type Runtime } from "../../../core/config/env.js";
import { JsonLogger } from "../../../core/logger.js";
import type { ServerlessConfig } from "./config.js";

/** The settings the variables set: the shared ones, and the Workers dead-letter queue. */
export interface ServerlessEnvConfig extends ServerlessConfig {
  /** Workers only: the dead-letter queue this Worker also consumes (logged and acknowledged). */
  deadLetterQueue?: string;
}

/** The variables a serverless runtime reads for its settings (tokens and stores are read where they are used). */
export const SERVERLESS_ENV_VARS: readonly string[] = [
  ENV.queues,
  ENV.budgetMs,
  ENV.safetyMs,
  ENV.workers,
  ENV.maxJobs,
  ENV.leaseMs,
  ENV.jobTimeoutMs,
  ENV.logLevel,
  ENV.deadLetterQueue,
].map((v) => v.name);

/**
 * `createWorker({ …, config: configFromEnv })`, `createLambdaHandlers({ …, ...configFromEnv(process.env, "lambda") })`,
 * or spread it under your own settings. Only the variables that are set
 * are in the result, so it spreads over defaults.
 */
export function configFromEnv(env: unknown, runtime: Extract<Runtime, "workers" | "lambda"> = "workers"): ServerlessEnvConfig {
  const e = (env ?? {}) as Record<string, unknown>;
  const s = readEnv(e, runtime);
  const set = (v: { name: string }) => rawEnv(e, v.name) !== undefined && ENV_TABLE.some((row) => row.name === v.name && row.runtimes.includes(runtime));
  const out: ServerlessEnvConfig = {};
  if (set(ENV.queues)) out.queues = s.queues;
  if (set(ENV.budgetMs) && s.budgetMs !== undefined) out.budgetMs = s.budgetMs;
  if (set(ENV.safetyMs) && s.safetyMs !== undefined) out.safetyMs = s.safetyMs;
  if (set(ENV.workers)) out.concurrency = s.workers;
  if (set(ENV.maxJobs) && s.maxJobs !== undefined) out.maxJobs = s.maxJobs;
  if (set(ENV.leaseMs)) out.leaseMs = s.leaseMs;
  if (set(ENV.jobTimeoutMs) && s.jobTimeoutMs !== undefined) out.jobTimeoutMs = s.jobTimeoutMs;
  if (set(ENV.logLevel)) out.logger = new JsonLogger(s.logLevel);
  if (set(ENV.deadLetterQueue) && s.deadLetterQueue !== undefined) out.deadLetterQueue = s.deadLetterQueue;
  return out;
}
