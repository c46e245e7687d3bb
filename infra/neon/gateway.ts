/**
 * A local stand-in for Neon's two endpoints, in front of a real PostgreSQL,
 * so that `@neondatabase/serverless` runs unchanged against it:
 *
 * - WebSocket-to-TCP (`/v1?address=host:port`), for `Pool`/`Client`: every
 *   binary frame is written to the TCP socket and every TCP chunk is sent
 *   back as a frame. Frames that arrive before the TCP socket is up are
 *   buffered (the driver pipelines its startup message).
 * - `POST /sql`, for `neon()`: one statement (`{query, params}`) or a
 *   non-interactive transaction (`{queries: [...]}` with the
 *   `Neon-Batch-*` headers). Replies as Neon does: rows as arrays of raw
 *   Postgres text (the client parses them by `dataTypeID`), errors as HTTP
 *   400 JSON with the Postgres error fields.
 *
 * Only the database of `databaseUrl` (plus `allow`) can be reached: the
 * gateway is not an open proxy.
 *
 * Faults: an optional hook decides, per request or connection, to answer
 * with a status, reset the connection, delay, or apply the statement and
 * then fail the reply (the write happened, the client does not know). The
 * chaos tests of a later issue plug in here; `setFaults` swaps the hook at
 * run time.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { connect } from "node:net";
import pg from "pg";
import { WebSocketServer, type RawData, type WebSocket } from "ws";

// ---------------------------------------------------------------- faults

export type HttpFault =
  /** Answer with this status (and body) without running anything. */
  | { kind: "status"; status: number; body?: string }
  /** Destroy the connection without running anything. */
  | { kind: "reset" }
  /** Wait, then handle the request normally. */
  | { kind: "delay"; ms: number }
  /** Run (and commit) the request, then destroy the connection instead of replying. */
  | { kind: "reset-after-apply" }
  /** Run (and commit) the request, then answer with this status. */
  | { kind: "status-after-apply"; status: number; body?: string };

export type WsFault =
  /** Close the WebSocket at once, without opening the TCP side. */
  | { kind: "refuse" }
  /** Tear both sides down after `ms` milliseconds. */
  | { kind: "reset-after"; ms: number };

export interface HttpRequestInfo {
  /** 1 for the gateway's first /sql request. */
  seq: number;
  queries: Array<{ query: string; params: unknown[] }>;
  batch: boolean;
}

export interface WsConnectionInfo {
  /** 1 for the gateway's first WebSocket. */
  seq: number;
  address: string;
}

export interface GatewayFaults {
  http?(info: HttpRequestInfo): HttpFault | undefined | Promise<HttpFault | undefined>;
  ws?(info: WsConnectionInfo): WsFault | undefined;
}

// ---------------------------------------------------------------- server

export interface NeonGatewayOptions {
  /** Default 0: a random free port. */
  port?: number;
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** The real PostgreSQL behind the gateway. */
  databaseUrl: string;
  /** More `host:port` targets clients may reach (default: only databaseUrl's). */
  allow?: string[];
  /** Pool size per connection string on the /sql side (default 10). */
  maxConnections?: number;
  faults?: GatewayFaults;
}

export interface NeonGateway {
  readonly port: number;
  readonly host: string;
  /** For `neonConfig.wsProxy` (with `useSecureWebSocket = false`). */
  wsProxy(host: string, port: number | string): string;
  /** For `neonConfig.fetchEndpoint` (or the neon-http driver's `fetchEndpoint`). */
  readonly fetchEndpoint: string;
  setFaults(faults: GatewayFaults | undefined): void;
  /** Requests and connections served so far. */
  readonly counts: { http: number; ws: number };
  close(): Promise<void>;
}

const ISOLATION: Record<string, string> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};

