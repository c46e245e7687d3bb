/**
 * The Node runtime: a BackgroundJobServer plus one HTTP server (hono on
 * @hono/node-server) for the probes, the dashboard and its API, with live
 * updates over @hono/node-ws.
 *
 * Start-up order matters to orchestrators: the HTTP server listens first,
 * so /healthz answers while the store is still unreachable (a database that
 * boots after the app is normal in Compose and Kubernetes), and the job
 * server keeps retrying its start (migrate, then poll) with backoff; /readyz
 * says 503 until it has started.
 *
 * Shutdown: /readyz turns 503 at once (load balancers stop routing), the job
 * server stops claiming and drains within the grace period, then the HTTP
 * server and the store's connections close.
 */
import { Hono } from "hono";
import { BackgroundJobServer, ConfigError, JsonLogger, ServerConfig, ShutdownError, WorkerRegistry, type Logger, type Storage } from "../../../index.js";
import { backoffMs } from "../../../core/backoff.js";
import { sleep } from "../../../core/clock.js";
import { createApp, isLoopbackHost, throttleOption, secretsEqual, type AuthOptions } from "../../http/index.js";
import { MetricsEndpoint } from "../../http/metrics.js";
import { problemResponse, unauthorized } from "../../http/problem.js";
import { processMetrics, type JobMetrics } from "../../../core/metrics.js";
import { registerDemoWorkers, seedDemoJobs, startDemoProducer } from "./demo.js";
import type { NodeEnvConfig } from "./env.js";
import { nodeHttpServer } from "./http-server.js";
import { liveLimitsFromEnv } from "../../http/live.js";
import { Readiness, publicReport } from "./readiness.js";
import { storageFromEnv } from "./storage-from-env.js";
import { loadWorkersModule } from "./workers-module.js";

/** How the dashboard is served: behind tokens, open on loopback, or not at all. */
export type DashboardMode = "token" | "open" | "off";

export interface NodeServerHandle {
  storage: Storage;
  server: BackgroundJobServer;
  registry: WorkerRegistry;
  readiness: Readiness;
  /** The address the HTTP server listens on, e.g. `http://127.0.0.1:8080`. */
  url: string;
  dashboard: DashboardMode;
  /**
   * Settles once the job server runs (store reached, migrations applied);
   * rejects only when stopped before that.
   */
  started: Promise<void>;
  stop(graceMs?: number): Promise<void>;
}

export interface StartNodeServerOptions {
  config: NodeEnvConfig;
  /** Workers to run; the demo workers and QML_WORKERS_MODULE's are added to it. */
  registry?: WorkerRegistry;
  storage?: Storage;
  logger?: Logger;
  /** Longest wait between start attempts while the store is unreachable (default 30 s). */
  maxStartRetryMs?: number;
  /** The collector GET /metrics exposes, fed by this server's events and enqueues (default this process's, `processMetrics()`). */
  metrics?: JobMetrics;
}

/** The dashboard's auth from the environment; null when it must not be served. */
export function dashboardAuth(
  cfg: Pick<NodeEnvConfig, "dashboardTokens" | "dashboardReadTokens" | "sessionSecret" | "loginThrottle" | "host">,
): AuthOptions | null {
  const adminTokens = cfg.dashboardTokens;
  const readTokens = cfg.dashboardReadTokens;
  if (adminTokens.length + readTokens.length > 0)
    return { adminTokens, readTokens, ...(cfg.sessionSecret !== undefined ? { sessionSecret: cfg.sessionSecret } : {}), ...throttleOption(cfg.loginThrottle) };
  // Without a token the dashboard is everyone's: only tolerable where only
  // this machine can reach it (Hangfire's default; its regression became an advisory).
  return isLoopbackHost(cfg.host.includes(":") && !cfg.host.startsWith("[") ? `[${cfg.host}]` : cfg.host) ? { open: true } : null;
}

/**
 * The probes, unauthenticated and cheap, in front of the dashboard app (when
 * there is one), which answers everything else. /readyz tells why the store
 * is unreachable only to a caller `isAdmin` accepts (publicReport).
 */
