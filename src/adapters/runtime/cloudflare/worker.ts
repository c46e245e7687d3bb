/**
 * The Cloudflare Workers runtime: one module whose default export is
 * `{ fetch, scheduled, queue }`.
 *
 * - `scheduled` (cron trigger): one tick: promote due jobs, reclaim expired
 *   leases, fire recurring jobs, then run jobs until the budget is spent.
 * - `queue` (Queue consumer): wake-ups sent on enqueue. Runs a tick that
 *   only processes, then acknowledges or retries each message on what the
 *   store says about its job.
 * - `fetch`: the dashboard and REST API (`createApp`), behind tokens.
 *
 * Budgets. Cron and Queue consumer invocations may run 15 minutes of wall
 * time; CPU time is capped separately (30 s by default, configurable). A
 * tick spends mostly wall time waiting on the store and on jobs' own I/O,
 * and its default budget of 25 s keeps it well inside both, so a slow
 * store never lets the platform kill an invocation half-way through its
 * writes. Jobs whose timeout (or observed p95 duration) would not fit what
 * is left are not started: the next invocation takes them. If the platform
 * kills an invocation anyway, its leases simply run out and the next cron
 * tick reclaims the jobs.
 *
 * Wake-ups: every job enqueued through a storage this runtime handed out
 * (API calls, recurring firings, jobs enqueueing jobs) sends a message to
 * the Queue binding once the store confirmed the insert; the message is
 * sent in `ctx.waitUntil`, so a response never waits on it.
 */
import { upgradeWebSocket } from "hono/cloudflare-workers";
import type { Notifier, WakeUp } from "../../../core/client.js";
import { systemClock, type Clock } from "../../../core/clock.js";
import { ConfigError } from "../../../core/errors.js";
import { DEFAULT_QUEUE, JobState, validateQueueName, type JobRecord } from "../../../core/job.js";
import { JsonLogger, type Logger } from "../../../core/logger.js";
import type { WorkerRegistry } from "../../../core/registry.js";
import type { RetryPolicy } from "../../../core/retry.js";
import type { Storage } from "../../../core/storage.js";
import { tick, type TickReport } from "../../../core/tick.js";
import { createApp, type AppEnv } from "../../http/app.js";
import type { AuthOptions } from "../../http/auth.js";
import { problemResponse, toProblem } from "../../http/problem.js";
import type { Hono } from "hono";
import { QueueNotifier, delaySecondsUntil } from "./queue-notifier.js";
import type { CfExecutionContext, CfMessage, CfMessageBatch, CfQueue, WakeUpMessage, WorkerHandlers } from "./types.js";

export interface CloudflareConfig {
  /** Wall time one invocation spends on jobs, in ms (default 25 000). */
  budgetMs?: number;
  /** Kept back from the budget for the final writes (default 2 000). */
  safetyMs?: number;
  /** Jobs run at once in one invocation (default 10). */
  concurrency?: number;
  /**
   * Most jobs one invocation starts (default: no limit). Every store call is
   * a subrequest, and Workers cap subrequests per invocation (50 on the Free
   * plan): a cap on jobs keeps a tick under it.
   */
  maxJobs?: number;
  /** Queues served, in priority order (default ["default"]). */
  queues?: string[];
  /** Lease on a claimed job in ms, renewed every third of it (default 30 000). */
  leaseMs?: number;
  /** Timeout for jobs without their own (default: none). */
  jobTimeoutMs?: number;
  retryPolicy?: RetryPolicy;
  /** Name of the env binding of the wake-up Queue producer (default "QML_QUEUE"). */
  queueBinding?: string;
  /**
   * Name of the dead-letter queue, when this Worker also consumes it: its
   * messages are logged and acknowledged. A wake-up lands there only after
   * the store was unreachable for every retry; its job is safe in the store
   * and the next cron tick runs it.
   */
  deadLetterQueue?: string;
  /** Dashboard mount point, e.g. "/qml" (default: the root). */
  basePath?: string;
  /** Period of the dashboard's live snapshots in ms (default 1000). */
  liveIntervalMs?: number;
  clock?: Clock;
  logger?: Logger;
}

