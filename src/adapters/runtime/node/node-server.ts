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
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { createNodeWebSocket, type NodeWebSocketInit } from "@hono/node-ws";
import { Hono } from "hono";
import {
  BackgroundJobServer,
  ConfigError,
  JsonLogger,
  ServerConfig,
  ShutdownError,
  WorkerRegistry,
  sleep,
  type Logger,
  type Storage,
} from "../../../index.js";
import { createApp, isLoopbackHost, type AuthOptions } from "../../http/index.js";
import { registerDemoWorkers, seedDemoJobs, startDemoProducer } from "./demo.js";
import type { NodeEnvConfig } from "./env.js";
import { Readiness } from "./readiness.js";
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
}

/** The dashboard's auth from the environment; null when it must not be served. */
export function dashboardAuth(cfg: Pick<NodeEnvConfig, "dashboardToken" | "dashboardReadToken" | "host">): AuthOptions | null {
  const adminTokens = cfg.dashboardToken ? [cfg.dashboardToken] : [];
  const readTokens = cfg.dashboardReadToken ? [cfg.dashboardReadToken] : [];
  if (adminTokens.length + readTokens.length > 0) return { adminTokens, readTokens };
  // Without a token the dashboard is everyone's: only tolerable where only
  // this machine can reach it (Hangfire's default; its regression became an advisory).
  return isLoopbackHost(cfg.host.includes(":") && !cfg.host.startsWith("[") ? `[${cfg.host}]` : cfg.host) ? { open: true } : null;
}

/**
 * The probes, unauthenticated and cheap, in front of the dashboard app (when
 * there is one), which answers everything else.
 */
export function createNodeApp(readiness: Readiness, dashboard?: { fetch: (req: Request, env: unknown) => Response | Promise<Response> }): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => {
    c.header("Cache-Control", "no-store");
    return c.json({ ok: true });
  });
  app.get("/readyz", async (c) => {
    const report = await readiness.check();
    c.header("Cache-Control", "no-store");
    if (!report.ok) c.header("Retry-After", "5");
    return c.json(report, report.ok ? 200 : 503);
  });
  if (dashboard) app.all("*", (c) => dashboard.fetch(c.req.raw, c.env));
  return app;
}

export async function startNodeServer(options: StartNodeServerOptions): Promise<NodeServerHandle> {
  const cfg = options.config;
  const logger = options.logger ?? new JsonLogger(cfg.logLevel, { service: "qml" });
  if (cfg.storage === "memory" && (cfg.databaseUrl || cfg.redisUrl) && !options.storage) {
    logger.warn("QML_STORAGE is memory (the default): jobs live in this process only and DATABASE_URL/REDIS_URL are not used; set QML_STORAGE=postgres or redis", {});
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
    .maxPollingInterval(Math.max(cfg.pollMs, 5 * cfg.pollMs))
    .shutdownTimeout(cfg.shutdownTimeoutMs)
    .logger(logger);
  const server = new BackgroundJobServer(storage, registry, serverConfig);
  const readiness = new Readiness(storage);

  const auth = dashboardAuth(cfg);
  const dashboardMode: DashboardMode = auth === null ? "off" : "open" in auth ? "open" : "token";
  // node-ws routes upgrade requests through the app, and the app needs
  // node-ws's upgrade helper: the late-bound reference breaks the cycle.
  let app: Hono | undefined;
  const wsInit: NodeWebSocketInit = { app: { request: (...args: Parameters<Hono["request"]>) => app!.request(...args) } as unknown as Hono };
  const nodeWs = createNodeWebSocket(wsInit);
  const dashboard = auth
    ? createApp({ storage, registry, auth, upgradeWebSocket: nodeWs.upgradeWebSocket, logger: logger.child({ component: "http" }) })
    : undefined;
  app = createNodeApp(readiness, dashboard);

  const http = createAdaptorServer({ fetch: app.fetch }) as Server;
  nodeWs.injectWebSocket(http);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(new ConfigError(`cannot listen on ${cfg.host}:${cfg.port} (QML_HOST, PORT): ${e.message}`));
    http.once("error", onError);
    http.listen(cfg.port, cfg.host, () => {
      http.off("error", onError);
      resolve();
    });
  });
  const bound = http.address() as AddressInfo;
  const shownHost = bound.address === "0.0.0.0" ? "127.0.0.1" : bound.address === "::" ? "[::1]" : bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  const url = `http://${shownHost}:${bound.port}`;
  // @hono/node-ws rebuilds upgrade URLs as http://localhost (no port) unless
  // told the real origin: without this a page on another localhost port
  // would pass the WebSocket Origin check.
  wsInit.baseUrl = url;
  logger.info("http listening", { url, bound: `${bound.address}:${bound.port}`, dashboard: dashboardMode, health: `${url}/healthz`, ready: `${url}/readyz` });
  if (dashboardMode === "off") {
    logger.warn("dashboard not served: no QML_DASHBOARD_TOKEN and the server does not bind loopback (QML_HOST); only /healthz and /readyz answer", {
      host: cfg.host,
    });
  }

  const startAbort = new AbortController();
  const demoStop = new AbortController();
  const maxRetry = options.maxStartRetryMs ?? 30_000;
  const started = (async () => {
    for (let delay = Math.min(500, maxRetry); ; delay = Math.min(delay * 2, maxRetry)) {
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
        log("job server cannot start yet; retrying", { storage: storage.kind, error: String(e), retryInMs: delay });
        await sleep(delay, startAbort.signal);
      }
    }
    // A stop that came during the last attempt wins: stop() awaits this promise before server.stop().
    readiness.markStarted();
    if (cfg.demo !== "off" && !startAbort.signal.aborted) {
      try {
        const ids = await seedDemoJobs(storage);
        logger.info("enqueued demo jobs", { count: ids.length });
        if (cfg.demo === "producer") startDemoProducer(storage, demoStop.signal);
      } catch (e) {
        logger.warn("could not enqueue the demo jobs", { error: String(e) });
      }
    }
  })();
  started.catch(() => {});

  const closeHttp = () =>
    new Promise<void>((resolve) => {
      for (const ws of nodeWs.wss.clients) ws.terminate();
      http.close(() => resolve());
      // Keep-alive and SSE connections would hold close() open.
      http.closeAllConnections();
    });

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
          await closeHttp();
          await storage.close();
        }
      })();
      return stopped;
    },
  };
}
