/** DashboardServer on real sockets: listening, WebSocket live feed with its Origin and auth checks, open mode's loopback rule. */
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ConfigError, Job, Storage, memoryBackend, silentLogger } from "../../src/index.js";
import { DashboardServer } from "../../src/adapters/runtime/node/dashboard-server.js";
import type { LiveSnapshot } from "../../src/adapters/http/index.js";
import { ADMIN, READER } from "../http/helpers.js";

const started: DashboardServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

async function start(storage = new Storage(memoryBackend()), options: ConstructorParameters<typeof DashboardServer>[1] = {}) {
  const server = new DashboardServer(storage, { auth: { adminTokens: [ADMIN], readTokens: [READER] }, logger: silentLogger, liveIntervalMs: 20, ...options });
  const addr = await server.start("127.0.0.1:0");
  started.push(server);
  return { server, storage, addr, origin: `http://127.0.0.1:${addr.port}` };
}

/** Opens a socket and resolves with its first message, or rejects with the HTTP status the upgrade got. */
function firstMessage(url: string, headers: Record<string, string>): Promise<LiveSnapshot> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("message", (data) => {
      ws.close();
      resolve(JSON.parse(String(data)) as LiveSnapshot);
    });
    ws.once("unexpected-response", (_req, res) => {
      ws.terminate();
      reject(new Error(`status ${res.statusCode}`));
    });
    ws.once("error", reject);
  });
}

async function cookieFor(origin: string, token: string): Promise<string> {
  const res = await fetch(`${origin}/login`, {
    method: "POST",
    redirect: "manual",
    headers: { Origin: origin, "Content-Type": "application/x-www-form-urlencoded" },
    body: `token=${token}`,
  });
  expect(res.status).toBe(303);
  return res.headers.get("set-cookie")!.split(";")[0]!;
}

describe("DashboardServer", () => {
  it("listens on a random port and serves health, the API and the login page", async () => {
    const { addr, origin } = await start();
    expect(addr).toMatchObject({ host: "127.0.0.1", url: `${origin}/` });
    expect(addr.port).toBeGreaterThan(0);
    expect(await (await fetch(`${origin}/healthz`)).json()).toEqual({ ok: true });
    expect((await fetch(`${origin}/api/jobs`)).status).toBe(401);
    expect((await fetch(`${origin}/api/jobs`, { headers: { Authorization: `Bearer ${READER}` } })).status).toBe(200);
    expect(await (await fetch(`${origin}/login`)).text()).toContain('name="token"');
  });

  it("pushes live snapshots over /ws to a logged-in page of the same origin", async () => {
    const { storage, origin, addr } = await start();
    await storage.enqueue(new Job("send_email", ["x"]));
    const cookie = await cookieFor(origin, READER);
    const snap = await firstMessage(`ws://127.0.0.1:${addr.port}/ws`, { Cookie: cookie, Origin: origin });
    expect(snap.type).toBe("snapshot");
    expect(snap.states.enqueued).toBe(1);
  });

  it("follows the store: later messages carry new counts", async () => {
    const { storage, addr } = await start();
    const ws = new WebSocket(`ws://127.0.0.1:${addr.port}/ws`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    const seen = await new Promise<number>((resolve, reject) => {
      let enqueued = false;
      ws.on("message", (data) => {
        const snap = JSON.parse(String(data)) as LiveSnapshot;
        if (!enqueued) {
          enqueued = true;
          void storage.enqueue(new Job("send_email"));
        } else if (snap.total === 1) {
          resolve(snap.states.enqueued);
        }
      });
      ws.once("error", reject);
    });
    ws.close();
    expect(seen).toBe(1);
  });

  it("refuses a WebSocket upgrade from a foreign Origin (403) or without credentials (401)", async () => {
    const { origin, addr } = await start();
    const cookie = await cookieFor(origin, ADMIN);
    const url = `ws://127.0.0.1:${addr.port}/ws`;
    await expect(firstMessage(url, { Cookie: cookie, Origin: "http://evil.test" })).rejects.toThrow("status 403");
    await expect(firstMessage(url, { Authorization: `Bearer ${ADMIN}`, Origin: "http://127.0.0.1.evil.test" })).rejects.toThrow("status 403");
    // Another local app (a page on http://localhost, port 80): the port is part of the origin.
    await expect(firstMessage(url, { Cookie: cookie, Origin: "http://localhost" })).rejects.toThrow("status 403");
    await expect(firstMessage(url, { Origin: origin })).rejects.toThrow("status 401");
    await expect(firstMessage(url, { Cookie: "qml_session=v1.forged.sig", Origin: origin })).rejects.toThrow("status 401");
  });

  it("open access binds loopback only: any other host is a ConfigError", async () => {
    const storage = new Storage(memoryBackend());
    for (const host of ["0.0.0.0:0", "[::]:0", ":0"]) {
      const server = new DashboardServer(storage, { auth: { open: true }, logger: silentLogger });
      await expect(server.start(host), host).rejects.toThrow(ConfigError);
    }
    const ok = new DashboardServer(storage, { auth: { open: true }, logger: silentLogger });
    const addr = await ok.start("127.0.0.1:0");
    started.push(ok);
    expect((await fetch(`${addr.url}api/jobs`)).status).toBe(200);
  });

  it("without auth options, takes tokens from the environment or generates one: never open", async () => {
    const prev = process.env.QML_DASHBOARD_TOKEN;
    delete process.env.QML_DASHBOARD_TOKEN;
    try {
      const generated = new DashboardServer(new Storage(memoryBackend()), { logger: silentLogger });
      const addr = await generated.start("127.0.0.1:0");
      started.push(generated);
      expect(generated.token).toMatch(/^[\w-]{32}$/);
      expect((await fetch(`${addr.url}api/jobs`)).status).toBe(401);
      expect((await fetch(`${addr.url}api/jobs`, { headers: { Authorization: `Bearer ${generated.token}` } })).status).toBe(200);

      process.env.QML_DASHBOARD_TOKEN = "env-admin-token-0123456789";
      const fromEnv = new DashboardServer(new Storage(memoryBackend()), { logger: silentLogger });
      const addr2 = await fromEnv.start("127.0.0.1:0");
      started.push(fromEnv);
      expect(fromEnv.token).toBeUndefined();
      expect((await fetch(`${addr2.url}api/jobs`, { headers: { Authorization: "Bearer env-admin-token-0123456789" } })).status).toBe(200);
    } finally {
      if (prev === undefined) delete process.env.QML_DASHBOARD_TOKEN;
      else process.env.QML_DASHBOARD_TOKEN = prev;
    }
  });

  it("refuses a malformed address and a port in use", async () => {
    const server = new DashboardServer(new Storage(memoryBackend()), { auth: { adminTokens: [ADMIN] }, logger: silentLogger });
    await expect(server.start("nonsense")).rejects.toThrow(ConfigError);
    await expect(server.start("127.0.0.1:70000")).rejects.toThrow(ConfigError);
    const { addr } = await start();
    await expect(server.start(`127.0.0.1:${addr.port}`)).rejects.toThrow(ConfigError);
  });

  it("stop() closes open sockets and the listener", async () => {
    const { server, addr } = await start();
    const ws = new WebSocket(`ws://127.0.0.1:${addr.port}/ws`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    await new Promise((resolve) => ws.once("message", resolve));
    const closed = new Promise((resolve) => ws.once("close", resolve));
    await server.stop();
    await closed;
    await expect(fetch(`${addr.url}healthz`)).rejects.toThrow();
  });
});
