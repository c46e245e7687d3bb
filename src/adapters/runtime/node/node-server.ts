/**
 * The Node runtime: a BackgroundJobServer plus an HTTP server (hono on
 * @hono/node-server) for health, the API and the dashboard, with graceful
 * shutdown on SIGTERM/SIGINT.
 */
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import {
  BackgroundJobServer,
  JsonLogger,
  ServerConfig,
  WorkerRegistry,
  type Logger,
  type Storage,
} from "../../../index.js";
import { registerDemoWorkers, seedDemoJobs, startDemoProducer } from "./demo.js";
import type { NodeEnvConfig } from "./env.js";
import { storageFromEnv } from "./storage-from-env.js";

export interface NodeServerHandle {
  storage: Storage;
  server: BackgroundJobServer;
  /** The address the HTTP server listens on, e.g. `http://127.0.0.1:8080`. */
  url: string;
  stop(graceMs?: number): Promise<void>;
}

export interface StartNodeServerOptions {
  config: NodeEnvConfig;
  /** Workers to run; the demo workers are added when `config.demo` is not "off". */
  registry?: WorkerRegistry;
  storage?: Storage;
  logger?: Logger;
}

/** The HTTP surface until the dashboard is mounted: health and stats. */
export function createNodeApp(storage: Storage, server: BackgroundJobServer): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", async (c) => {
    try {
      await storage.stats({ minutes: 1, hours: 1 });
      return c.json({ ok: true, storage: storage.kind, running: server.isRunning });
    } catch (e) {
      c.header("Retry-After", "5");
      return c.json({ ok: false, storage: storage.kind, error: String((e as Error).message ?? e) }, 503);
    }
  });
  app.get("/api/stats", async (c) => c.json(await storage.stats()));
  return app;
}

export async function startNodeServer(options: StartNodeServerOptions): Promise<NodeServerHandle> {
  const cfg = options.config;
  const logger = options.logger ?? new JsonLogger(cfg.logLevel, { service: "qml" });
  const storage = options.storage ?? (await storageFromEnv(cfg));
  const registry = options.registry ?? new WorkerRegistry();
  if (cfg.demo !== "off") registerDemoWorkers(registry);

  const serverConfig = new ServerConfig(cfg.serverId)
    .workerCount(cfg.workers)
    .queues(cfg.queues)
    .pollingInterval(cfg.pollMs)
    .maxPollingInterval(Math.max(cfg.pollMs, 5 * cfg.pollMs))
    .shutdownTimeout(cfg.shutdownTimeoutMs)
    .logger(logger);
  const server = new BackgroundJobServer(storage, registry, serverConfig);
  await server.start();

  const demoStop = new AbortController();
  if (cfg.demo === "seed" || cfg.demo === "producer") {
    const ids = await seedDemoJobs(storage);
    logger.info("enqueued demo jobs", { count: ids.length });
  }
  if (cfg.demo === "producer") startDemoProducer(storage, demoStop.signal);

  const app = createNodeApp(storage, server);
  const http: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: cfg.host, port: cfg.port }, () => resolve(s));
  });
  const addr = http.address();
  const port = typeof addr === "object" && addr ? addr.port : cfg.port;
  const url = `http://${cfg.host.includes(":") ? `[${cfg.host}]` : cfg.host}:${port}`;
  logger.info("http listening", { url, stats: `${url}/api/stats` });

  let stopped: Promise<void> | null = null;
  return {
    storage,
    server,
    url,
    stop(graceMs?: number) {
      stopped ??= (async () => {
        demoStop.abort();
        await new Promise<void>((resolve) => http.close(() => resolve()));
        await server.stop(graceMs);
        await storage.close();
      })();
      return stopped;
    },
  };
}
