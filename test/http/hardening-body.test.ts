/**
 * Issue 22: a body over the limit on a kept-alive connection. The server
 * answers 413 with `Connection: close` and closes, rather than reading on
 * and resetting the socket under the client's next request; the client's
 * next request goes out on a new connection and succeeds.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Storage, memoryBackend, silentLogger } from "../../src/index.js";
import { DashboardServer } from "../../src/adapters/runtime/node/dashboard-server.js";
import { ADMIN } from "./helpers.js";

const started: DashboardServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

async function start(): Promise<number> {
  const server = new DashboardServer(new Storage(memoryBackend()), { auth: { adminTokens: [ADMIN] }, logger: silentLogger });
  const addr = await server.start("127.0.0.1:0");
  started.push(server);
  return addr.port;
}

interface Exchange {
  /** Every response head and body the connection carried, as text. */
  text: string;
  /** How the connection ended: "end" (the server's FIN, read to the end) or the error. */
  ended: string;
}

/** One connection: writes `head`, then `bodyBytes` of body in 64 KiB chunks (chunked encoding when asked), then `after`. */
async function exchange(port: number, head: string, bodyBytes: number, chunked: boolean, after: string): Promise<Exchange> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  let text = "";
  let ended = "open";
  socket.on("data", (b) => (text += b.toString("latin1")));
  const gone = new Promise<void>((resolve) => {
    socket.once("end", () => {
      if (ended === "open") ended = "end";
    });
    socket.once("error", (e) => {
      if (ended === "open") ended = (e as NodeJS.ErrnoException).code ?? e.message;
    });
    socket.once("close", () => resolve());
  });
  socket.write(head);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  for (let sent = 0; sent < bodyBytes && socket.writable; sent += chunk.length) {
    const part = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]) : chunk;
    if (!socket.write(part)) await Promise.race([new Promise((r) => socket.once("drain", r)), gone]);
  }
  if (socket.writable) socket.write((chunked ? "0\r\n\r\n" : "") + after);
  // Wait for the server's answer to the second request, or for the connection to end.
  await Promise.race([gone, new Promise<void>((resolve) => socket.on("data", () => /HTTP\/1.1 200/.test(text) && resolve()))]);
  socket.destroy();
  return { text, ended };
}

function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
}

describe("a body over the limit on a kept-alive connection", () => {
  for (const chunked of [false, true]) {
    it(`answers 413 with Connection: close and closes cleanly (${chunked ? "chunked" : "Content-Length"}); the next request succeeds on a new connection`, async () => {
      const port = await start();
      const size = 2 * 1024 * 1024;
      const head =
        `POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\n` +
        (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : `Content-Length: ${size}\r\n\r\n`);
      const next = `GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`;
      const first = await exchange(port, head, size, chunked, next);

      expect(statuses(first.text)[0]).toBe(413);
      const head413 = first.text.slice(0, first.text.indexOf("\r\n\r\n")).toLowerCase();
      expect(head413).toContain("connection: close");
      expect(first.text).toContain('"code":"BODY_TOO_LARGE"');
      // Either the server answered the next request too, or it closed as it said it would.
      if (statuses(first.text).length === 1) expect(first.ended).toBe("end");
      else expect(statuses(first.text)[1]).toBe(200);

      // A client that honours Connection: close sends its next request on a new connection.
      const again = await fetch(`http://127.0.0.1:${port}/api/stats`, { headers: { Authorization: `Bearer ${ADMIN}` } });
      expect(again.status).toBe(200);
    });
  }

  it("a client on a keep-alive agent gets the 413, then its next request answered", async () => {
    const port = await start();
    const big = await fetch(`http://127.0.0.1:${port}/api/jobs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "x", args: ["y".repeat(2 * 1024 * 1024)] }),
    }).catch((e: unknown) => e);
    // undici may see the close before it has written the whole body; if it reports a response, it is the 413.
    if (big instanceof Response) {
      expect(big.status).toBe(413);
      expect(big.headers.get("connection")).toBe("close");
    }
    const next = await fetch(`http://127.0.0.1:${port}/api/stats`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    expect(next.status).toBe(200);
  });
});
