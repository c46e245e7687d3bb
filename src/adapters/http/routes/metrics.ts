/**
 * GET /metrics: Prometheus text (see ../metrics.ts). Open to the metrics
 * token, and to whoever the API lets in (admin or read token, a session,
 * open mode on loopback); anyone else gets 401.
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../context.js";
import type { MetricsEndpoint } from "../metrics.js";
import { unauthorized } from "../problem.js";
import { refuseForeignOrigin, type Authenticate } from "../security.js";
import { clientAddress } from "../throttle.js";

export function metricsRoutes(deps: AppDeps, authenticate: Authenticate, endpoint: MetricsEndpoint): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get("/metrics", async (c) => {
    refuseForeignOrigin(c, deps);
    const authorization = c.req.header("authorization");
    // A throttled address is refused before any token is looked at, the metrics token included (throttle.ts).
    if (authorization !== undefined && endpoint.hasToken) await deps.auth.throttle?.check(clientAddress(c));
    if (!(await endpoint.tokenMatches(authorization))) {
      const who = await authenticate(c);
      if (!who) throw unauthorized("authentication required: send `Authorization: Bearer <token>` (QML_METRICS_TOKEN, or an API token)");
    }
    return endpoint.respond();
  });
  return r;
}