export interface CreateWorkerOptions<Env> {
  /**
   * The job store for an env. By default it is built once per isolate and
   * env and reused by every invocation: pick HTTP drivers (Upstash REST,
   * Neon `neon()` over HTTP), which hold no connection a later request could
   * not use (workerd forbids I/O objects, such as a WebSocket, from
   * crossing requests).
   */
  storage: (env: Env) => Storage | Promise<Storage>;
  /** Set false to call `storage(env)` on every invocation instead (the factory then owns caching and closing). */
  cacheStorage?: boolean;
  registry: WorkerRegistry | ((env: Env) => WorkerRegistry);
  config?: CloudflareConfig | ((env: Env) => CloudflareConfig);
  /**
   * Who may use the API and dashboard. Default: `QML_DASHBOARD_TOKEN`
   * (admin) and `QML_DASHBOARD_READ_TOKEN` (read-only) from the env, each a
   * comma-separated list (set them with `wrangler secret put`); with
   * neither set, every API call is refused (500, logged as a
   * misconfiguration): the API is never open on Workers.
   */
  auth?: (env: Env) => AuthOptions;
  /** Default: a QueueNotifier on the `queueBinding` producer, when the env has it. */
  notifier?: (env: Env) => Notifier | undefined;
}

interface Resolved {
  budgetMs: number;
  safetyMs: number;
  concurrency: number;
  maxJobs: number | undefined;
  queues: string[];
  leaseMs: number;
  jobTimeoutMs: number | undefined;
  retryPolicy: RetryPolicy | undefined;
  queueBinding: string;
  deadLetterQueue: string | undefined;
  basePath: string | undefined;
  liveIntervalMs: number | undefined;
  clock: Clock;
  logger: Logger;
}

/** Workers stop an invocation at 15 minutes of wall time. */
const PLATFORM_WALL_LIMIT_MS = 15 * 60_000;
/**
 * A wake-up for a job that is not in the store yet is retried once before
 * it is dropped: a read may reach a replica that has not seen the insert
 * (Upstash global databases read from the nearest region).
 */
const ABSENT_GRACE_MS = 10_000;
/** A re-armed wake-up for a job held by a live lease arrives this long after the lease would end. */
const LEASE_GRACE_MS = 1_000;

function positiveInt(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`[qml] [cloudflare] ${name} must be an integer from ${min} to ${max}; got ${JSON.stringify(v)}`);
  }
  return v;
}

export function resolveConfig(c: CloudflareConfig = {}): Resolved {
  const budgetMs = positiveInt("budgetMs", c.budgetMs ?? 25_000, 100, PLATFORM_WALL_LIMIT_MS - 30_000);
  const safetyMs = positiveInt("safetyMs", c.safetyMs ?? Math.min(2_000, Math.floor(budgetMs / 4)), 0, budgetMs - 50);
  const queues = c.queues ?? [DEFAULT_QUEUE];
  if (!Array.isArray(queues) || queues.length === 0) throw new ConfigError("[qml] [cloudflare] queues must be a non-empty list");
  for (const q of queues) validateQueueName(q);
  if (c.deadLetterQueue !== undefined && (typeof c.deadLetterQueue !== "string" || c.deadLetterQueue.length === 0)) {
    throw new ConfigError("[qml] [cloudflare] deadLetterQueue must be a queue name");
  }
  return {
    budgetMs,
    safetyMs,
    concurrency: positiveInt("concurrency", c.concurrency ?? 10, 1, 1000),
    maxJobs: c.maxJobs === undefined ? undefined : positiveInt("maxJobs", c.maxJobs, 1),
    queues: [...new Set(queues)],
    leaseMs: positiveInt("leaseMs", c.leaseMs ?? 30_000, 30),
    jobTimeoutMs: c.jobTimeoutMs === undefined ? undefined : positiveInt("jobTimeoutMs", c.jobTimeoutMs, 1),
    retryPolicy: c.retryPolicy,
    queueBinding: c.queueBinding ?? "QML_QUEUE",
    deadLetterQueue: c.deadLetterQueue,
    basePath: c.basePath,
    liveIntervalMs: c.liveIntervalMs,
    clock: c.clock ?? systemClock,
    logger: c.logger ?? new JsonLogger("info", { runtime: "cloudflare" }),
  };
}

