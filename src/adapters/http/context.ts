/**
 * What every route module shares: the app's dependencies, its hono
 * environment, and the request helpers that read a request the same way
 * everywhere (its host names, its scheme, its query, its JSON body).
 */
import type { Context } from "hono";
import type { UpgradeWebSocket } from "hono/ws";
import type { Logger } from "../../core/logger.js";
import type { WorkerRegistry } from "../../core/registry.js";
import type { Storage } from "../../core/storage.js";
import type { Authenticator, Principal } from "./auth.js";
import type { LiveFeed } from "./live.js";
import { HttpProblem, badRequest } from "./problem.js";

export type AppEnv = { Variables: { principal: Principal } };

/** Built once by createApp from its options; read by every route module. */
export interface AppDeps {
  storage: Storage;
  registry: WorkerRegistry | undefined;
  auth: Authenticator;
  logger: Logger;
  feed: LiveFeed;
  /** "" or a mount point without a trailing slash, e.g. "/qml". */
  base: string;
  upgradeWebSocket: UpgradeWebSocket<any, any> | undefined;
  sseMaxDurationMs: number;
}

/**
 * The names the client used for this server: the Host header and the URL's
 * host. They differ only through an adapter (node-ws rebuilds upgrade URLs
 * on "localhost"; Miniflare sends its own loopback Host), so an Origin may
 * match either, and open mode needs both to be loopback.
 */
export function requestHosts(c: Context): string[] {
  const url = new URL(c.req.url).host;
  const header = c.req.header("host");
  return header !== undefined && header !== url ? [header, url] : [url];
}

export function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";
}

/** Query parameters as an object: `state` stays a list (it may repeat), the rest keep their last value; empty values are dropped. */
export function queryObject(c: Context): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, values] of Object.entries(c.req.queries())) {
    const vs = values.filter((v) => v !== "");
    if (vs.length === 0) continue;
    out[k] = k === "state" ? vs : vs[vs.length - 1];
  }
  return out;
}

/** The body as JSON: 415 for another content type, 400 for an empty or malformed body. */
export async function readJson(c: Context): Promise<unknown> {
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
