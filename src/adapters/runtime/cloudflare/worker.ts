/**
 * The Cloudflare Workers runtime: one module whose default export is
 * `{ fetch, scheduled, queue }`. This file only translates the platform's
 * events; what they do is the serverless consumer's (../serverless):
 *
 * - `scheduled` (cron trigger): one tick with housekeeping (promote,
 *   reclaim, recurring), then jobs until the budget is spent.
 * - `queue` (Queue consumer): wake-ups. The consumer's decision table says
 *   ack, retry (`msg.retry({ delaySeconds })`), rearm (a fresh wake-up
 *   sent, then ack) or dead-letter (`msg.retry()` until the queue's
 *   `max_retries` moves it to the dead-letter queue). Messages of the
 *   dead-letter queue, when this Worker reads it too, are logged and acked.
 * - `fetch`: the dashboard and REST API (`createApp`), behind tokens.
 *
 * Budgets. Cron and Queue consumer invocations may run 15 minutes of wall
 * time; CPU time is capped separately (30 s by default, configurable). A
 * tick spends mostly wall time waiting on the store and on jobs' own I/O,
 * and its default budget of 25 s keeps it well inside both, so a slow
 * store never lets the platform kill an invocation half-way through its
 * writes. If the platform kills one anyway, its leases run out and the
 * next cron tick reclaims the jobs.
 *
 * Wake-ups: every job enqueued through a storage this runtime handed out
 * (API calls, recurring firings, jobs enqueueing jobs, a Client on it)
 * goes out once through the storage's outbox, sent within the enqueuing
 * request and awaited in `ctx.waitUntil`, so a response never waits on it.
 */
import { readEnv } from "../../../core/config/env.js";
import type { Hono } from "hono";
import type { Notifier } from "../../../core/client.js";
import { ConfigError } from "../../../core/errors.js";
import { JsonLogger } from "../../../core/logger.js";
import type { WorkerRegistry } from "../../../core/registry.js";
import type { Storage } from "../../../core/storage.js";
import { createApp, type AppEnv } from "../../http/app.js";
import type { AuthOptions } from "../../http/auth.js";
import { liveLimitsFromEnv } from "../../http/live.js";
import { problemResponse, toProblem } from "../../http/problem.js";
import { throttleOption } from "../../http/throttle.js";
import { resolveServerlessConfig, type ResolvedServerlessConfig, type ServerlessConfig } from "../serverless/config.js";
import { consumeWakeUps, drainDeadLetters, outboxFor, runScheduled, type Invocation, type Settlement } from "../serverless/consumer.js";
import { StoreCache } from "../serverless/store-cache.js";
import { QueueNotifier } from "./queue-notifier.js";
import { upgradeWebSocket } from "./websocket.js";
import type { CfExecutionContext, CfMessage, CfMessageBatch, CfQueue, WakeUpMessage, WorkerHandlers } from "./types.js";

export interface CloudflareConfig extends ServerlessConfig {
  /** Name of the env binding of the wake-up Queue producer (default "QML_QUEUE"). */
  queueBinding?: string;
  /**
   * Name of the dead-letter queue, when this Worker also consumes it: its
   * messages are logged and acknowledged. Their jobs are safe in the store
   * and the next cron tick runs them.
   */
  deadLetterQueue?: string;
  /** Dashboard mount point, e.g. "/qml" (default: the root). */
  basePath?: string;
  /** Period of the dashboard's live snapshots in ms (default 1000). */
  liveIntervalMs?: number;
}

export interface ResolvedCloudflareConfig extends ResolvedServerlessConfig {
  budgetMs: number;
  queueBinding: string;
  deadLetterQueue: string | undefined;
  basePath: string | undefined;
  liveIntervalMs: number | undefined;
}