/** The default auth: tokens from secrets. Never open: a Worker is reachable from the internet. */
export function authFromEnv(env: unknown): AuthOptions {
  const e = (env ?? {}) as Record<string, unknown>;
  const list = (v: unknown) => (typeof v === "string" ? v.split(/[\s,]+/).filter((t) => t.length > 0) : []);
  const secret = e.QML_SESSION_SECRET;
  return {
    adminTokens: list(e.QML_DASHBOARD_TOKEN),
    readTokens: list(e.QML_DASHBOARD_READ_TOKEN),
    ...(typeof secret === "string" && secret.length > 0 ? { sessionSecret: secret } : {}),
  };
}

function isQueue(v: unknown): v is CfQueue<WakeUpMessage> {
  return typeof v === "object" && v !== null && typeof (v as { sendBatch?: unknown }).sendBatch === "function";
}

/** A message body we sent, or null: anything else is dropped, since retrying it would never help. */
export function parseWakeUp(body: unknown): WakeUpMessage | null {
  if (typeof body !== "object" || body === null) return null;
  const { id, queue, runAt } = body as Record<string, unknown>;
  if (typeof id !== "string" || id.length === 0 || id.length > 200) return null;
  if (typeof queue !== "string" || queue.length === 0 || queue.length > 64) return null;
  if (typeof runAt !== "number" || !Number.isFinite(runAt)) return null;
  return { id, queue, runAt };
}

/** Retry delay after a failure to reach the store: 1, 2, 4 … 60 s by delivery attempt. */
export function backoffSeconds(attempts: number): number {
  return Math.min(60, 2 ** Math.min(6, Math.max(0, attempts - 1)));
}

/**
 * Wake-ups for the jobs a storage instance enqueues. One listener per
 * instance, registered once: the send is issued from the enqueuing call
 * itself, so it belongs to that request, and each invocation waits (in
 * `waitUntil`) for the sends still in flight when it ends.
 */