export function createNodeApp(
  readiness: Readiness,
  dashboard?: { fetch: (req: Request, env: unknown) => Response | Promise<Response> },
  isAdmin?: (request: Request) => Promise<boolean>,
  metricsOnly?: MetricsEndpoint,
): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => {
    c.header("Cache-Control", "no-store");
    return c.json({ ok: true });
  });
  app.get("/readyz", async (c) => {
    const full = await readiness.check();
    const report = !full.ok && isAdmin && (await isAdmin(c.req.raw)) ? full : publicReport(full);
    c.header("Cache-Control", "no-store");
    if (!report.ok) c.header("Retry-After", "5");
    return c.json(report, report.ok ? 200 : 503);
  });
  if (dashboard) app.all("*", (c) => dashboard.fetch(c.req.raw, c.env));
  // No dashboard (no API token, not on loopback), but a metrics token: /metrics alone, to that token alone.
  else if (metricsOnly)
    app.get("/metrics", async (c) =>
      (await metricsOnly.tokenMatches(c.req.header("authorization")))
        ? metricsOnly.respond()
        : problemResponse(unauthorized("send `Authorization: Bearer <QML_METRICS_TOKEN>`").problem, "/metrics"),
    );
  return app;
}

/**
 * Whether a request carries an admin bearer token. Compared here rather
 * than by the dashboard's Authenticator, whose keys and throttle live in
 * the store: /readyz must answer its admin while the store is down. Asked
 * only while not ready, and of tokens of 64+ bits (auth.ts), one bit per
 * request is no guessing aid.
 */
function adminBearer(tokens: readonly string[]): (request: Request) => Promise<boolean> {
  return async (request) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
    if (m === null) return false;
    // Every token compared, whichever matched.
    const matches = await Promise.all(tokens.map((t) => secretsEqual(m[1]!, t)));
    return matches.includes(true);
  };
}

export async function startNodeServer(options: StartNodeServerOptions): Promise<NodeServerHandle> {
  const cfg = options.config;
  const logger = options.logger ?? new JsonLogger(cfg.logLevel, { service: "qml" });
  if ((cfg.storage === "memory" || cfg.storage === "sqlite") && (cfg.databaseUrl || cfg.redisUrl) && !options.storage) {
    const where = cfg.storage === "memory" ? "jobs live in this process only" : `jobs live in the SQLite file ${cfg.sqlitePath}`;
    logger.warn(`QML_STORAGE is ${cfg.storage}: ${where} and DATABASE_URL/REDIS_URL are not used; set QML_STORAGE=postgres or redis`, {});
  }
  const storage = options.storage ?? (await storageFromEnv(cfg, logger));
  try {
    return await startOn(storage, options, logger);
  } catch (e) {
    await storage.close().catch(() => {});
    throw e;
  }
}