/** Every value as Postgres sent it: the client parses by dataTypeID. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

const ERROR_FIELDS = [
  "severity",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function hostPortOf(url: string): string {
  const u = new URL(url.replace(/^postgres(ql)?:/, "http:"));
  return `${u.hostname}:${u.port || "5432"}`;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export async function startNeonGateway(options: NeonGatewayOptions): Promise<NeonGateway> {
  const bindHost = options.host ?? "127.0.0.1";
  const allowed = new Set([hostPortOf(options.databaseUrl), ...(options.allow ?? [])]);
  let faults = options.faults;
  const counts = { http: 0, ws: 0 };
  const pools = new Map<string, pg.Pool>();
  const sockets = new Set<Socket>();
  const tunnels = new Set<{ ws: WebSocket; tcp: Socket }>();

  function poolFor(connectionString: string): pg.Pool {
    let pool = pools.get(connectionString);
    if (!pool) {
      pool = new pg.Pool({ connectionString, max: options.maxConnections ?? 10, idleTimeoutMillis: 10_000 });
      pool.on("error", () => {});
      pools.set(connectionString, pool);
    }
    return pool;
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  function reply(res: ServerResponse, status: number, body: unknown): void {
    const text = typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(status, { "content-type": typeof body === "string" ? "text/plain" : "application/json" });
    res.end(text);
  }

  async function runOne(client: pg.Pool | pg.PoolClient, q: { query: string; params: unknown[] }, arrayMode: boolean) {
    // Extended protocol always, as Neon: one statement per query, even without parameters.
    const res = await client.query({
      text: q.query,
      values: q.params,
      rowMode: arrayMode ? "array" : undefined,
      types: RAW_TEXT,
      queryMode: "extended",
    } as pg.QueryConfig);
    return {
      command: res.command,
      rowCount: res.rowCount,
      rowAsArray: arrayMode,
      fields: res.fields.map((f) => ({
        name: f.name,
        tableID: f.tableID,
        columnID: f.columnID,
        dataTypeID: f.dataTypeID,
        dataTypeSize: f.dataTypeSize,
        dataTypeModifier: f.dataTypeModifier,
        format: f.format,
      })),
      rows: res.rows,
    };
  }

  async function handleSql(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const seq = ++counts.http;
    const connectionString = req.headers["neon-connection-string"];
    if (typeof connectionString !== "string") throw new HttpError(400, "missing Neon-Connection-String header");
    let target: string;
    try {
      target = hostPortOf(connectionString);
    } catch {
      throw new HttpError(400, "malformed Neon-Connection-String");
    }
    if (!allowed.has(target)) throw new HttpError(400, `the local gateway does not reach ${target}`);
    const arrayMode = req.headers["neon-array-mode"] === "true";
    let body: { query?: unknown; params?: unknown; queries?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch {
      throw new HttpError(400, "request body is not JSON");
    }
    const batch = Array.isArray(body.queries);
    const queries = (batch ? (body.queries as Array<{ query?: unknown; params?: unknown }>) : [body]).map((q) => {
      if (typeof q?.query !== "string") throw new HttpError(400, "query must be a string");
      return { query: q.query, params: Array.isArray(q.params) ? q.params : [] };
    });

    let fault = await faults?.http?.({ seq, queries, batch });
    if (fault?.kind === "delay") {
      const ms = fault.ms;
      await new Promise((r) => setTimeout(r, ms));
      fault = undefined;
    }
    if (fault?.kind === "status") return reply(res, fault.status, fault.body ?? `injected fault: HTTP ${fault.status}`);
    if (fault?.kind === "reset") {
      req.socket.destroy();
      return;
    }

    const pool = poolFor(connectionString);
    let payload: unknown;
    if (!batch) {
      payload = await runOne(pool, queries[0]!, arrayMode);
    } else {
      const level = req.headers["neon-batch-isolation-level"];
      if (level !== undefined && (typeof level !== "string" || !ISOLATION[level])) throw new HttpError(400, `unknown isolation level ${String(level)}`);
      const readOnly = req.headers["neon-batch-read-only"] === "true";
      const deferrable = req.headers["neon-batch-deferrable"] === "true";
      const begin = `BEGIN ISOLATION LEVEL ${ISOLATION[(level as string) ?? "ReadCommitted"]} ${readOnly ? "READ ONLY" : "READ WRITE"} ${deferrable ? "DEFERRABLE" : "NOT DEFERRABLE"}`;
      const client = await pool.connect();
      try {
        await client.query(begin);
        const results = [];
        for (const q of queries) results.push(await runOne(client, q, arrayMode));
        await client.query("COMMIT");
        payload = { results };
      } catch (e) {
        await client.query("ROLLBACK").catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    }
    if (fault?.kind === "reset-after-apply") {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === "status-after-apply") return reply(res, fault.status, fault.body ?? `injected fault after apply: HTTP ${fault.status}`);
    reply(res, 200, payload);
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/health") return reply(res, 200, "ok");
    if (req.method !== "POST" || path !== "/sql") return reply(res, 404, "not found");
    handleSql(req, res).catch((e: unknown) => {
      if (res.headersSent || req.socket.destroyed) return;
      if (e instanceof HttpError) return reply(res, e.status, { message: e.message });
      const err = e as Record<string, unknown> & Error;
      if (typeof err?.code === "string" && /^[0-9A-Z]{5}$/.test(err.code)) {
        const out: Record<string, unknown> = { message: err.message };
        for (const f of ERROR_FIELDS) if (err[f] !== undefined) out[f] = err[f];
        return reply(res, 400, out);
      }
      // The database itself could not be reached: a server-side failure, as on Neon.
      reply(res, 502, `gateway could not reach the database: ${err?.message ?? String(e)}`);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://gateway");
    const address = url.searchParams.get("address") ?? "";
    if (url.pathname !== "/v1" || !allowed.has(address)) {
      socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => tunnel(ws, address));
  });

  function tunnel(ws: WebSocket, address: string): void {
    const seq = ++counts.ws;
    const fault = faults?.ws?.({ seq, address });
    if (fault?.kind === "refuse") {
      ws.close(1011, "injected fault");
      return;
    }
    const sep = address.lastIndexOf(":");
    const tcp = connect(Number(address.slice(sep + 1)), address.slice(0, sep));
    tcp.setNoDelay(true);
    const entry = { ws, tcp };
    tunnels.add(entry);
    let ready = false;
    const queued: Buffer[] = [];
    const teardown = () => {
      tunnels.delete(entry);
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
    };
    tcp.on("connect", () => {
      ready = true;
      for (const b of queued.splice(0)) tcp.write(b);
    });
    tcp.on("data", (d) => {
      if (ws.readyState === ws.OPEN) ws.send(d, { binary: true });
    });
    tcp.on("error", teardown);
    tcp.on("close", teardown);
    ws.on("message", (data) => {
      const b = toBuffer(data);
      if (ready) tcp.write(b);
      else queued.push(b);
    });
    ws.on("close", teardown);
    ws.on("error", teardown);
    if (fault?.kind === "reset-after") {
      const t = setTimeout(teardown, fault.ms);
      t.unref();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, bindHost, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `${bindHost}:${port}`;

  return {
    port,
    host: bindHost,
    wsProxy: (host, p) => `${origin}/v1?address=${host}:${p}`,
    fetchEndpoint: `http://${origin}/sql`,
    setFaults(f) {
      faults = f;
    },
    counts,
    async close() {
      for (const t of tunnels) {
        t.tcp.destroy();
        t.ws.terminate();
      }
      tunnels.clear();
      wss.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...pools.values()].map((p) => p.end().catch(() => {})));
      pools.clear();
    },
  };
}
