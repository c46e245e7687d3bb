/**
 * Issue 22 in workerd (through Miniflare): the Workers upgrade helper calls
 * onOpen (snapshots come without a client message), a message over the cap
 * closes the socket with 1009, a session over its cap gets 429, and a
 * socket the client does not write to is closed as idle.
 */
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LIVE_MAX_MESSAGE_BYTES } from "../../src/adapters/http/live.js";

const TOKEN = "workerd-admin-token-0123456789";
const OTHER = "workerd-other-token-0123456789";
const BASE = "http://dash.test";

type Socket = NonNullable<Awaited<ReturnType<Miniflare["dispatchFetch"]>>["webSocket"]>;

describe("live WebSocket limits in workerd", () => {
  let mf: Miniflare;

  beforeAll(async () => {
    const out = await build({
      entryPoints: [new URL("./fixtures/hardening-workerd-entry.ts", import.meta.url).pathname],
      bundle: true,
      format: "esm",
      platform: "neutral",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["module", "main"],
      write: false,
      logLevel: "silent",
    });
    mf = new Miniflare({
      modules: true,
      script: out.outputFiles[0]!.text,
      compatibilityDate: "2026-04-01",
      cf: false,
      bindings: { ADMIN_TOKEN: TOKEN, OTHER_TOKEN: OTHER },
    });
    await mf.ready;
  }, 60_000);

  afterAll(async () => {
    await mf?.dispose();
  });

  async function upgrade(token: string): Promise<{ status: number; ws?: Socket }> {
    const res = await mf.dispatchFetch(`${BASE}/ws`, { headers: { Authorization: `Bearer ${token}`, Upgrade: "websocket", Origin: BASE } });
    if (res.status !== 101) return { status: res.status };
    const ws = res.webSocket!;
    ws.accept();
    return { status: 101, ws };
  }

  /** An upgrade retried while the session's slot is still held by a socket whose close the server has not seen yet. */
  async function upgradeWhenFree(token: string): Promise<Socket> {
    for (let i = 0; i < 50; i++) {
      const { status, ws } = await upgrade(token);
      if (status === 101) return ws!;
      expect(status).toBe(429);
    }
    throw new Error("the slot was never released");
  }

  const firstMessage = (ws: Socket) => new Promise<string>((resolve) => ws.addEventListener("message", (e) => resolve(String(e.data)), { once: true }));
  const closed = (ws: Socket) =>
    new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));

  it("starts the feed on open, then refuses a second socket of the session (429) until the first closes; a message over the cap closes it with 1009", async () => {
    const { status, ws } = await upgrade(TOKEN);
    expect(status).toBe(101);
    // No "hello" sent: the helper's onOpen started the feed.
    expect(JSON.parse(await firstMessage(ws!))).toMatchObject({ type: "snapshot" });
    expect((await upgrade(TOKEN)).status).toBe(429);
    // Another session still fits.
    const other = await upgrade(OTHER);
    expect(other.status).toBe(101);

    const done = closed(ws!);
    ws!.send("x".repeat(LIVE_MAX_MESSAGE_BYTES + 1));
    expect((await done).code).toBe(1009);

    // The slot is free again once the server has seen the close.
    (await upgradeWhenFree(TOKEN)).close();
    other.ws!.close();
  });

  it("closes a socket the client has not written to for idleMs", async () => {
    const ws = await upgradeWhenFree(OTHER);
    const { code, reason } = await closed(ws);
    expect(code).toBe(1000);
    expect(reason).toMatch(/idle/);
  });
});
