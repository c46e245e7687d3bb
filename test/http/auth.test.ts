/** Closed by default: tokens, roles, sessions, CSRF, Origin, open mode, security headers. */
import { describe, expect, it } from "vitest";
import { ConfigError, Job, Storage, memoryBackend, silentLogger } from "../../src/index.js";
import { createApp, secretsEqual } from "../../src/adapters/http/index.js";
import { ADMIN, HOST, ORIGIN, READER, call, finish, harness, login, problem } from "./helpers.js";

/** Every mutating route, with a body that would be valid. */
function mutations(ids: { job: string }): Array<[string, string, unknown?]> {
  return [
    ["POST", "/api/jobs", { name: "send_email" }],
    ["POST", `/api/jobs/${ids.job}/retry`],
    ["POST", `/api/jobs/${ids.job}/requeue`],
    ["POST", `/api/jobs/${ids.job}/delete`],
    ["DELETE", `/api/jobs/${ids.job}`],
    ["POST", "/api/jobs/bulk/retry", { ids: [ids.job] }],
    ["POST", "/api/jobs/bulk/requeue", { ids: [ids.job] }],
    ["POST", "/api/jobs/bulk/delete", { ids: [ids.job] }],
    ["PUT", "/api/recurring/r1", { cron: "* * * * *", name: "send_email" }],
    ["DELETE", "/api/recurring/r1"],
    ["POST", "/api/recurring/r1/trigger"],
  ];
}

const READS = ["/api/session", "/api/jobs", "/api/stats", "/api/queues", "/api/recurring", "/api/live"];

describe("bearer tokens", () => {
  it("answers 401 with WWW-Authenticate without a token, with a wrong one, or a malformed header", async () => {
    const { app } = harness();
    for (const path of [...READS, "/api/jobs/x"]) {
      const res = await call(app, "GET", path, { token: null });
      expect(res.status, path).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await problem(res)).code).toBe("UNAUTHORIZED");
    }
    expect((await call(app, "GET", "/api/jobs", { token: "wrong-token-0123456789abcdef" })).status).toBe(401);
    expect((await call(app, "GET", "/api/jobs", { token: ADMIN.slice(0, -1) })).status).toBe(401);
    for (const header of [`Basic ${btoa("a:b")}`, "Bearer", "Bearer a b", `Bearer ${ADMIN}"`]) {
      const res = await call(app, "GET", "/api/jobs", { token: null, headers: { Authorization: header } });
      expect(res.status, header).toBe(401);
      expect(res.headers.get("www-authenticate"), header).toMatch(/^Bearer/);
      expect((await problem(res)).code, header).toBe("UNAUTHORIZED");
    }
  });

  it("requires a token on every mutating route (401)", async () => {
    const { app, storage, clock } = harness();
    const job = await finish(storage, clock, "send_email", [], "failed");
    for (const [method, path, body] of mutations({ job })) {
      const res = await call(app, method, path, { token: null, ...(body !== undefined ? { body } : {}) });
      expect(res.status, `${method} ${path}`).toBe(401);
    }
  });

  it("lets a read-only token read but answers 403 on every mutating route, changing nothing", async () => {
    const { app, storage, clock } = harness();
    for (const path of READS) expect((await call(app, "GET", path, { token: READER })).status, path).toBe(200);
    const job = await finish(storage, clock, "send_email", [], "failed");
    await storage.addOrUpdateRecurring("r1", "* * * * *", "send_email");
    const before = await storage.stats();
    for (const [method, path, body] of mutations({ job })) {
      const res = await call(app, method, path, { token: READER, ...(body !== undefined ? { body } : {}) });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect((await problem(res)).code).toBe("READ_ONLY");
    }
    expect((await storage.stats()).states).toEqual(before.states);
    expect((await storage.get(job))?.state).toBe("failed");
    expect(await storage.listRecurring()).toHaveLength(1);
  });

  it("lets an admin token act without a CSRF token (a bearer header is never ambient)", async () => {
    const { app, storage, clock } = harness();
    const job = await finish(storage, clock, "send_email", [], "failed");
    expect((await call(app, "POST", `/api/jobs/${job}/retry`)).status).toBe(200);
  });

  it("answers 403 to a mutating request from a foreign Origin, even with a valid token", async () => {
    const { app, storage, clock } = harness();
    const job = await finish(storage, clock, "send_email", [], "failed");
    for (const origin of ["http://evil.test", "null", "http://dash.test.evil.test", "https://evil.test:443"]) {
      const res = await call(app, "POST", `/api/jobs/${job}/retry`, { headers: { Origin: origin } });
      expect(res.status, origin).toBe(403);
      expect((await problem(res)).code).toBe("FOREIGN_ORIGIN");
    }
    expect((await call(app, "POST", `/api/jobs/${job}/retry`, { headers: { Referer: "http://evil.test/page" } })).status).toBe(403);
    expect((await call(app, "POST", `/api/jobs/${job}/retry`, { headers: { "Sec-Fetch-Site": "cross-site" } })).status).toBe(403);
    expect((await storage.get(job))?.state).toBe("failed");
  });

  it("accepts an extra origin listed in trustedOrigins (a proxy that rewrites Host)", async () => {
    const { app, storage, clock } = harness({ auth: { adminTokens: [ADMIN], trustedOrigins: ["https://jobs.example.com"] } });
    const job = await finish(storage, clock, "send_email", [], "failed");
    expect((await call(app, "POST", `/api/jobs/${job}/retry`, { headers: { Origin: "https://jobs.example.com" } })).status).toBe(200);
  });
});

