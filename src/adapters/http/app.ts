/**
 * The dashboard: one hono app (REST API + UI + live updates) that runs
 * unchanged on Node (`DashboardServer`), in workerd and behind
 * `hono/aws-lambda`. Web Standards only: no `node:*`, no file reads (the UI
 * is embedded by scripts/embed-assets.ts).
 *
 * Routes (under `basePath`):
 *
 *   GET  /healthz                          unauthenticated liveness
 *   GET  /  /login  POST /login /logout    UI and its session
 *   GET  /assets/:file                     embedded JS, CSS, icon
 *   GET  /api/session                      role + CSRF token for the UI
 *   GET  /api/jobs                         filter, search, cursor pages, sort
 *   POST /api/jobs                         enqueue
 *   GET  /api/jobs/:id                     one job with its history
 *   POST /api/jobs/:id/{retry,requeue,delete}   DELETE /api/jobs/:id
 *   POST /api/jobs/bulk/{retry,requeue,delete}  over ids or a filter
 *   GET  /api/stats  /api/queues  /api/live
 *   GET  /api/recurring[/:id]  PUT/DELETE /api/recurring/:id  POST …/:id/trigger
 *   GET  /api/events (SSE)   GET /ws (WebSocket, when the runtime has one)
 *
 * Security, in the order a request meets it: security headers on every
 * response; open mode serves loopback Host names only; body limit; a
 * foreign Origin is refused on every API call and upgrade; then
 * authentication (bearer token, session cookie, or open); then, for
 * mutating routes, the admin role and, for ambient credentials (cookie,
 * open mode from a browser), the CSRF token.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { UpgradeWebSocket } from "hono/ws";
import { ConfigError, InvalidStateError, NotFoundError, StorageUnavailableError, UnknownJobNameError } from "../../core/errors.js";
import { Job, JobState, type JobOptions } from "../../core/job.js";
import { JsonLogger, type Logger } from "../../core/logger.js";
import type { WorkerRegistry } from "../../core/registry.js";
import { nextSlot } from "../../core/scheduler.js";
import type { ListFilter, RecurringDefinition, Storage } from "../../core/storage.js";
import { Authenticator, SESSION_COOKIE, isLoopbackHost, originVerdict, type AuthOptions, type Principal } from "./auth.js";
import { LiveFeed, liveEventStream, liveSocketEvents } from "./live.js";
import { HttpProblem, badRequest, forbidden, problemResponse, toProblem, unauthorized } from "./problem.js";
import {
  bulkBody,
  enqueueBody,
  jobId,
  listQuery,
  parseOr422,
  recurringBody,
  recurringId,
  statsQuery,
  type BulkBody,
} from "./schemas.js";
import { ASSETS, type EmbeddedAsset } from "./ui/assets.generated.js";

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
  logger?: Logger;
}

export type AppEnv = { Variables: { principal: Principal } };

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const RETRYABLE: readonly JobState[] = [JobState.Failed, JobState.AwaitingRetry];
const BULK_CONCURRENCY = 8;
const DEFAULT_BULK_MAX = 1000;

type Action = "retry" | "requeue" | "delete";
const ACTIONS: readonly Action[] = ["retry", "requeue", "delete"];

export function createApp(options: AppOptions): Hono<AppEnv> {
  if (!options || typeof options !== "object" || !options.storage) throw new ConfigError("[qml] [http] createApp needs { storage, auth }");
  const { storage, registry } = options;
  const logger = options.logger ?? new JsonLogger("info", { component: "http" });
  const auth = new Authenticator(options.auth, storage.clock);
  const base = normalizeBasePath(options.basePath);
  const maxBody = options.bodyLimit ?? 1024 * 1024;
  if (!Number.isInteger(maxBody) || maxBody < 1024) throw new ConfigError("[qml] [http] bodyLimit must be an integer >= 1024");
  const interval = options.liveIntervalMs ?? 1000;
  if (!Number.isInteger(interval) || interval < 10) throw new ConfigError("[qml] [http] liveIntervalMs must be an integer >= 10");
  const sseMax = options.sseMaxDurationMs ?? 30_000;
  if (!Number.isInteger(sseMax) || sseMax < interval) throw new ConfigError("[qml] [http] sseMaxDurationMs must be an integer >= liveIntervalMs");
  const feed = new LiveFeed(storage, interval);
  const p = (path: string) => `${base}${path}`;

  const app = new Hono<AppEnv>();

  app.onError((err, c) => problemResponse(toProblem(err, logger), c.req.path));
  app.notFound((c) => problemResponse({ status: 404, title: "Not Found", code: "NOT_FOUND", detail: `no route for ${c.req.method} ${c.req.path}` }));

  // ------------------------------------------------------------ middleware

  app.use("*", async (c, next) => {
    if (auth.open && !requestHosts(c).every(isLoopbackHost)) {
      // Open mode trusts whoever reaches it; a non-loopback Host means the
      // server is exposed or a DNS-rebinding page is calling it.
      const refused = forbidden("OPEN_ACCESS_LOOPBACK_ONLY", "this dashboard is configured without authentication and answers loopback host names only");
      c.res = problemResponse(refused.problem, c.req.path);
    } else {
      await next();
    }
    if (c.res.status === 101) return;
    const h = c.res.headers;
    h.set("Content-Security-Policy", CSP);
    h.set("X-Content-Type-Options", "nosniff");
    h.set("Referrer-Policy", "same-origin");
    h.set("X-Frame-Options", "DENY");
    h.set("Cross-Origin-Opener-Policy", "same-origin");
    h.set("Cross-Origin-Resource-Policy", "same-origin");
    if (!h.has("Cache-Control")) h.set("Cache-Control", "no-store");
  });

  app.use(
    "*",
    bodyLimit({
      maxSize: maxBody,
      onError: () => {
        throw new HttpProblem(413, "BODY_TOO_LARGE", `the request body exceeds ${maxBody} bytes`);
      },
    }),
  );

  const authenticate = async (c: Context): Promise<Principal | null> => {
    const header = c.req.header("authorization");
    if (header !== undefined) {
      const m = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(header);
      if (!m) throw unauthorized("the Authorization header must be `Bearer <token>`");
      const role = await auth.roleOfToken(m[1]!);
      if (!role) throw unauthorized("the bearer token is not valid");
      return { role, via: "bearer" };
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie !== undefined) {
      const s = await auth.session(cookie);
      if (s) return s;
    }
    if (auth.open) return { role: "admin", via: "open" };
    return null;
  };

  const refuseForeignOrigin = (c: Context) => {
    if (originVerdict(c.req.raw.headers, requestHosts(c), auth.trustedOrigins) === "foreign") {
      throw forbidden("FOREIGN_ORIGIN", "cross-origin requests are refused");
    }
  };

  const guard: MiddlewareHandler<AppEnv> = async (c, next) => {
    refuseForeignOrigin(c);
    const who = await authenticate(c);
    if (!who) throw unauthorized("authentication required: send `Authorization: Bearer <token>` or log in");
    if (!SAFE_METHODS.has(c.req.method)) {
      if (who.role !== "admin") throw forbidden("READ_ONLY", "this token is read-only; the action needs an admin token");
      const browser =
        who.via === "cookie" ||
        c.req.header("origin") !== undefined ||
        c.req.header("sec-fetch-site") !== undefined ||
        c.req.header("referer") !== undefined;
      // A bearer token is never sent by a browser on its own, so only
      // ambient credentials need the CSRF token.
      if (who.via !== "bearer" && browser && !(await auth.checkCsrf(who, c.req.header("x-csrf-token")))) {
        throw forbidden("CSRF", "missing or invalid X-CSRF-Token header (read it from GET /api/session)");
      }
    }
    c.set("principal", who);
    await next();
  };

  app.use(p("/api/*"), guard);

  // ------------------------------------------------------------------ UI

  app.get(p("/healthz"), (c) => c.json({ ok: true }));

  if (base !== "") app.get(base, (c) => c.redirect(`${base}/`, 301));

  app.get(p("/"), async (c) => {
    const who = await authenticate(c).catch(() => null);
    if (!who) return c.redirect(p("/login"), 302);
    return serveAsset(c, ASSETS["index.html"]!, "no-store");
  });

  app.get(p("/login"), (c) => {
    if (auth.open) return c.redirect(p("/"), 302);
    const page = ASSETS["login.html"]!;
    const error = c.req.query("error") === "1" ? '<p class="login-error" role="alert">That token is not valid.</p>' : "";
    return serveAsset(c, { ...page, body: page.body.replace("<!--login-error-->", error) }, "no-store");
  });

  app.post(p("/login"), async (c) => {
    if (auth.open) return c.redirect(p("/"), 303);
    refuseForeignOrigin(c);
    let token: unknown;
    const type = c.req.header("content-type") ?? "";
    if (/^application\/json\b/i.test(type)) token = ((await readJson(c)) as { token?: unknown } | null)?.token;
    else if (/^application\/x-www-form-urlencoded\b|^multipart\/form-data\b/i.test(type)) token = (await c.req.parseBody())["token"];
    else throw new HttpProblem(415, "UNSUPPORTED_MEDIA_TYPE", "send the token as a form field or JSON { token }");
    const session = typeof token === "string" ? await auth.login(token.trim()) : null;
    if (!session) return c.redirect(p("/login?error=1"), 303);
    setCookie(c, SESSION_COOKIE, session.value, {
      httpOnly: true,
      sameSite: "Strict",
      secure: isHttps(c),
      path: base === "" ? "/" : base,
      maxAge: Math.floor(auth.sessionTtlMs / 1000),
    });
    return c.redirect(p("/"), 303);
  });

  app.post(p("/logout"), (c) => {
    refuseForeignOrigin(c);
    deleteCookie(c, SESSION_COOKIE, { path: base === "" ? "/" : base, secure: isHttps(c), httpOnly: true, sameSite: "Strict" });
    return c.redirect(auth.open ? p("/") : p("/login"), 303);
  });

  app.get(p("/assets/:file"), (c) => {
    const name = c.req.param("file") ?? "";
    const asset = name.endsWith(".html") ? undefined : ASSETS[name];
    if (!asset) throw new HttpProblem(404, "NOT_FOUND", "no such asset");
    return serveAsset(c, asset, "no-cache");
  });

  // ---------------------------------------------------------------- API

  app.get(p("/api/session"), async (c) => {
    const who = c.get("principal");
    return c.json({
      role: who.role,
      via: who.via,
      open: auth.open,
      csrfToken: (await auth.csrfToken(who)) ?? null,
      expiresAt: who.expiresAt !== undefined ? new Date(who.expiresAt).toISOString() : null,
      storage: storage.kind,
      websocket: options.upgradeWebSocket !== undefined,
      liveIntervalMs: interval,
      jobNames: registry ? registry.names().sort() : null,
    });
  });

  app.get(p("/api/jobs"), async (c) => {
    const q = parseOr422(listQuery, queryObject(c));
    const filter: ListFilter = {};
    if (q.state && q.state.length > 0) filter.state = q.state;
    if (q.queue !== undefined) filter.queue = q.queue;
    if (q.name !== undefined) filter.name = q.name;
    if (q.q !== undefined && q.q.length > 0) filter.text = q.q;
    const page = await storage.list(filter, {
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      ...(q.sort !== undefined ? { sort: q.sort } : {}),
      ...(q.order !== undefined ? { order: q.order } : {}),
    });
    return c.json({ items: page.items.map(summary), nextCursor: page.nextCursor ?? null });
  });

  app.post(p("/api/jobs"), async (c) => {
    const b = parseOr422(enqueueBody, await readJson(c));
    if (registry && !registry.has(b.name)) throw new UnknownJobNameError(b.name);
    const opts: JobOptions = {};
    if (b.queue !== undefined) opts.queue = b.queue;
    if (b.priority !== undefined) opts.priority = b.priority;
    if (b.maxAttempts !== undefined) opts.maxAttempts = b.maxAttempts;
    if (b.delay !== undefined) opts.delay = b.delay;
    if (b.runAt !== undefined) opts.runAt = new Date(b.runAt);
    if (b.uniqueKey !== undefined) opts.uniqueKey = b.uniqueKey;
    if (b.timeout !== undefined) opts.timeout = b.timeout;
    if (b.metadata !== undefined) opts.metadata = b.metadata;
    const job = new Job(b.name, b.args ?? [], opts);
    const id = await storage.enqueue(job);
    const created = job.createdAt !== undefined;
    const stored = await storage.get(id);
    return c.json({ id, created, job: stored ? stored.toJSON() : null }, created ? 201 : 200);
  });

  // Registered before /api/jobs/:id/… so that "bulk" is never read as an id.
  app.post(p("/api/jobs/bulk/:action"), async (c) => {
    const action = c.req.param("action") as Action;
    if (!ACTIONS.includes(action)) throw new HttpProblem(404, "NOT_FOUND", `unknown bulk action; use ${ACTIONS.join(", ")}`);
    const b = parseOr422(bulkBody, await readJson(c));
    return c.json(await bulk(storage, action, b));
  });

  app.get(p("/api/jobs/:id"), async (c) => {
    const id = parseOr422(jobId, c.req.param("id"));
    const job = await storage.get(id);
    if (!job) throw new NotFoundError("job", id);
    return c.json({ job: job.toJSON() });
  });

  for (const action of ACTIONS) {
    app.post(p(`/api/jobs/:id/${action}`), async (c) => {
      const id = parseOr422(jobId, c.req.param("id"));
      return c.json({ job: (await applyAction(storage, action, id)).toJSON() });
    });
  }
  app.delete(p("/api/jobs/:id"), async (c) => {
    const id = parseOr422(jobId, c.req.param("id"));
    return c.json({ job: (await applyAction(storage, "delete", id)).toJSON() });
  });

  app.get(p("/api/stats"), async (c) => {
    const q = parseOr422(statsQuery, queryObject(c));
    const now = storage.clock.now();
    const stats = await storage.stats({ now, ...(q.minutes !== undefined ? { minutes: q.minutes } : {}), ...(q.hours !== undefined ? { hours: q.hours } : {}) });
    return c.json({ now: new Date(now).toISOString(), ...stats });
  });

  app.get(p("/api/queues"), async (c) => {
    const stats = await storage.stats({ minutes: 1, hours: 1 });
    const items = stats.queues.map((q) => ({ name: q.name, counts: q.counts, total: Object.values(q.counts).reduce((a, b) => a + b, 0) }));
    return c.json({ items });
  });

  app.get(p("/api/live"), async (c) => c.json(await feed.snapshot()));

  app.get(p("/api/events"), (c) => liveEventStream(c, feed, sseMax, logger));

  app.get(p("/api/recurring"), async (c) => {
    const now = storage.clock.now();
    return c.json({ items: (await storage.listRecurring()).map((d) => recurringJson(d, now)) });
  });

  app.get(p("/api/recurring/:id"), async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    const def = await findRecurring(storage, id);
    return c.json({ recurring: recurringJson(def, storage.clock.now()) });
  });

  app.put(p("/api/recurring/:id"), async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    const b = parseOr422(recurringBody, await readJson(c));
    if (registry && !registry.has(b.name)) throw new UnknownJobNameError(b.name);
    const { cron, name, args, ...rest } = b;
    const def = await storage.addOrUpdateRecurring(id, cron, name, args ?? [], rest);
    const stored = (await storage.listRecurring()).find((d) => d.id === id) ?? def;
    return c.json({ recurring: recurringJson(stored, storage.clock.now()) });
  });

  app.delete(p("/api/recurring/:id"), async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    if (!(await storage.deleteRecurring(id))) throw new NotFoundError("recurring job", id);
    return c.json({ deleted: true, id });
  });

  app.post(p("/api/recurring/:id/trigger"), async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    const def = await findRecurring(storage, id);
    const job = new Job(def.name, def.args, { ...def.options, metadata: { ...(def.options.metadata ?? {}), recurring: def.id, trigger: "manual" } });
    const jobIdValue = await storage.enqueue(job);
    return c.json({ id: jobIdValue }, 201);
  });

  // --------------------------------------------------------------- WebSocket

  const upgrade = options.upgradeWebSocket?.(() => liveSocketEvents(feed, logger));
  app.get(p("/ws"), async (c, next) => {
    refuseForeignOrigin(c);
    const who = await authenticate(c);
    if (!who) throw unauthorized("authentication required: log in, or send `Authorization: Bearer <token>`");
    if (!upgrade) throw new HttpProblem(501, "NO_WEBSOCKET", "WebSockets are not available on this runtime; use GET /api/events (Server-Sent Events)");
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new HttpProblem(426, "UPGRADE_REQUIRED", "this endpoint speaks WebSocket only");
    return upgrade(c, next);
  });

  return app;
}

// ---------------------------------------------------------------------------

function normalizeBasePath(path: string | undefined): string {
  if (path === undefined || path === "" || path === "/") return "";
  if (typeof path !== "string" || !/^(\/[A-Za-z0-9._~-]+)+\/?$/.test(path)) {
    throw new ConfigError(`[qml] [http] basePath must look like "/qml"; got ${JSON.stringify(path)}`);
  }
  return path.replace(/\/$/, "");
}

/**
 * The names the client used for this server: the Host header and the URL's
 * host. They differ only through an adapter (node-ws rebuilds upgrade URLs
 * on "localhost"; Miniflare sends its own loopback Host), so an Origin may
 * match either, and open mode needs both to be loopback.
 */