class Outbox {
  notifier: Notifier | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    storage: Storage,
    private readonly logger: Logger,
  ) {
    // This isolate's own enqueues only: other processes send their own wake-ups.
    storage.onEnqueue((jobs) => this.send(jobs.map((j) => ({ id: j.id, queue: j.queue, runAt: j.runAt }))), { remote: false });
  }

  private send(jobs: WakeUp[]): void {
    if (!this.notifier || jobs.length === 0) return;
    const p = this.notifier.notify(jobs).catch((error: unknown) => {
      // The jobs are stored; without the wake-up they wait for the next cron tick.
      this.logger.warn("could not send wake-ups; the next cron tick will run the jobs", { count: jobs.length, error: String(error) });
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  settled(): Promise<void> {
    return Promise.allSettled([...this.inFlight]).then(() => undefined);
  }
}

type Decision =
  | { kind: "ack"; why: string }
  | { kind: "retry"; delaySeconds: number; why: string; reclaim?: true }
  | { kind: "rearm"; at: number; why: string };

/**
 * What to do with a wake-up once the tick is over, from the job's state as
 * the store has it now (read after the tick recorded its outcomes).
 *
 * - ack: the job is finished (succeeded, failed, deleted) or gone. Its fate
 *   is durably recorded; nothing is left for this message to do.
 * - rearm: the job is not due yet (scheduled, awaiting a retry) or another
 *   invocation holds a live lease on it. A fresh wake-up is sent for the
 *   time to look again, then this one is acknowledged. A plain `retry`
 *   would count against the queue's `max_retries` and dead-letter a
 *   healthy job that is merely waiting (a retry in an hour, a schedule next
 *   week, a ten-minute job); the fresh message carries the duty instead.
 * - retry: the job is due but this invocation did not finish it (the budget
 *   ran out, it would not fit, its lease expired). The message comes back;
 *   after `max_retries` it is dead-lettered, which is then a real signal
 *   (the workers cannot keep up, or a job can never fit the budget), while
 *   the job itself stays in the store for the cron tick.
 */
function decide(msg: CfMessage, rec: JobRecord | null, now: number): Decision {
  const soon = backoffSeconds(msg.attempts);
  if (!rec) {
    if (msg.attempts <= 1 && now - msg.timestamp.getTime() < ABSENT_GRACE_MS) return { kind: "retry", delaySeconds: 2, why: "job not visible yet" };
    return { kind: "ack", why: "job not found" };
  }
  switch (rec.state) {
    case JobState.Succeeded:
    case JobState.Failed:
    case JobState.Deleted:
      return { kind: "ack", why: `job ${rec.state}` };
    case JobState.Scheduled:
    case JobState.AwaitingRetry:
      return rec.runAt > now ? { kind: "rearm", at: rec.runAt, why: `job ${rec.state} until ${new Date(rec.runAt).toISOString()}` } : { kind: "retry", delaySeconds: soon, why: "job due, not run yet" };
    case JobState.Processing:
      if (rec.leaseUntil !== undefined && rec.leaseUntil > now) return { kind: "rearm", at: rec.leaseUntil + LEASE_GRACE_MS, why: "job held by another invocation's lease" };
      return { kind: "retry", delaySeconds: soon, why: "lease expired", reclaim: true };
    case JobState.Enqueued:
    default:
      return { kind: "retry", delaySeconds: soon, why: "job due, not run yet" };
  }
}

/** Builds the module's `{ fetch, scheduled, queue }`. */
export function createWorker<Env = unknown>(options: CreateWorkerOptions<Env>): WorkerHandlers<Env> {
  if (!options || typeof options.storage !== "function") throw new ConfigError("[qml] [cloudflare] createWorker needs { storage: (env) => Storage, registry }");
  if (!options.registry) throw new ConfigError("[qml] [cloudflare] createWorker needs a registry");

  const storages = new WeakMap<object, Promise<Storage>>();
  const outboxes = new WeakMap<Storage, Outbox>();
  // The app depends on the env too (auth, registry): one per store and env.
  const apps = new WeakMap<Storage, WeakMap<object, Hono<AppEnv>>>();
  const anyEnv = {};

  const configFor = (env: Env): Resolved => resolveConfig(typeof options.config === "function" ? options.config(env) : options.config);
  const registryFor = (env: Env): WorkerRegistry => (typeof options.registry === "function" ? options.registry(env) : options.registry);

  const storageFor = async (env: Env): Promise<Storage> => {
    if (options.cacheStorage === false) return options.storage(env);
    const key = typeof env === "object" && env !== null ? (env as object) : anyEnv;
    let p = storages.get(key);
    if (!p) {
      p = Promise.resolve().then(() => options.storage(env));
      storages.set(key, p);
      // A store that could not be built now is tried again by the next invocation.
      p.catch(() => storages.delete(key));
    }
    return p;
  };

  const notifierFor = (env: Env, cfg: Resolved): Notifier | undefined => {
    if (options.notifier) return options.notifier(env);
    const binding = (env as Record<string, unknown> | undefined)?.[cfg.queueBinding];
    return isQueue(binding) ? new QueueNotifier(binding, { clock: cfg.clock }) : undefined;
  };

  const outboxFor = (storage: Storage, notifier: Notifier | undefined, logger: Logger): Outbox => {
    let o = outboxes.get(storage);
    if (!o) outboxes.set(storage, (o = new Outbox(storage, logger)));
    o.notifier = notifier;
    return o;
  };

  const runTick = (storage: Storage, env: Env, cfg: Resolved, kind: "cron" | "queue"): Promise<TickReport> => {
    const now = cfg.clock.now();
    return tick({
      storage,
      registry: registryFor(env),
      deadline: now + cfg.budgetMs,
      safetyMs: cfg.safetyMs,
      queues: cfg.queues,
      concurrency: cfg.concurrency,
      leaseMs: cfg.leaseMs,
      ...(cfg.jobTimeoutMs !== undefined ? { jobTimeoutMs: cfg.jobTimeoutMs } : {}),
      ...(cfg.maxJobs !== undefined ? { maxJobs: cfg.maxJobs } : {}),
      ...(cfg.retryPolicy ? { retryPolicy: cfg.retryPolicy } : {}),
      serverId: `cf-${kind}-${crypto.randomUUID().slice(0, 8)}`,
      // Left out unless the user set one: tick() then aligns the system clock with the store's.
      ...(cfg.clock !== systemClock ? { clock: cfg.clock } : {}),
      logger: cfg.logger,
      // A Queue consumer only processes; housekeeping is the cron's (and a
      // stale lease met by a wake-up is reclaimed below, on its own).
      maintenance: kind === "cron",
    });
  };

  // ------------------------------------------------------------------ fetch

  const fetch = async (request: Request, env: Env, ctx: CfExecutionContext): Promise<Response> => {
    let cfg: Resolved | undefined;
    try {
      cfg = configFor(env);
      const storage = await storageFor(env);
      const outbox = outboxFor(storage, notifierFor(env, cfg), cfg.logger);
      let perEnv = apps.get(storage);
      if (!perEnv) apps.set(storage, (perEnv = new WeakMap()));
      const envKey = typeof env === "object" && env !== null ? (env as object) : anyEnv;
      let app = perEnv.get(envKey);
      if (!app) {
        app = createApp({
          storage,
          registry: registryFor(env),
          auth: (options.auth ?? authFromEnv)(env),
          upgradeWebSocket,
          logger: cfg.logger,
          ...(cfg.basePath !== undefined ? { basePath: cfg.basePath } : {}),
          ...(cfg.liveIntervalMs !== undefined ? { liveIntervalMs: cfg.liveIntervalMs } : {}),
        });
        perEnv.set(envKey, app);
      }
      const res = await app.fetch(request, env, ctx as Parameters<Hono["fetch"]>[2]);
      ctx.waitUntil(outbox.settled());
      return res;
    } catch (e) {
      // Misconfiguration (no tokens, a bad budget) or a store that cannot be built: a problem document, details in the log only.
      return problemResponse(toProblem(e, cfg?.logger ?? new JsonLogger("info", { runtime: "cloudflare" })), new URL(request.url).pathname);
    }
  };

  // -------------------------------------------------------------- scheduled

  const scheduled = async (controller: { scheduledTime: number; cron: string }, env: Env, ctx: CfExecutionContext): Promise<void> => {
    const work = (async () => {
      const cfg = configFor(env);
      const log = cfg.logger.child({ invocation: "cron", cron: controller.cron });
      const storage = await storageFor(env).catch((error: unknown) => {
        log.error("store unavailable; the next tick tries again", { error: String(error) });
        throw error;
      });
      const outbox = outboxFor(storage, notifierFor(env, cfg), cfg.logger);
      try {
        const report = await runTick(storage, env, cfg, "cron");
        log.info("tick done", { ...report });
      } catch (error) {
        // Whatever the tick recorded stays recorded; leases it held run out
        // and the next tick reclaims their jobs.
        log.error("tick failed", { error: String(error) });
        throw error;
      } finally {
        // Wake-ups of recurring firings and of jobs enqueued by jobs.
        await outbox.settled();
      }
    })();
    // The tick is the invocation's work: waitUntil keeps the isolate on it
    // to the end, and awaiting it lets a failure mark the cron run failed.
    ctx.waitUntil(work);
    await work;
  };

  // ------------------------------------------------------------------ queue

  const queue = async (batch: CfMessageBatch<unknown>, env: Env, ctx: CfExecutionContext): Promise<void> => {
    const cfg = configFor(env);
    const log = cfg.logger.child({ invocation: "queue", queue: batch.queue, messages: batch.messages.length });

    if (cfg.deadLetterQueue !== undefined && batch.queue === cfg.deadLetterQueue) {
      for (const msg of batch.messages) {
        log.error("wake-up dead-lettered; its job stays in the store for the cron tick", { body: msg.body as Record<string, unknown>, attempts: msg.attempts });
        msg.ack();
      }
      return;
    }

    const served = new Set(cfg.queues);
    const pending: Array<{ msg: CfMessage; wake: WakeUpMessage }> = [];
    for (const msg of batch.messages) {
      const wake = parseWakeUp(msg.body);
      if (!wake) {
        log.warn("dropping a message that is not a qml wake-up", { messageId: msg.id });
        msg.ack();
      } else if (!served.has(wake.queue)) {
        // Retrying would never help: no consumer of this binding runs that queue.
        log.warn("dropping a wake-up for a queue this worker does not serve", { jobId: wake.id, jobQueue: wake.queue });
        msg.ack();
      } else {
        pending.push({ msg, wake });
      }
    }
    if (pending.length === 0) return;

    let storage: Storage;
    try {
      storage = await storageFor(env);
    } catch (error) {
      log.error("store unavailable; wake-ups will be retried", { error: String(error) });
      for (const { msg } of pending) msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
      return;
    }
    const notifier = notifierFor(env, cfg);
    const outbox = outboxFor(storage, notifier, cfg.logger);

    try {
      const report = await runTick(storage, env, cfg, "queue");
      log.info("tick done", { ...report });
    } catch (error) {
      // Whatever the tick recorded before failing is in the store; the
      // messages are settled below on what the store says.
      log.error("tick failed", { error: String(error) });
    }

    try {
      await settle(pending, storage, notifier, cfg, log);
    } finally {
      ctx.waitUntil(outbox.settled());
    }
  };

  /**
   * Acknowledges or retries each message. A message is acknowledged only
   * once the store shows its job finished or gone, or once a fresh wake-up
   * has taken over its duty; every other path retries it, so a failure
   * anywhere here (the store unreachable, a send refused) leaves the
   * message to come back rather than be lost.
   */
  const settle = async (
    pending: Array<{ msg: CfMessage; wake: WakeUpMessage }>,
    storage: Storage,
    notifier: Notifier | undefined,
    cfg: Resolved,
    log: Logger,
  ): Promise<void> => {
    const now = cfg.clock.now();
    let records: Map<string, JobRecord | null>;
    try {
      const ids = [...new Set(pending.map((p) => p.wake.id))];
      const recs = await Promise.all(ids.map((id) => storage.getRecord(id)));
      records = new Map(ids.map((id, i) => [id, recs[i] ?? null]));
    } catch (error) {
      log.error("could not read jobs back; wake-ups will be retried", { error: String(error) });
      for (const { msg } of pending) msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
      return;
    }

    const decided = pending.map((p) => ({ ...p, d: decide(p.msg, records.get(p.wake.id) ?? null, now) }));

    if (decided.some((x) => x.d.kind === "retry" && x.d.reclaim)) {
      // The invocation that held it died; hand the job back now rather than
      // at the next cron tick, so the retried wake-up finds it enqueued.
      try {
        // Lease times are on the store's clock (see tick()): reclaim by it, so
        // that an isolate whose clock runs fast cannot take a live lease.
        const storeNow = cfg.clock === systemClock ? ((await storage.serverTime()) ?? now) : now;
        await storage.reclaimExpired(storeNow, 1000);
      } catch (error) {
        log.warn("could not reclaim expired leases", { error: String(error) });
      }
    }

    const rearm = decided.filter((x) => x.d.kind === "rearm") as Array<(typeof decided)[number] & { d: { kind: "rearm"; at: number } }>;
    let rearmed = false;
    if (rearm.length > 0 && notifier) {
      try {
        await notifier.notify(rearm.map((x) => ({ id: x.wake.id, queue: x.wake.queue, runAt: x.d.at })));
        rearmed = true;
      } catch (error) {
        log.warn("could not send fresh wake-ups; retrying the messages instead", { error: String(error) });
      }
    }

    for (const { msg, wake, d } of decided) {
      if (d.kind === "ack" || (d.kind === "rearm" && rearmed)) {
        msg.ack();
      } else {
        const delaySeconds = d.kind === "rearm" ? Math.max(1, delaySecondsUntil(d.at, now)) : d.delaySeconds;
        msg.retry({ delaySeconds });
      }
      log.debug("wake-up settled", { jobId: wake.id, action: d.kind === "rearm" && !rearmed ? "retry" : d.kind, why: d.why });
    }
  };

  return { fetch, scheduled, queue };
}

