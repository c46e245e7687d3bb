/**
 * Issue 22: the live WebSocket on a real Node server: a message over the
 * cap closes the socket (1009) before the server buffers it, connections
 * are capped per session and in total (SSE streams count too), and a
 * socket the client stopped writing to is closed.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Storage, memoryBackend, silentLogger } from "../../src/index.js";
import { DashboardServer, type DashboardServerOptions } from "../../src/adapters/runtime/node/dashboard-server.js";
import { LIVE_MAX_MESSAGE_BYTES } from "../../src/adapters/http/live.js";
import { ADMIN, READER } from "./helpers.js";

const SECOND_ADMIN = "second-admin-token-0123456789";
const THIRD_ADMIN = "third-admin-token-0123456789";

const started: DashboardServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

async function start(options: DashboardServerOptions = {}) {
  const server = new DashboardServer(new Storage(memoryBackend()), {
    auth: { adminTokens: [ADMIN, SECOND_ADMIN, THIRD_ADMIN], readTokens: [READER] },
    logger: silentLogger,
    liveIntervalMs: 20,
    ...options,
  });
  const addr = await server.start("127.0.0.1:0");
  started.push(server);
  return { port: addr.port, url: `ws://127.0.0.1:${addr.port}/ws`, origin: `http://127.0.0.1:${addr.port}` };
}

/** An open socket that has had its first snapshot (so the server counts it), or the HTTP status its upgrade got. */
function open(url: string, token: string): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
    ws.once("message", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** Retries `attempt` each time the server has had a chance to notice a close, until it gives a socket. */
async function openWhenFreed(url: string, token: string): Promise<WebSocket> {
  for (let i = 0; i < 200; i++) {
    const ws = await open(url, token);
    if (typeof ws !== "number") return ws;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error("the server never released the slot");
}

/** The status code of the first close frame among a server's (unmasked) frames. */
function closeCode(frames: Buffer): number | undefined {
  let at = 0;
  while (at + 2 <= frames.length) {
    const opcode = frames[at]! & 0x0f;
    let length = frames[at + 1]! & 0x7f;
    let start = at + 2;
    if (length === 126) {
      length = frames.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      length = Number(frames.readBigUInt64BE(start));
      start += 8;
    }
    if (opcode === 0x8) return frames.readUInt16BE(start);
    at = start + length;
  }
  return undefined;
}

describe("live WebSocket limits (Node)", () => {
  it("closes a socket whose message exceeds the cap with 1009, and keeps serving others", async () => {
    const { url } = await start();
    const ws = await open(url, ADMIN);
    if (typeof ws === "number") throw new Error(`upgrade refused: ${ws}`);
    const done = closed(ws);
    ws.send("x".repeat(LIVE_MAX_MESSAGE_BYTES + 1));
    expect((await done).code).toBe(1009);
    // Small messages (the UI's "hello" and "ping") are fine.
    const other = await open(url, ADMIN);
    if (typeof other === "number") throw new Error(`upgrade refused: ${other}`);
    other.send("ping");
    await new Promise((r) => other.once("message", r));
    other.close();
  });

  it("refuses a 100 MiB frame from its header: the socket closes with 1009 and the server's memory stays put", async () => {
    const { port } = await start();
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    let received = Buffer.alloc(0);
    socket.on("data", (b) => (received = Buffer.concat([received, b])));
    socket.on("error", () => {});
    const gone = new Promise((r) => socket.once("close", r));
    socket.write(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${ADMIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${Buffer.from("0123456789abcdef").toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    while (!received.includes("\r\n\r\n")) await new Promise((r) => socket.once("data", r));
    expect(received.toString("latin1")).toMatch(/^HTTP\/1.1 101/);
    const handshakeEnd = received.indexOf("\r\n\r\n") + 4;

    const before = process.memoryUsage().rss;
    const size = 100 * 1024 * 1024;
    // FIN + text, masked, 64-bit length, then the mask key: what a client sends before a 100 MiB payload.
    const header = Buffer.alloc(14);
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(size), 2);
    socket.write(header);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    while (sent < size && !socket.destroyed && socket.writable) {
      const ok = socket.write(chunk);
      sent += chunk.length;
      if (!ok) await Promise.race([new Promise((r) => socket.once("drain", r)), gone]);
    }
    await gone;
    expect(sent).toBeLessThan(size);
    // After any snapshots, the server's close frame: opcode 8, then the status code.
    expect(closeCode(received.subarray(handshakeEnd))).toBe(1009);
    // Generous: a server that buffered the frame would hold 100 MiB more.
    expect(process.memoryUsage().rss - before).toBeLessThan(48 * 1024 * 1024);
  });

  it("refuses more sockets than a session may hold, and more than the server may, with 429; a closed socket frees its slot", async () => {
    const { url, origin } = await start({ live: { maxConnections: 3, maxPerSession: 2 } });
    const a1 = await open(url, ADMIN);
    const a2 = await open(url, ADMIN);
    expect([typeof a1, typeof a2]).toEqual(["object", "object"]);
    expect(await open(url, ADMIN)).toBe(429);
    const b1 = await open(url, SECOND_ADMIN);
    expect(typeof b1).toBe("object");
    // Three open: the server is full for every session, SSE included.
    expect(await open(url, THIRD_ADMIN)).toBe(429);
    const sse = await fetch(`${origin}/api/events`, { headers: { Authorization: `Bearer ${THIRD_ADMIN}` } });
    expect(sse.status).toBe(429);
    expect(((await sse.json()) as { code: string }).code).toBe("TOO_MANY_CONNECTIONS");

    (a1 as WebSocket).close();
    const c1 = await openWhenFreed(url, THIRD_ADMIN);
    for (const ws of [a2, b1, c1]) (ws as WebSocket).close();
  });

  it("closes a socket the client has not written to for idleMs; one that keeps writing stays", async () => {
    const { url } = await start({ live: { idleMs: 100 } });
    const quiet = await open(url, ADMIN);
    if (typeof quiet === "number") throw new Error(`upgrade refused: ${quiet}`);
    const { code, reason } = await closed(quiet);
    expect(code).toBe(1000);
    expect(reason).toMatch(/idle/);

    const chatty = await open(url, ADMIN);
    if (typeof chatty === "number") throw new Error(`upgrade refused: ${chatty}`);
    let snapshots = 0;
    let closedEarly = false;
    chatty.once("close", () => (closedEarly = true));
    // A ping per snapshot (every 20 ms): 30 snapshots span several idle periods.
    await new Promise<void>((resolve) =>
      chatty.on("message", () => {
        chatty.send("ping");
        if (++snapshots === 30) resolve();
      }),
    );
    expect(closedEarly).toBe(false);
    chatty.close();
  });
});
