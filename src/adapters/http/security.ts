/**
 * The app's defences, in the order a request meets them (app.ts wires
 * them): the request's scheme settled once (the URL's, or a trusted
 * proxy's X-Forwarded-Proto); security headers on every response, with
 * HSTS over HTTPS; open mode answers loopback
 * Host names only; a foreign Origin is refused on every API call, login,
 * logout and WebSocket upgrade; then authentication (bearer token, session
 * cookie, or open); then, for mutating routes, the admin role and, for
 * ambient credentials (a cookie, open mode from a browser), the CSRF token.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { getCookie } from "hono/cookie";
import { secureHeaders } from "hono/secure-headers";
import { ConfigError } from "../../core/errors.js";
import { SESSION_COOKIE, isLoopbackHost, type OriginVerdict, type Principal } from "./auth.js";
import { requestHosts, type AppDeps, type AppEnv } from "./context.js";
import { clientAddress } from "./throttle.js";
import { forbidden, problemResponse, unauthorized } from "./problem.js";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** CSP without inline script or style (the UI has none), no framing, and the usual companions. */
export const securityHeaders: MiddlewareHandler = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", "data:"],
    connectSrc: ["'self'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
  },
  referrerPolicy: "same-origin",
  xFrameOptions: "DENY",
  // Set by `hsts` below, over HTTPS only: a plain-HTTP answer carrying it is ignored by browsers anyway.
  strictTransportSecurity: false,
});

interface Scheme {
  /** "https:" or "http:" */
  protocol: string;
  /** False when the request came over plain HTTP and no trusted proxy said otherwise: a TLS proxy may sit in front unannounced. */
  known: boolean;
}

// Settled once per request by `requestScheme`; a WeakMap, so it goes with the request.
const schemes = new WeakMap<Request, Scheme>();

/**
 * The scheme the client used: https when the URL is (TLS ends here, as on
 * Workers and Lambda), or when `trustForwardedProto` is set and the proxy's
 * X-Forwarded-Proto says so. Any client can send that header, so it counts
 * only when the operator says a proxy in front sets it.
 */
export function requestScheme(trustForwardedProto: boolean): MiddlewareHandler {
  return async (c, next) => {
    schemes.set(c.req.raw, resolveScheme(c, trustForwardedProto));
    await next();
  };
}

function resolveScheme(c: Context, trustForwardedProto: boolean): Scheme {
  const protocol = new URL(c.req.url).protocol;
  if (protocol === "https:") return { protocol, known: true };
  if (trustForwardedProto) {
    const forwarded = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
    if (forwarded === "https" || forwarded === "http") return { protocol: `${forwarded}:`, known: true };
  }
  return { protocol, known: false };
}

function schemeOf(c: Context): Scheme {
  return schemes.get(c.req.raw) ?? resolveScheme(c, false);
}

/** Over HTTPS, browsers are told to come back over HTTPS only (a year; not the subdomains, which are not the dashboard's to decide). */
export const hsts: MiddlewareHandler = async (c, next) => {
  await next();
  if (schemeOf(c).protocol === "https:") c.res.headers.set("Strict-Transport-Security", "max-age=31536000");
};

/** `trustedOrigins` entries are whole origins: scheme, host and port, nothing after. */
export function checkTrustedOrigins(list: unknown): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) return; // the Authenticator says what it wants
  for (const o of list) {
    let u: URL | undefined;
    try {
      u = typeof o === "string" ? new URL(o) : undefined;
    } catch {
      u = undefined;
    }
    const whole =
      u !== undefined &&
      (u.protocol === "https:" || u.protocol === "http:") &&
      (o as string).replace(/\/$/, "") === u.origin &&
      /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/.test(u.hostname);
    if (!whole) {
      throw new ConfigError(`auth.trustedOrigins: ${JSON.stringify(o)} is not a whole origin like https://dash.example.com (scheme, host, optional port)`, {
        scope: "http",
      });
    }
  }
}