function requestHosts(c: Context): string[] {
  const url = new URL(c.req.url).host;
  const header = c.req.header("host");
  return header !== undefined && header !== url ? [header, url] : [url];
}

function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";
}

/** Query parameters as an object: `state` stays a list (it may repeat), the rest keep their last value; empty values are dropped. */
function queryObject(c: Context): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, values] of Object.entries(c.req.queries())) {
    const vs = values.filter((v) => v !== "");
    if (vs.length === 0) continue;
    out[k] = k === "state" ? vs : vs[vs.length - 1];
  }
  return out;
}

async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new HttpProblem(415, "UNSUPPORTED_MEDIA_TYPE", "send JSON with Content-Type: application/json");
  }
  const text = await c.req.text();
  if (text.trim() === "") throw badRequest("the request body is empty; send a JSON object");
  try {
    return JSON.parse(text);
  } catch {
    throw badRequest("the request body is not valid JSON");
  }
}

function serveAsset(c: Context, asset: EmbeddedAsset, cacheControl: string): Response {
  const headers: Record<string, string> = { "Content-Type": asset.contentType, "Cache-Control": cacheControl, ETag: `"${asset.etag}"` };
  if (cacheControl !== "no-store" && c.req.header("if-none-match") === `"${asset.etag}"`) return c.body(null, 304, headers);
  return c.body(asset.body, 200, headers);
}

