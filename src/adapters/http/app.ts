/**
 * The dashboard: one hono app (REST API + UI + live updates) that runs
 * unchanged on Node (`DashboardServer`), in workerd and behind
 * `hono/aws-lambda`. Web Standards only: no `node:*`, no file reads (the UI
 * is embedded by scripts/embed-assets.ts).
 *
 * Routes (under `basePath`), one module each in routes/:
 *
 *   ui.ts         GET /healthz (unauthenticated)  GET /  GET|POST /login  POST /logout  GET /assets/:file
 *   session.ts    GET /api/session                role + CSRF token for the UI
 *                 POST /api/sessions/end-all      ends every cookie session (admin)
 *   jobs.ts       GET|POST /api/jobs  GET /api/jobs/:id  POST /api/jobs/:id/{retry,requeue,delete}
 *                 DELETE /api/jobs/:id  POST /api/jobs/bulk/{retry,requeue,delete}
 *   stats.ts      GET /api/stats  GET /api/queues
 *   recurring.ts  GET /api/recurring[/:id]  PUT|DELETE /api/recurring/:id  POST /api/recurring/:id/trigger
 *   live.ts       GET /api/live  GET /api/events (SSE)  GET /ws (WebSocket, when the runtime has one)
 *   metrics.ts    GET /metrics (Prometheus; the metrics token or the API's credentials)
 *
 * The defences every request meets, in order, are in security.ts.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { UpgradeWebSocket } from "hono/ws";
import { ConfigError } from "../../core/errors.js";
import { JsonLogger, type Logger } from "../../core/logger.js";
import type { WorkerRegistry } from "../../core/registry.js";
import type { Storage } from "../../core/storage.js";
import { Authenticator, type AuthOptions } from "./auth.js";
import type { AppDeps, AppEnv } from "./context.js";
import { LIVE_LIMITS, LiveConnections, LiveFeed, type LiveLimits } from "./live.js";
import { MetricsEndpoint, type MetricsOptions } from "./metrics.js";
import { HttpProblem, problemResponse, toProblem } from "./problem.js";
import { jobRoutes } from "./routes/jobs.js";
import { eventRoutes } from "./routes/events.js";
import { liveRoutes } from "./routes/live.js";
import { metricsRoutes } from "./routes/metrics.js";
import { recurringRoutes } from "./routes/recurring.js";
import { sessionRoutes } from "./routes/session.js";
import { statsRoutes } from "./routes/stats.js";
import { uiRoutes } from "./routes/ui.js";
import { apiGuard, authentication, checkTrustedOrigins, hsts, loopbackOnly, noStoreByDefault, requestScheme, securityHeaders } from "./security.js";

export type { AppEnv } from "./context.js";

export interface AppOptions {
  storage: Storage;
  /** When given, enqueueing a name no worker is registered for is refused (422). */
  registry?: WorkerRegistry;
  /** Required: tokens, or `{ open: true }` for a loopback-only server. */
  auth: AuthOptions;
  /** Mount point, e.g. "/qml" (default: the root). */
  basePath?: string;
  /** From `@hono/node-ws` (Node) or `hono/cloudflare-workers` (Workers). Absent: SSE only. */
  upgradeWebSocket?: UpgradeWebSocket<any, any>;
  /** Largest request body in bytes (default 1 MiB; job arguments may be up to 512 KiB). */
  bodyLimit?: number;
  /** Period of live snapshots in ms (default 1000). */
  liveIntervalMs?: number;
  /** An SSE response ends after this many ms and the browser reconnects (default 30 000). */
  sseMaxDurationMs?: number;
  /** Live connection limits (defaults: 200 in total, 8 per session, 120 000 ms idle). */
  live?: Partial<LiveLimits>;
  /**
   * Trust the X-Forwarded-Proto header of a proxy in front that terminates
   * TLS (default false): the request's scheme, for the Origin check and
   * HSTS, is then the proxy's. Only where every request comes through a
   * proxy that sets the header.
   */
  trustForwardedProto?: boolean;
  /**
   * GET /metrics (Prometheus): its collector (default this process's),
   * a token of its own, how long a depth read serves scrapes; `false`: no
   * /metrics route. Default: served, behind the API's credentials.
   */
  metrics?: MetricsOptions | false;
  logger?: Logger;
}

