/**
 * An HTTP pass-through that can hold a reply after the upstream answered:
 * the request was applied, the client times out and never learns it.
 *
 * The Neon gateway's fault hook (infra/neon/gateway.ts) can answer a status
 * or reset the connection after applying a request, but not hold the reply
 * until the client's timeout; this proxy, put in front of it, adds that one
 * fault. (A `{ kind: "hang-after-apply"; ms }` HttpFault in the gateway
 * would make it unnecessary.)
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface FaultProxy {
  /** Base URL, e.g. http://127.0.0.1:41234: requests go to the same path upstream. */
  url: string;
  /** Requests whose reply was held back after the upstream applied them. */
  readonly held: number;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Upstream origin, e.g. http://127.0.0.1:4444. */
  target: string;
  /** Per request: hold its (applied) reply for this many ms, then drop the connection; undefined passes it through. */
  holdAfterApply: () => number | undefined;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length"]);

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  let held = 0;
  const sockets = new Set<Socket>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && !HOP_BY_HOP.has(k)) headers[k] = v;
    const hold = options.holdAfterApply();
    const upstream = await fetch(`${options.target}${req.url ?? "/"}`, {
      method: req.method ?? "GET",
      headers,
      ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
    });
    const body = Buffer.from(await upstream.arrayBuffer());
    if (hold !== undefined) {
      held++;
      await new Promise((r) => setTimeout(r, hold));
      req.socket.destroy();
      return;
    }
    const out: Record<string, string> = {};
    upstream.headers.forEach((v, k) => {
      if (!HOP_BY_HOP.has(k) && k !== "content-encoding") out[k] = v;
    });
    res.writeHead(upstream.status, { ...out, "content-length": String(body.length) });
    res.end(body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end("fault proxy: upstream failed");
      }
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get held() {
      return held;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