export interface CreateWorkerOptions<Env> {
  /**
   * The job store for an env. By default it is built once per isolate and
   * env and reused by every invocation: pick HTTP drivers (Upstash REST,
   * Neon over HTTP), which hold no connection a later request could not
   * use (workerd forbids I/O objects from crossing requests).
   */
  storage: (env: Env) => Storage | Promise<Storage>;
  /** Set false to call `storage(env)` on every invocation instead (the factory then owns caching and closing). */
  cacheStorage?: boolean;
  /** Run `storage.migrate()` once per built store (default false). */
  migrate?: boolean;
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

/** Workers stop an invocation at 15 minutes of wall time. */
const PLATFORM_WALL_LIMIT_MS = 15 * 60_000;

const WORKERS = {
  runtime: "cloudflare",
  budgetMs: 25_000,
  maxBudgetMs: PLATFORM_WALL_LIMIT_MS - 30_000,
  safetyMs: (budgetMs: number | undefined) => Math.min(2_000, Math.floor((budgetMs ?? 25_000) / 4)),
};

export function resolveConfig(c: CloudflareConfig = {}): ResolvedCloudflareConfig {
  if (c.deadLetterQueue !== undefined && (typeof c.deadLetterQueue !== "string" || c.deadLetterQueue.length === 0)) {
    throw new ConfigError("deadLetterQueue must be a queue name", { scope: "cloudflare" });
  }
  return {
    ...resolveServerlessConfig(c, WORKERS),
    budgetMs: c.budgetMs ?? WORKERS.budgetMs,
    queueBinding: c.queueBinding ?? "QML_QUEUE",
    deadLetterQueue: c.deadLetterQueue,
    basePath: c.basePath,
    liveIntervalMs: c.liveIntervalMs,
  };
}

/** The default auth: tokens from secrets. Never open: a Worker is reachable from the internet. */
export function authFromEnv(env: unknown): AuthOptions {
  const e = readEnv((env ?? {}) as Record<string, unknown>, "workers");
  return {
    adminTokens: e.dashboardTokens ?? [],
    readTokens: e.dashboardReadTokens ?? [],
    ...(e.sessionSecret !== undefined ? { sessionSecret: e.sessionSecret } : {}),
    ...throttleOption(e.loginThrottle),
  };
}

function isQueue(v: unknown): v is CfQueue<WakeUpMessage> {
  return typeof v === "object" && v !== null && typeof (v as { sendBatch?: unknown }).sendBatch === "function";
}

/** A decision of the consumer, told to the platform. */
function answer(msg: CfMessage, s: Settlement): void {
  if (s.action === "ack") msg.ack();
  else if (s.action === "retry") msg.retry({ delaySeconds: s.delaySeconds });
  // Dead-letter: refused without a delay of our own; the queue's max_retries moves it on.
  else msg.retry();
}

/** Builds the module's `{ fetch, scheduled, queue }`. */
export function createWorker<Env = unknown>(options: CreateWorkerOptions<Env>): WorkerHandlers<Env> {
  if (!options || typeof options.storage !== "function")
    throw new ConfigError("createWorker needs { storage: (env) => Storage, registry }", { scope: "cloudflare" });
  if (!options.registry) throw new ConfigError("createWorker needs a registry", { scope: "cloudflare" });

  // Keyed by the env object: an isolate may serve several (tests, or a platform change of bindings).
  const anyEnv = {};
  const keyOf = (env: Env): object => (typeof env === "object" && env !== null ? (env as object) : anyEnv);
  const stores = new StoreCache<object>({ ...(options.cacheStorage === false ? { cache: false } : {}), ...(options.migrate ? { migrate: true } : {}) });
  const storeFor = (env: Env): Promise<Storage> => stores.get(keyOf(env), () => options.storage(env));
  // The app depends on the env too (auth, registry): one per store and env.
  const apps = new WeakMap<Storage, WeakMap<object, Hono<AppEnv>>>();

  const configFor = (env: Env): ResolvedCloudflareConfig => resolveConfig(typeof options.config === "function" ? options.config(env) : options.config);
  const registryFor = (env: Env): WorkerRegistry => (typeof options.registry === "function" ? options.registry(env) : options.registry);
  const notifierFor = (env: Env, cfg: ResolvedCloudflareConfig): Notifier | undefined => {
    if (options.notifier) return options.notifier(env);
    const binding = (env as Record<string, unknown> | undefined)?.[cfg.queueBinding];
    return isQueue(binding) ? new QueueNotifier(binding, { clock: cfg.clock }) : undefined;
  };
  const invocation = (env: Env, cfg: ResolvedCloudflareConfig, kind: "cron" | "queue"): Invocation => ({
    config: cfg,
    registry: registryFor(env),
    notifier: notifierFor(env, cfg),
    deadline: cfg.clock.now() + cfg.budgetMs,
    serverId: `cf-${kind}-${crypto.randomUUID().slice(0, 8)}`,
  });

  const fetch = async (request: Request, env: Env, ctx: CfExecutionContext): Promise<Response> => {
    let cfg: ResolvedCloudflareConfig | undefined;
    try {
      cfg = configFor(env);
      const storage = await storeFor(env);
      const outbox = outboxFor(storage, { config: cfg, notifier: notifierFor(env, cfg) });
      let perEnv = apps.get(storage);
      if (!perEnv) apps.set(storage, (perEnv = new WeakMap()));
      let app = perEnv.get(keyOf(env));
      if (!app) {
        const settings = readEnv((env ?? {}) as Record<string, unknown>, "workers");
        app = createApp({
          storage,
          registry: registryFor(env),
          auth: (options.auth ?? authFromEnv)(env),
          upgradeWebSocket,
          live: liveLimitsFromEnv(settings),
          // Counters of this isolate (its requests, cron and queue invocations); depth gauges from the store.
          metrics: settings.metricsToken !== undefined ? { token: settings.metricsToken } : {},
          logger: cfg.logger,
          ...(cfg.basePath !== undefined ? { basePath: cfg.basePath } : {}),
          ...(cfg.liveIntervalMs !== undefined ? { liveIntervalMs: cfg.liveIntervalMs } : {}),
        });
        perEnv.set(keyOf(env), app);
      }
      const res = await app.fetch(request, env, ctx as Parameters<Hono["fetch"]>[2]);
      ctx.waitUntil(outbox.settled());
      return res;
    } catch (e) {
      // Misconfiguration (no tokens, a bad budget) or a store that cannot be built: a problem document, details in the log only.
      return problemResponse(toProblem(e, cfg?.logger ?? new JsonLogger("info", { runtime: "cloudflare" })), new URL(request.url).pathname);
    }
  };

  const scheduled = async (controller: { scheduledTime: number; cron: string }, env: Env, ctx: CfExecutionContext): Promise<void> => {
    const work = (async () => {
      const cfg = configFor(env);
      const log = cfg.logger.child({ invocation: "cron", cron: controller.cron });
      try {
        const report = await runScheduled(await storeFor(env), invocation(env, cfg, "cron"));
        log.info("tick done", { ...report });
      } catch (error) {
        // Whatever the tick recorded stays recorded; leases it held run out and the next tick reclaims their jobs.
        log.error("tick failed; the next tick tries again", { error });
        throw error;
      }
    })();
    // waitUntil keeps the isolate on the tick to its end; awaiting it lets a failure mark the cron run failed.
    ctx.waitUntil(work);
    await work;
  };

  const queue = async (batch: CfMessageBatch<unknown>, env: Env, ctx: CfExecutionContext): Promise<void> => {
    const cfg = configFor(env);
    const deliveries = batch.messages.map((m) => ({ id: m.id, body: m.body, attempts: m.attempts, sentAt: m.timestamp.getTime() }));
    if (cfg.deadLetterQueue !== undefined && batch.queue === cfg.deadLetterQueue) {
      drainDeadLetters(deliveries, cfg).forEach((s, i) => answer(batch.messages[i]!, s));
      return;
    }
    let opened: Storage | undefined;
    const inv = invocation(env, cfg, "queue");
    const settlements = await consumeWakeUps(async () => (opened = await storeFor(env)), deliveries, inv);
    settlements.forEach((s, i) => answer(batch.messages[i]!, s));
    if (opened) ctx.waitUntil(outboxFor(opened, inv).settled());
  };

  return { fetch, scheduled, queue };
}