describe("UI sessions", () => {
  it("logs in with a form, setting an HttpOnly, SameSite=Strict cookie scoped to the app", async () => {
    const { app } = harness();
    const res = await app.request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { Host: HOST, Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
      body: `token=${ADMIN}`,
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/");
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^qml_session=v1\.[\w-]+\.[\w-]+;/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Secure/);
    expect(cookie).not.toContain(ADMIN);
  });

  it("marks the cookie Secure over https", async () => {
    const { app } = harness();
    const res = await app.request("https://dash.test/login", {
      method: "POST",
      headers: { Host: HOST, Origin: "https://dash.test", "Content-Type": "application/x-www-form-urlencoded" },
      body: `token=${ADMIN}`,
    });
    expect(res.headers.get("set-cookie")).toMatch(/; Secure/);
  });

  it("sends a wrong token back to the form, with no cookie", async () => {
    const { app } = harness();
    const res = await app.request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { Host: HOST, Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
      body: "token=not-the-token-at-all-000",
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/login?error=1");
    expect(res.headers.get("set-cookie")).toBeNull();
    const page = await (await call(app, "GET", "/login?error=1", { token: null })).text();
    expect(page).toContain("That token is not valid.");
  });

  it("refuses a login posted from a foreign page (login CSRF)", async () => {
    const { app } = harness();
    const res = await app.request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { Host: HOST, Origin: "http://evil.test", "Content-Type": "application/x-www-form-urlencoded" },
      body: `token=${ADMIN}`,
    });
    expect(res.status).toBe(403);
  });

  it("serves the UI and reads with the cookie; mutations need the CSRF token and a same-origin Origin", async () => {
    const { app, storage, clock } = harness();
    const { cookie, csrf } = await login(app);
    expect(csrf).toMatch(/^[\w-]{40,}$/);
    const page = await call(app, "GET", "/", { token: null, cookie });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script src="assets/app.js" defer></script>');
    expect((await call(app, "GET", "/api/jobs", { token: null, cookie })).status).toBe(200);

    const job = await finish(storage, clock, "send_email", [], "failed");
    const noCsrf = await call(app, "POST", `/api/jobs/${job}/retry`, { token: null, cookie, headers: { Origin: ORIGIN } });
    expect(noCsrf.status).toBe(403);
    expect((await problem(noCsrf)).code).toBe("CSRF");
    const wrongCsrf = await call(app, "POST", `/api/jobs/${job}/retry`, {
      token: null,
      cookie,
      headers: { Origin: ORIGIN, "X-CSRF-Token": csrf.slice(1) + "A" },
    });
    expect(wrongCsrf.status).toBe(403);
    const foreign = await call(app, "POST", `/api/jobs/${job}/retry`, { token: null, cookie, headers: { Origin: "http://evil.test", "X-CSRF-Token": csrf } });
    expect(foreign.status).toBe(403);
    expect((await problem(foreign)).code).toBe("FOREIGN_ORIGIN");
    expect((await storage.get(job))?.state).toBe("failed");
    const ok = await call(app, "POST", `/api/jobs/${job}/retry`, { token: null, cookie, headers: { Origin: ORIGIN, "X-CSRF-Token": csrf } });
    expect(ok.status).toBe(200);
  });

  it("a CSRF token belongs to its session", async () => {
    const { app, storage } = harness();
    const a = await login(app);
    const b = await login(app, READER);
    const id = await storage.enqueue(new Job("send_email"));
    const res = await call(app, "POST", `/api/jobs/${id}/delete`, { token: null, cookie: a.cookie, headers: { Origin: ORIGIN, "X-CSRF-Token": b.csrf } });
    expect(res.status).toBe(403);
  });

  it("a read-only session can read but not act", async () => {
    const { app, storage } = harness();
    const { cookie, csrf } = await login(app, READER);
    expect(((await (await call(app, "GET", "/api/session", { token: null, cookie })).json()) as { role: string }).role).toBe("read");
    const id = await storage.enqueue(new Job("send_email"));
    const res = await call(app, "POST", `/api/jobs/${id}/delete`, { token: null, cookie, headers: { Origin: ORIGIN, "X-CSRF-Token": csrf } });
    expect(res.status).toBe(403);
    expect((await problem(res)).code).toBe("READ_ONLY");
  });

  it("rejects a forged, tampered or expired session", async () => {
    const { app, clock } = harness();
    const { cookie } = await login(app, READER);
    const [, payload, sig] = cookie.slice("qml_session=".length).split(".");
    // Claim admin with the reader's signature.
    const claims = JSON.parse(atob(payload!.replace(/-/g, "+").replace(/_/g, "/"))) as { r: string };
    claims.r = "admin";
    const forged = btoa(JSON.stringify(claims)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    for (const bad of [
      `qml_session=v1.${forged}.${sig}`,
      `qml_session=v1.${payload}.${sig!.slice(0, -2)}AA`,
      "qml_session=garbage",
      `qml_session=v2.${payload}.${sig}`,
    ]) {
      expect((await call(app, "GET", "/api/jobs", { token: null, cookie: bad })).status, bad).toBe(401);
    }
    expect((await call(app, "GET", "/api/jobs", { token: null, cookie })).status).toBe(200);
    clock.advance(12 * 3600_000 + 1);
    expect((await call(app, "GET", "/api/jobs", { token: null, cookie })).status).toBe(401);
    expect((await call(app, "GET", "/", { token: null, cookie })).status).toBe(302);
  });

  it("ends the sessions of a token that is removed from the configuration", async () => {
    const { storage } = harness();
    const secret = "s".repeat(40);
    const before = createApp({ storage, auth: { adminTokens: [ADMIN, "second-admin-token-0123456789"], sessionSecret: secret }, logger: silentLogger });
    const { cookie } = await login(before);
    const after = createApp({ storage, auth: { adminTokens: ["second-admin-token-0123456789"], sessionSecret: secret }, logger: silentLogger });
    expect((await call(before, "GET", "/api/jobs", { token: null, cookie })).status).toBe(200);
    expect((await call(after, "GET", "/api/jobs", { token: null, cookie })).status).toBe(401);
  });

  it("logs out: the cookie is cleared", async () => {
    const { app } = harness();
    const { cookie } = await login(app);
    const res = await call(app, "POST", "/logout", { token: null, cookie, headers: { Origin: ORIGIN } });
    expect(res.status).toBe(303);
    expect(res.headers.get("set-cookie")).toMatch(/^qml_session=; .*Max-Age=0/);
    expect((await call(app, "POST", "/logout", { token: null, cookie, headers: { Origin: "http://evil.test" } })).status).toBe(403);
  });

  it("scopes everything under basePath", async () => {
    const { app } = harness({ basePath: "/qml" });
    expect((await call(app, "GET", "/qml", { token: null })).headers.get("location")).toBe("/qml/");
    expect((await call(app, "GET", "/qml/", { token: null })).headers.get("location")).toBe("/qml/login");
    expect((await call(app, "GET", "/qml/api/jobs")).status).toBe(200);
    expect((await call(app, "GET", "/api/jobs")).status).toBe(404);
    const res = await app.request(`${ORIGIN}/qml/login`, {
      method: "POST",
      headers: { Host: HOST, Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
      body: `token=${ADMIN}`,
    });
    expect(res.headers.get("location")).toBe("/qml/");
    expect(res.headers.get("set-cookie")).toMatch(/Path=\/qml;/);
  });
});

describe("open mode", () => {
  const open = () => createApp({ storage: new Storage(memoryBackend()), auth: { open: true }, logger: silentLogger });
  const local = (app: ReturnType<typeof open>, method: string, path: string, init: { headers?: Record<string, string>; body?: unknown } = {}) =>
    app.request(`http://127.0.0.1:8080${path}`, {
      method,
      headers: { Host: "127.0.0.1:8080", ...(init.body !== undefined ? { "Content-Type": "application/json" } : {}), ...(init.headers ?? {}) },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });

  it("serves loopback host names without a token", async () => {
    const app = open();
    expect((await local(app, "GET", "/api/jobs")).status).toBe(200);
    expect((await local(app, "GET", "/")).status).toBe(200);
    for (const host of ["localhost:8080", "[::1]:8080", "127.0.0.2", "app.localhost"]) {
      expect((await app.request(`http://${host}/api/jobs`, { headers: { Host: host } })).status, host).toBe(200);
    }
  });

  it("refuses any other Host (exposed server, DNS rebinding)", async () => {
    const app = open();
    for (const host of ["dash.test", "10.0.0.5:8080", "evil.test", "127.0.0.1.evil.test", "localhost.evil.test"]) {
      const res = await app.request(`http://${host}/api/jobs`, { headers: { Host: host } });
      expect(res.status, host).toBe(403);
      expect((await problem(res)).code).toBe("OPEN_ACCESS_LOOPBACK_ONLY");
    }
  });

  it("still needs the CSRF token for a browser's mutating request, not for curl", async () => {
    const app = open();
    const browser = await local(app, "POST", "/api/jobs", { headers: { Origin: "http://127.0.0.1:8080" }, body: { name: "x" } });
    expect(browser.status).toBe(403);
    expect((await problem(browser)).code).toBe("CSRF");
    const foreign = await local(app, "POST", "/api/jobs", { headers: { Origin: "http://evil.test" }, body: { name: "x" } });
    expect(foreign.status).toBe(403);
    const { csrfToken } = (await (await local(app, "GET", "/api/session")).json()) as { csrfToken: string };
    const ok = await local(app, "POST", "/api/jobs", { headers: { Origin: "http://127.0.0.1:8080", "X-CSRF-Token": csrfToken }, body: { name: "x" } });
    expect(ok.status).toBe(201);
    expect((await local(app, "POST", "/api/jobs", { body: { name: "x" } })).status).toBe(201);
  });
});

describe("configuration", () => {
  const storage = new Storage(memoryBackend());
  it("refuses to build an app without auth, with weak tokens or a bad option", () => {
    for (const auth of [
      undefined,
      {},
      { adminTokens: [] },
      { adminTokens: ["short"] },
      { adminTokens: ["has space in it 0123456789"] },
      { adminTokens: ['has"quote-0123456789abcdef'] },
      { open: false },
      { adminTokens: [ADMIN], readTokens: [ADMIN] },
      { adminTokens: [ADMIN], sessionSecret: "short" },
    ]) {
      expect(() => createApp({ storage, auth: auth as never, logger: silentLogger }), JSON.stringify(auth)).toThrow(ConfigError);
    }
    expect(() => createApp({ storage, auth: { adminTokens: [ADMIN] }, basePath: "no-slash" })).toThrow(ConfigError);
    expect(() => createApp({ storage, auth: { adminTokens: [ADMIN] }, bodyLimit: 10 })).toThrow(ConfigError);
    expect(() => createApp({ storage, auth: { adminTokens: [ADMIN], trustedOrigins: ["not an origin"] } })).toThrow(ConfigError);
  });

  it("compares secrets by digest", async () => {
    expect(await secretsEqual(ADMIN, ADMIN)).toBe(true);
    expect(await secretsEqual(ADMIN, ADMIN + "x")).toBe(false);
    expect(await secretsEqual("", "")).toBe(true);
    expect(await secretsEqual("a", "b")).toBe(false);
  });
});

describe("security headers", () => {
  it("sends a strict CSP without unsafe-inline, nosniff and Referrer-Policy on pages, assets, API answers and errors", async () => {
    const { app } = harness();
    const { cookie } = await login(app);
    const responses = [
      await call(app, "GET", "/", { token: null, cookie }),
      await call(app, "GET", "/login", { token: null }),
      await call(app, "GET", "/assets/app.css", { token: null }),
      await call(app, "GET", "/api/jobs"),
      await call(app, "GET", "/api/jobs", { token: null }),
      await call(app, "POST", "/api/jobs", { raw: "{", headers: { "Content-Type": "application/json" } }),
    ];
    for (const res of responses) {
      const csp = res.headers.get("content-security-policy")!;
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("style-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("base-uri 'none'");
      expect(csp).toContain("form-action 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).not.toContain("unsafe-eval");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("same-origin");
    }
    expect(responses[3]!.headers.get("cache-control")).toBe("no-store");
  });
});