async function startOn(storage: Storage, options: StartNodeServerOptions, logger: Logger): Promise<NodeServerHandle> {
  const cfg = options.config;
  const registry = options.registry ?? new WorkerRegistry();
  if (cfg.demo !== "off") registerDemoWorkers(registry);
  if (cfg.workersModule) {
    const names = await loadWorkersModule(cfg.workersModule, registry, { storage, logger, config: cfg });
    logger.info("workers registered", { module: cfg.workersModule, names });
  }

  const serverConfig = new ServerConfig(cfg.serverId)
    .workerCount(cfg.workers)
    .queues(cfg.queues)
    .pollingInterval(cfg.pollMs)
    .prefetch(cfg.prefetch)
    .maxPollingInterval(Math.max(cfg.pollMs, 5 * cfg.pollMs))
    .shutdownTimeout(cfg.shutdownTimeoutMs)
    .leaseDuration(cfg.leaseMs)
    .logger(logger);
  if (cfg.jobTimeoutMs !== undefined) serverConfig.jobTimeout(cfg.jobTimeoutMs);
  const server = new BackgroundJobServer(storage, registry, serverConfig);
  const metrics = options.metrics ?? processMetrics();
  const stopMetrics = [metrics.observe(server), metrics.observeEnqueues(storage)];
  const metricsOptions = { collector: metrics, ...(cfg.metricsToken !== undefined ? { token: cfg.metricsToken } : {}) };
  const readiness = new Readiness(storage, { logger });

  // A server without workers is a producer for other processes: the names it
  // may enqueue are theirs, which it cannot know. With workers, a name none
  // of them runs is most likely a typo, refused (422) before it waits forever.
  const enqueueNames = cfg.enqueueNames ?? (registry.names().length > 0 ? "registered" : "any");
  const auth = dashboardAuth(cfg);
  const dashboardMode: DashboardMode = auth === null ? "off" : "open" in auth ? "open" : "token";
  const http = nodeHttpServer();
  const dashboard = auth
    ? createApp({
        storage,
        ...(enqueueNames === "registered" ? { registry } : {}),
        auth,
        upgradeWebSocket: http.upgradeWebSocket,
        logger: logger.child({ component: "http" }),
        live: liveLimitsFromEnv(cfg),
        trustForwardedProto: cfg.trustForwardedProto === true,
        metrics: metricsOptions,
      })
    : undefined;
  const metricsOnly =
    !dashboard && cfg.metricsToken !== undefined ? new MetricsEndpoint(storage, metricsOptions, logger.child({ component: "http" })) : undefined;
  http.bind(createNodeApp(readiness, dashboard, cfg.dashboardTokens.length > 0 ? adminBearer(cfg.dashboardTokens) : undefined, metricsOnly));
  const bound = await http.listen(cfg.host, cfg.port, `${cfg.host}:${cfg.port} (QML_HOST, PORT)`);
  const url = bound.origin;
  const address = bound.address;
  logger.info("http listening", {
    url,
    bound: `${address.address}:${address.port}`,
    dashboard: dashboardMode,
    enqueueNames,
    health: `${url}/healthz`,
    ready: `${url}/readyz`,
  });
  if (dashboardMode === "off") {
    logger.warn("dashboard not served: no QML_DASHBOARD_TOKEN and the server does not bind loopback (QML_HOST); only /healthz and /readyz answer", {
      host: cfg.host,
    });
  }

  const startAbort = new AbortController();
  const demoStop = new AbortController();
  const maxRetry = options.maxStartRetryMs ?? 30_000;
  const started = (async () => {
    for (let attempt = 1; ; attempt++) {
      const delay = backoffMs(attempt, { baseMs: Math.min(500, maxRetry), maxMs: maxRetry });
      if (startAbort.signal.aborted) throw new ShutdownError();
      try {
        await server.start();
        break;
      } catch (e) {
        readiness.markStartFailed(e);
        // A configuration problem (Redis that may evict keys, a schema from a
        // newer qml) is an operator's to fix, not a wait; it is retried all
        // the same, so that fixing it needs no restart, but said louder.
        const log = e instanceof ConfigError ? logger.error.bind(logger) : logger.warn.bind(logger);
        log("job server cannot start yet; retrying", { storage: storage.kind, error: e, retryInMs: delay });
        await sleep(delay, startAbort.signal);
      }
    }
    // A stop that came during the last attempt wins: stop() awaits this promise before server.stop().
    readiness.markStarted();
    if (cfg.demo !== "off" && !startAbort.signal.aborted) {
      try {
        const seeded = await seedDemoJobs(storage);
        logger.info("enqueued demo jobs", { count: seeded.created, alreadyThere: seeded.existing });
        if (cfg.demo === "producer") startDemoProducer(storage, demoStop.signal);
      } catch (e) {
        logger.warn("could not enqueue the demo jobs", { error: e });
      }
    }
  })();
  started.catch(() => {});

  let stopped: Promise<void> | null = null;
  return {
    storage,
    server,
    registry,
    readiness,
    url,
    dashboard: dashboardMode,
    started,
    stop(graceMs?: number) {
      stopped ??= (async () => {
        readiness.markDraining();
        startAbort.abort();
        demoStop.abort();
        await started.catch(() => {});
        try {
          await server.stop(graceMs);
        } finally {
          for (const off of stopMetrics) off();
          await http.close();
          await storage.close();
        }
      })();
      return stopped;
    },
  };
}
