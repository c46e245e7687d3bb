/**
 * Live updates: one snapshot (GET /api/live), Server-Sent Events
 * (GET /api/events), and a WebSocket (GET /ws) where the runtime has one.
 * /ws is outside /api, so it makes the API guard's origin and
 * authentication checks itself. Streams and sockets count against the
 * connection limits of live.ts: over them, 429 before any upgrade.
 */
import { Hono, type Context } from "hono";
import { getCookie } from "hono/cookie";
import { SESSION_COOKIE, base64url, type Principal } from "../auth.js";
import type { AppDeps, AppEnv } from "../context.js";
import { liveEventStream, liveSocketEvents, type LiveConnections } from "../live.js";
import { HttpProblem, unauthorized } from "../problem.js";
import { refuseForeignOrigin, type Authenticate } from "../security.js";

export function liveRoutes(deps: AppDeps, authenticate: Authenticate, connections: LiveConnections): Hono<AppEnv> {
  const { feed, logger } = deps;
  const r = new Hono<AppEnv>();

  r.get("/api/live", async (c) => c.json(await feed.snapshot()));

  r.get("/api/events", async (c) => {
    const key = await sessionKey(c, c.get("principal"));
    const release = connections.acquire(key);
    if (!release) throw tooMany(connections.refusal(key));
    return liveEventStream(c, feed, deps.sseMaxDurationMs, release, logger, sessionStillHolds(c, c.get("principal"), deps));
  });

  r.get("/ws", async (c) => {
    refuseForeignOrigin(c, deps);
    const who = await authenticate(c);
    if (!who) throw unauthorized("authentication required: log in, or send `Authorization: Bearer <token>`");
    if (!deps.upgradeWebSocket)
      throw new HttpProblem(501, "NO_WEBSOCKET", "WebSockets are not available on this runtime; use GET /api/events (Server-Sent Events)");
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new HttpProblem(426, "UPGRADE_REQUIRED", "this endpoint speaks WebSocket only");
    const key = await sessionKey(c, who);
    const refusal = connections.refusal(key);
    if (refusal !== null) throw tooMany(refusal);
    // node-ws reports a socket error through `onError` by building an
    // ErrorEvent, which Node 20 lacks: what it then hands here is that
    // ReferenceError, after the socket is gone (onClose releases it).
    const quiet = { onError: (error: unknown) => logger.debug("live socket error", { error }) };
    const stillAllowed = sessionStillHolds(c, who, deps);
    return deps.upgradeWebSocket(c, liveSocketEvents(feed, { connections, key, logger, ...(stillAllowed ? { stillAllowed } : {}) }), quiet);
  });

  return r;
}

/** For a cookie session, a check that it still holds (not logged out or ended on any server, not expired): live connections outlast the request that opened them. */
function sessionStillHolds(c: Context, who: Principal, deps: AppDeps): (() => Promise<boolean>) | undefined {
  if (who.via !== "cookie") return undefined;
  const cookie = getCookie(c, SESSION_COOKIE) ?? "";
  return async () => (await deps.auth.session(cookie)) !== null;
}

function tooMany(detail: string | null): HttpProblem {
  return new HttpProblem(429, "TOO_MANY_CONNECTIONS", detail ?? "too many live connections");
}

/**
 * Whose connection this is: a login session, or a bearer token (by digest,
 * so the count holds no token); null for open mode, whose clients are all
 * this machine's and count in the total only.
 */
async function sessionKey(c: Context, who: Principal): Promise<string | null> {
  if (who.via === "open") return null;
  if (who.via === "cookie") return `cookie:${who.session ?? ""}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(c.req.header("authorization") ?? ""));
  return `bearer:${base64url(new Uint8Array(digest).slice(0, 12))}`;
}
