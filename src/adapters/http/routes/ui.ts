/**
 * The pages and their session: GET / (behind the login), the login form,
 * logout, the embedded assets, and an unauthenticated liveness probe.
 */
import { Hono, type Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { SESSION_COOKIE } from "../auth.js";
import { isHttps, readJson, type AppDeps, type AppEnv } from "../context.js";
import { HttpProblem } from "../problem.js";
import { refuseForeignOrigin, type Authenticate } from "../security.js";
import { clientAddress, tooManyFailures } from "../throttle.js";
import { ASSETS, type EmbeddedAsset } from "../ui/assets.generated.js";

export function uiRoutes(deps: AppDeps, authenticate: Authenticate): Hono<AppEnv> {
  const { auth, base } = deps;
  const r = new Hono<AppEnv>();
  const at = (path: string) => `${base}${path}`;
  const cookiePath = base === "" ? "/" : base;

  r.get("/healthz", (c) => c.json({ ok: true }));

  r.get("/", async (c) => {
    const who = await authenticate(c).catch(() => null);
    if (!who) return c.redirect(at("/login"), 302);
    return serveAsset(c, ASSETS["index.html"]!, "no-store");
  });

  r.get("/login", (c) => {
    if (auth.open) return c.redirect(at("/"), 302);
    return loginPage(c, c.req.query("error") === "1" ? "That token is not valid." : undefined);
  });

  r.post("/login", async (c) => {
    if (auth.open) return c.redirect(at("/"), 303);
    refuseForeignOrigin(c, deps);
    let token: unknown;
    const type = c.req.header("content-type") ?? "";
    if (/^application\/json\b/i.test(type)) token = ((await readJson(c)) as { token?: unknown } | null)?.token;
    else if (/^application\/x-www-form-urlencoded\b|^multipart\/form-data\b/i.test(type)) token = (await c.req.parseBody())["token"];
    else throw new HttpProblem(415, "UNSUPPORTED_MEDIA_TYPE", "send the token as a form field or JSON { token }");
    // While the address is throttled the token is not looked at (throttle.ts).
    const address = clientAddress(c);
    const wait = (await auth.throttle?.retryAfter(address)) ?? 0;
    if (wait > 0) {
      if (/^application\/json\b/i.test(type)) throw tooManyFailures(wait);
      return loginPage(c, `Too many failed attempts from this address. Try again in ${wait} s.`, 429, { "Retry-After": String(wait) });
    }
    const session = typeof token === "string" ? await auth.login(token.trim()) : null;
    if (!session) {
      await auth.throttle?.fail(address);
      return c.redirect(at("/login?error=1"), 303);
    }
    setCookie(c, SESSION_COOKIE, session.value, {
      httpOnly: true,
      sameSite: "Strict",
      secure: isHttps(c),
      path: cookiePath,
      maxAge: Math.floor(auth.sessionTtlMs / 1000),
    });
    return c.redirect(at("/"), 303);
  });

  r.post("/logout", async (c) => {
    refuseForeignOrigin(c, deps);
    // The session ends in the store, for every server, not only in this browser.
    const who = await authenticate(c).catch(() => null);
    if (who) await auth.logout(who);
    deleteCookie(c, SESSION_COOKIE, { path: cookiePath, secure: isHttps(c), httpOnly: true, sameSite: "Strict" });
    return c.redirect(auth.open ? at("/") : at("/login"), 303);
  });

  r.get("/assets/:file", (c) => {
    const name = c.req.param("file");
    // Pages are served by their routes (behind the login), never as assets.
    const asset = name.endsWith(".html") || !Object.hasOwn(ASSETS, name) ? undefined : ASSETS[name];
    if (!asset) throw new HttpProblem(404, "NOT_FOUND", "no such asset");
    return serveAsset(c, asset, "no-cache");
  });

  return r;
}

/** The login form, with an error message (plain text, escaped) when there is one. */
function loginPage(c: Context, error: string | undefined, status: 200 | 429 = 200, headers: Record<string, string> = {}): Response {
  const page = ASSETS["login.html"]!;
  const html = error === undefined ? "" : `<p class="login-error" role="alert">${escapeHtml(error)}</p>`;
  const res = serveAsset(c, { ...page, body: page.body.replace("<!--login-error-->", html) }, "no-store");
  return new Response(res.body, { status, headers: { ...Object.fromEntries(res.headers), ...headers } });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function serveAsset(c: Context, asset: EmbeddedAsset, cacheControl: string): Response {
  const headers: Record<string, string> = { "Content-Type": asset.contentType, "Cache-Control": cacheControl, ETag: `"${asset.etag}"` };
  if (cacheControl !== "no-store" && c.req.header("if-none-match") === `"${asset.etag}"`) return c.body(null, 304, headers);
  return c.body(asset.body, 200, headers);
}