/** A job for lists: everything but the history, which only the detail view needs. */
function summary(job: Job): Record<string, unknown> {
  const { history: _history, ...rest } = job.toJSON();
  return rest;
}

async function applyAction(storage: Storage, action: Action, id: string): Promise<Job> {
  if (action === "delete") {
    if (await storage.delete(id)) return (await storage.get(id))!;
    const job = await storage.get(id);
    if (!job) throw new NotFoundError("job", id);
    throw new InvalidStateError(`job ${id} is already deleted`);
  }
  if (action === "retry") {
    // Checked, then requeued: a job that finishes in between is requeued
    // from its new state only if requeue allows it, never from processing.
    const job = await storage.get(id);
    if (!job) throw new NotFoundError("job", id);
    if (!RETRYABLE.includes(job.state)) throw new InvalidStateError(`job ${id} is ${job.state}; only failed or awaiting_retry jobs can be retried (requeue runs any finished job again)`);
  }
  return storage.requeue(id);
}

interface BulkResult {
  action: Action;
  matched: number;
  applied: number;
  skipped: Array<{ id: string; reason: string }>;
  /** More jobs matched the filter than `max`; run the action again for the rest. */
  truncated: boolean;
}

async function bulk(storage: Storage, action: Action, b: BulkBody): Promise<BulkResult> {
  let ids: string[];
  let truncated = false;
  if (b.ids) {
    ids = [...new Set(b.ids)];
  } else {
    const max = b.max ?? DEFAULT_BULK_MAX;
    const f = b.filter!;
    const filter: ListFilter = {};
    if (f.state !== undefined) filter.state = f.state;
    else if (action === "retry") filter.state = [...RETRYABLE];
    if (f.queue !== undefined) filter.queue = f.queue;
    if (f.name !== undefined) filter.name = f.name;
    if (f.text !== undefined) filter.text = f.text;
    ids = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await storage.list(filter, { limit: Math.min(500, max - ids.length + 1), sort: "createdAt", order: "asc", ...(cursor ? { cursor } : {}) });
      for (const j of page.items) ids.push(j.id);
      if (ids.length > max) {
        ids.length = max;
        truncated = true;
        break;
      }
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
  }
  const skipped: Array<{ id: string; reason: string }> = [];
  let applied = 0;
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      try {
        await applyAction(storage, action, id);
        applied++;
      } catch (e) {
        // The store being down is not a per-job outcome: stop and answer 503.
        if (e instanceof StorageUnavailableError || !(e instanceof NotFoundError || e instanceof InvalidStateError)) throw e;
        if (skipped.length < 100) skipped.push({ id, reason: e.message.replace(/^\[qml\] /, "") });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, ids.length) }, worker));
  return { action, matched: ids.length, applied, skipped, truncated };
}

async function findRecurring(storage: Storage, id: string): Promise<RecurringDefinition> {
  const def = (await storage.listRecurring()).find((d) => d.id === id);
  if (!def) throw new NotFoundError("recurring job", id);
  return def;
}

function recurringJson(d: RecurringDefinition, now: number): Record<string, unknown> {
  let next: number | undefined;
  try {
    next = nextSlot(d, now);
  } catch {
    next = undefined;
  }
  return {
    id: d.id,
    cron: d.cron,
    timezone: d.timezone ?? "UTC",
    name: d.name,
    args: d.args,
    options: d.options,
    createdAt: new Date(d.createdAt).toISOString(),
    updatedAt: new Date(d.updatedAt).toISOString(),
    lastFiredAt: d.lastSlot !== undefined ? new Date(d.lastSlot).toISOString() : null,
    nextRunAt: next !== undefined ? new Date(next).toISOString() : null,
  };
}
