/**
 * The reference deployment's Worker: qml's runtime over the store the
 * `QML_STORAGE` var names, with the jobs of ./jobs.ts.
 *
 *   sqlite    (default) D1, the binding QML_DB: cron + Queue + D1, nothing
 *             outside Cloudflare
 *   redis     Upstash Redis over its REST API (UPSTASH_REDIS_REST_URL + the
 *             UPSTASH_REDIS_REST_TOKEN secret)
 *   postgres  Neon over HTTP (the DATABASE_URL secret)
 *
 * None holds a connection (see ./storage.ts): one store object per isolate
 * serves every request, with nothing to hand over between requests.
 */
import {
  authFromEnv,
  configFromEnv,
  createWorker,
  type CfQueue,
  type WakeUpMessage,
  type WorkerHandlers,
} from "../../../src/adapters/runtime/cloudflare/index.js";
import { WorkerRegistry } from "../../../src/index.js";
import { registerJobs } from "./jobs.js";
import { storageFromEnv, type StorageEnv } from "./storage.js";

export interface Env extends StorageEnv {
  /** Producer binding of the wake-up queue. */
  QML_QUEUE: CfQueue<WakeUpMessage>;
  /** Secrets: comma-separated admin and read-only tokens for the API and dashboard. */
  QML_DASHBOARD_TOKEN?: string;
  QML_DASHBOARD_READ_TOKEN?: string;
  QML_SESSION_SECRET?: string;
  /** Tuning vars, see configFromEnv (the same names on Lambda). */
  QML_QUEUES?: string;
  QML_BUDGET_MS?: string;
  QML_SAFETY_MS?: string;
  QML_WORKERS?: string;
  QML_MAX_JOBS?: string;
  QML_LEASE_MS?: string;
  QML_JOB_TIMEOUT_MS?: string;
  QML_DEAD_LETTER_QUEUE?: string;
  QML_LOG_LEVEL?: string;
}

const registry = registerJobs(new WorkerRegistry());

const qml = createWorker<Env>({
  storage: storageFromEnv,
  // Once per isolate and env: creates the keys or tables on a fresh store
  // (on D1 the backend's own migrations, no wrangler migration files).
  migrate: true,
  registry,
  config: configFromEnv,
  auth: authFromEnv,
});

// WorkerHandlers<Env> is the subset of `ExportedHandler<Env>` the runtime
// declares for itself; test/workers/types.check.ts holds it to Cloudflare's.
export default {
  fetch: qml.fetch,
  scheduled: qml.scheduled,
  queue: qml.queue,
} satisfies WorkerHandlers<Env>;