/** Responses that set no caching rule are not cached: job data changes under them. */
export const noStoreByDefault: MiddlewareHandler = async (c, next) => {
  await next();
  if (!c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", "no-store");
};

/**
 * Open mode trusts whoever reaches it: a non-loopback Host means the server
 * is exposed or a DNS-rebinding page is calling it.
 */
export function loopbackOnly(deps: AppDeps): MiddlewareHandler {
  return async (c, next) => {
    if (deps.auth.open && !requestHosts(c).every(isLoopbackHost)) {
      throw forbidden("OPEN_ACCESS_LOOPBACK_ONLY", "this dashboard is configured without authentication and answers loopback host names only");
    }
    await next();
  };
}

/**
 * Refuses a request a page of another site sent (its Origin, else its
 * Referer, else Sec-Fetch-Site). hono/csrf checks form posts only and reads
 * no Referer; this check covers JSON, GET and WebSocket upgrades too.
 */
export function refuseForeignOrigin(c: Context, deps: AppDeps): void {
  if (originVerdict(c, deps.auth.trustedOrigins) === "foreign") {
    throw forbidden("FOREIGN_ORIGIN", "cross-origin requests are refused");
  }
}

/**
 * Whether a request comes from a page of this very origin: the scheme (see
 * requestScheme) and a host the request names for us, or a trusted origin.
 * "absent" is a non-browser client (curl, a server), which cannot carry a
 * victim's cookie.
 *
 * `http://host` calling `https://host` is foreign: a page served over plain
 * HTTP is whatever the network made of it. The other way round cannot be
 * told from a TLS proxy in front when the server sees plain HTTP and was
 * not told to trust X-Forwarded-Proto, and browsers block an HTTPS page's
 * requests to plain HTTP anyway (mixed content), so it passes then.
 */
export function originVerdict(c: Context, trusted: readonly string[]): OriginVerdict {
  const source = c.req.header("origin") ?? c.req.header("referer");
  if (source !== undefined) {
    if (source === "null") return "foreign";
    let u: URL;
    try {
      u = new URL(source);
    } catch {
      return "foreign";
    }
    if (trusted.includes(u.origin)) return "same";
    if (u.protocol !== "https:" && u.protocol !== "http:") return "foreign";
    const own = schemeOf(c);
    const host = withoutDefaultPort(u.host, u.protocol);
    if (!requestHosts(c).some((h) => withoutDefaultPort(h, own.protocol) === host)) return "foreign";
    return u.protocol === own.protocol || (!own.known && u.protocol === "https:") ? "same" : "foreign";
  }
  const site = c.req.header("sec-fetch-site");
  if (site === undefined) return "absent";
  // The browser compares scheme, host and port itself.
  return site === "same-origin" || site === "none" ? "same" : "foreign";
}

function withoutDefaultPort(host: string, protocol: string): string {
  const h = host.trim().toLowerCase();
  const port = protocol === "https:" ? ":443" : protocol === "http:" ? ":80" : undefined;
  return port !== undefined && h.endsWith(port) ? h.slice(0, -port.length) : h;
}

/** Who is calling: a bearer token (a bad one is a 401), else a session cookie, else open mode; null for nobody. */
export type Authenticate = (c: Context<AppEnv>) => Promise<Principal | null>;

export function authentication(deps: AppDeps): Authenticate {
  const refuse = (detail: string) => (c: Context) => problemResponse(unauthorized(detail).problem, c.req.path);
  const bearer = bearerAuth<AppEnv>({
    verifyToken: async (token, c) => {
      const role = await deps.auth.roleOfToken(token);
      if (role) c.set("principal", { role, via: "bearer" } satisfies Principal);
      else await deps.auth.throttle?.fail(clientAddress(c));
      return role !== null;
    },
    // Our problem documents with status 401, where hono would answer a malformed header with a bare 400.
    noAuthenticationHeader: { message: refuse("the Authorization header is empty; send `Bearer <token>`") },
    invalidAuthenticationHeader: { message: refuse("the Authorization header must be `Bearer <token>`") },
    invalidToken: { message: refuse("the bearer token is not valid") },
  });
  return async (c) => {
    if (c.req.header("authorization") !== undefined) {
      // Refused before the token is looked at while the address is throttled (throttle.ts).
      await deps.auth.throttle?.check(clientAddress(c));
      await bearer(c, async () => {});
      return c.get("principal");
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie !== undefined) {
      const session = await deps.auth.session(cookie);
      if (session) return session;
    }
    return deps.auth.open ? { role: "admin", via: "open" } : null;
  };
}

/** In front of /api/*: origin, authentication, and for mutations the admin role and the CSRF token. */
export function apiGuard(deps: AppDeps, authenticate: Authenticate): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    refuseForeignOrigin(c, deps);
    const who = await authenticate(c);
    if (!who) throw unauthorized("authentication required: send `Authorization: Bearer <token>` or log in");
    if (!SAFE_METHODS.has(c.req.method)) {
      if (who.role !== "admin") throw forbidden("READ_ONLY", "this token is read-only; the action needs an admin token");
      const browser =
        who.via === "cookie" || c.req.header("origin") !== undefined || c.req.header("sec-fetch-site") !== undefined || c.req.header("referer") !== undefined;
      // A browser never sends a bearer header on its own: only ambient credentials need the CSRF token.
      if (who.via !== "bearer" && browser && !(await deps.auth.checkCsrf(who, c.req.header("x-csrf-token")))) {
        throw forbidden("CSRF", "missing or invalid X-CSRF-Token header (read it from GET /api/session)");
      }
    }
    c.set("principal", who);
    await next();
  };
}
