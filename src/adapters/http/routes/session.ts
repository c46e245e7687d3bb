/**
 * GET /api/session: who the caller is, and what the UI needs to act for
 * them (the CSRF token, the live transport). POST /api/sessions/end-all:
 * ends every cookie session, the caller's included, on every server
 * (admin; a cookie caller sends the CSRF token, as for every mutation).
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../context.js";
import { HttpProblem } from "../problem.js";

export function sessionRoutes(deps: AppDeps): Hono<AppEnv> {
  const { auth, storage, registry, feed } = deps;
  const r = new Hono<AppEnv>();

  r.get("/api/session", async (c) => {
    const who = c.get("principal");
    return c.json({
      role: who.role,
      via: who.via,
      open: auth.open,
      csrfToken: (await auth.csrfToken(who)) ?? null,
      expiresAt: who.expiresAt !== undefined ? new Date(who.expiresAt).toISOString() : null,
      storage: storage.kind,
      websocket: deps.upgradeWebSocket !== undefined,
      liveIntervalMs: feed.intervalMs,
      jobNames: registry ? registry.names().sort() : null,
    });
  });

  r.post("/api/sessions/end-all", async (c) => {
    if (auth.open) throw new HttpProblem(409, "NO_SESSIONS", "this dashboard is open (no authentication): it has no sessions to end");
    const epoch = await auth.endAllSessions();
    return c.json({ endedBefore: new Date(epoch).toISOString() });
  });

  return r;
}