export function createApp(options: AppOptions): Hono<AppEnv> {
  if (!options || typeof options !== "object" || !options.storage) throw new ConfigError("createApp needs { storage, auth }", { scope: "http" });
  const { storage } = options;
  const maxBody = options.bodyLimit ?? 1024 * 1024;
  if (!Number.isInteger(maxBody) || maxBody < 1024) throw new ConfigError("bodyLimit must be an integer >= 1024", { scope: "http" });
  const interval = options.liveIntervalMs ?? 1000;
  if (!Number.isInteger(interval) || interval < 10) throw new ConfigError("liveIntervalMs must be an integer >= 10", { scope: "http" });
  const sseMax = options.sseMaxDurationMs ?? 30_000;
  if (!Number.isInteger(sseMax) || sseMax < interval) throw new ConfigError("sseMaxDurationMs must be an integer >= liveIntervalMs", { scope: "http" });
  const connections = new LiveConnections(liveLimits(options.live, interval));
  if (options.trustForwardedProto !== undefined && typeof options.trustForwardedProto !== "boolean")
    throw new ConfigError("trustForwardedProto must be a boolean", { scope: "http" });
  checkTrustedOrigins((options.auth as { trustedOrigins?: unknown } | undefined)?.trustedOrigins);
  const deps: AppDeps = {
    storage,
    registry: options.registry,
    auth: new Authenticator(options.auth, storage.clock, storage.kv),
    logger: options.logger ?? new JsonLogger("info", { component: "http" }),
    feed: new LiveFeed(storage, interval),
    base: normalizeBasePath(options.basePath),
    upgradeWebSocket: options.upgradeWebSocket,
    sseMaxDurationMs: sseMax,
  };
  const { base, logger } = deps;
  const authenticate = authentication(deps);
  const metrics = options.metrics === false ? undefined : new MetricsEndpoint(storage, options.metrics ?? {}, logger);

  const app = new Hono<AppEnv>();
  // bearer-auth refuses with an HTTPException that carries our problem document.
  app.onError((err, c) => (err instanceof HTTPException && err.res ? err.getResponse() : problemResponse(toProblem(err, logger), c.req.path)));
  app.notFound((c) => problemResponse({ status: 404, title: "Not Found", code: "NOT_FOUND", detail: `no route for ${c.req.method} ${c.req.path}` }));

  app.use("*", requestScheme(options.trustForwardedProto === true), securityHeaders, hsts, noStoreByDefault, loopbackOnly(deps));
  app.use(
    "*",
    bodyLimit({
      maxSize: maxBody,
      onError: () => {
        // The rest of the body is still on its way: on a kept-alive
        // connection the server would have to read it all before the next
        // request (@hono/node-server gives up after 500 ms and resets the
        // socket under the client). Close instead, and say so.
        throw new HttpProblem(413, "BODY_TOO_LARGE", `the request body exceeds ${maxBody} bytes`, { headers: { Connection: "close" } });
      },
    }),
  );
  app.use(`${base}/api/*`, apiGuard(deps, authenticate));

  if (base !== "") app.get(base, (c) => c.redirect(`${base}/`, 301));
  // Mounted at "<base>/" so that a module's "/" is the app's "<base>/".
  const root = `${base}/`;
  app.route(root, uiRoutes(deps, authenticate));
  app.route(root, sessionRoutes(deps));
  app.route(root, jobRoutes(deps));
  app.route(root, eventRoutes(deps));
  app.route(root, statsRoutes(deps));
  app.route(root, recurringRoutes(deps));
  app.route(root, liveRoutes(deps, authenticate, connections));
  if (metrics) app.route(root, metricsRoutes(deps, authenticate, metrics));
  return app;
}

function liveLimits(given: Partial<LiveLimits> | undefined, intervalMs: number): LiveLimits {
  const limits = { ...LIVE_LIMITS, ...given };
  const fail = (detail: string) => new ConfigError(`live.${detail}`, { scope: "http" });
  if (!Number.isInteger(limits.maxConnections) || limits.maxConnections < 1) throw fail("maxConnections must be an integer >= 1");
  if (!Number.isInteger(limits.maxPerSession) || limits.maxPerSession < 1) throw fail("maxPerSession must be an integer >= 1");
  if (!Number.isInteger(limits.idleMs) || limits.idleMs < intervalMs) throw fail("idleMs must be an integer >= liveIntervalMs");
  return limits;
}

function normalizeBasePath(path: string | undefined): string {
  if (path === undefined || path === "" || path === "/") return "";
  if (typeof path !== "string" || !/^(\/[A-Za-z0-9._~-]+)+\/?$/.test(path)) {
    throw new ConfigError(`basePath must look like "/qml"; got ${JSON.stringify(path)}`, { scope: "http" });
  }
  return path.replace(/\/$/, "");
}
