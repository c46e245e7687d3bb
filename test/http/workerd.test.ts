/**
 * The same app in workerd (through Miniflare): createApp uses Web Standards
 * only, so its bundle runs there unchanged, WebSocket included (via
 * `hono/cloudflare-workers`).
 */
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LiveSnapshot } from "../../src/adapters/http/index.js";

const TOKEN = "workerd-admin-token-0123456789";
const BASE = "http://dash.test";

describe("createApp in workerd", () => {
  let mf: Miniflare;

  beforeAll(async () => {
    const out = await build({
      entryPoints: [new URL("./fixtures/workerd-entry.ts", import.meta.url).pathname],
      bundle: true,
      format: "esm",
      platform: "neutral",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["module", "main"],
      write: false,
      logLevel: "silent",
    });
    mf = new Miniflare({ modules: true, script: out.outputFiles[0]!.text, compatibilityDate: "2026-04-01", cf: false, bindings: { ADMIN_TOKEN: TOKEN } });
    await mf.ready;
  }, 60_000);

  afterAll(async () => {
    await mf?.dispose();
  });

  const auth = { Authorization: `Bearer ${TOKEN}` };

  it("serves the API behind its token, with problem documents", async () => {
    expect((await mf.dispatchFetch(`${BASE}/healthz`)).status).toBe(200);
    expect((await mf.dispatchFetch(`${BASE}/api/jobs`)).status).toBe(401);
    const created = await mf.dispatchFetch(`${BASE}/api/jobs`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "send_email", args: ["a@b.c"] }),
    });
    expect(created.status).toBe(201);
    const bad = await mf.dispatchFetch(`${BASE}/api/jobs`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: "{" });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const list = (await (await mf.dispatchFetch(`${BASE}/api/jobs`, { headers: auth })).json()) as { items: Array<{ name: string }> };
    expect(list.items.map((j) => j.name)).toContain("send_email");
  });

  it("logs in with a cookie, serves the UI under its CSP, and checks CSRF", async () => {
    const login = await mf.dispatchFetch(`${BASE}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { Origin: BASE, "Content-Type": "application/x-www-form-urlencoded" },
      body: `token=${TOKEN}`,
    });
    expect(login.status).toBe(303);
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const page = await mf.dispatchFetch(`${BASE}/`, { headers: { Cookie: cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const { csrfToken } = (await (await mf.dispatchFetch(`${BASE}/api/session`, { headers: { Cookie: cookie } })).json()) as { csrfToken: string };
    const body = JSON.stringify({ name: "send_email" });
    const headers = { Cookie: cookie, Origin: BASE, "Content-Type": "application/json" };
    expect((await mf.dispatchFetch(`${BASE}/api/jobs`, { method: "POST", headers, body })).status).toBe(403);
    expect((await mf.dispatchFetch(`${BASE}/api/jobs`, { method: "POST", headers: { ...headers, "X-CSRF-Token": csrfToken }, body })).status).toBe(201);
  });

  it("pushes snapshots over a WebSocket, and refuses a foreign Origin", async () => {
    const refused = await mf.dispatchFetch(`${BASE}/ws`, { headers: { ...auth, Upgrade: "websocket", Origin: "http://evil.test" } });
    expect(refused.status).toBe(403);
    const res = await mf.dispatchFetch(`${BASE}/ws`, { headers: { ...auth, Upgrade: "websocket", Origin: BASE } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const snap = await new Promise<LiveSnapshot>((resolve) => {
      ws.addEventListener("message", (e) => resolve(JSON.parse(String(e.data)) as LiveSnapshot));
      // workerd's upgrade helper has no onOpen: the client's first message starts the feed, as the UI does.
      ws.send("hello");
    });
    ws.close();
    expect(snap.type).toBe("snapshot");
    expect(snap.total).toBeGreaterThanOrEqual(1);
  });
});
