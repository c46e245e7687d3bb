/**
 * A local stand-in for Upstash's Redis REST API, in front of a real Redis.
 * The `@upstash/redis` client (the code that runs in production) talks to it
 * exactly as to Upstash, so the HTTP driver is tested here without an
 * account, and a developer gets Upstash semantics on a laptop.
 *
 * Protocol (what the client sends; see /work/shared/TOOLCHAIN.md):
 * - POST /            one command as a JSON array: ["set","k","v"]
 * - POST /pipeline    an array of commands; not atomic
 * - POST /multi-exec  an array of commands, run as MULTI/EXEC
 * - /<cmd>/<arg>/...  a command in the path (a POST body is the last argument)
 * - auth: `Authorization: Bearer <token>` (or `?_token=`); 401 otherwise
 * - replies: {"result": …} or {"error": "…"} (HTTP 400 for a single
 *   command); pipeline and multi-exec answer 200 with [{result}|{error}, …]
 * - `Upstash-Encoding: base64`: every string in a result is base64, in
 *   nested arrays too; numbers and null stay; a top-level "OK" stays "OK".
 *
 * Arguments arrive as JSON values: every one is sent to Redis as a string.
 * Replies are read as bytes (callBuffer), so binary values survive base64.
 * Command names go to ioredis upper-cased: its reply transformers are keyed
 * by the lower-case name (it would turn an HGETALL reply into an object),
 * and the gateway must pass Redis's reply through untouched.
 *
 * `faults` is the seam for chaos tests: it sees each request and may answer
 * 5xx, delay, hang or drop the connection, before or after the commands
 * are applied.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Redis } from "ioredis";

export type GatewayPath = "/" | "/pipeline" | "/multi-exec" | "path";

export interface GatewayRequest {
  /** 1-based count of authorised requests since start. */
  n: number;
  path: GatewayPath;
  commands: string[][];
}

/**
 * What to do with a request instead of answering it normally.
 * - status: answer with this HTTP status (default 500) and an error; nothing applied
 * - reset: drop the connection, before or after applying the commands
 * - hang: apply (when "after") and hold the request for `ms`, then drop it:
 *   a client timeout after the write took effect
 * - delay: wait `ms`, then answer normally
 */
export type GatewayFault =
  | { kind: "status"; status?: number; message?: string }
  | { kind: "reset"; when: "before" | "after" }
  | { kind: "hang"; when: "before" | "after"; ms: number }
  | { kind: "delay"; ms: number };

export interface UpstashGatewayOptions {
  /** Default 0: a random free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The Redis behind it, e.g. redis://127.0.0.1:6379. */
  redisUrl: string;
  /** The bearer token clients must send; default a random one (see `token` on the result). */
  token?: string;
  /** Called for every authorised request; return a fault to inject one. */
  faults?: (req: GatewayRequest) => GatewayFault | undefined | Promise<GatewayFault | undefined>;
  /** Commands to refuse as Upstash does for some (e.g. ["config"]): they answer an ERR reply. */
  refuseCommands?: string[];
  /** Largest request body, default 10 MiB. */
  maxBodyBytes?: number;
}

export interface UpstashGateway {
  /** e.g. http://127.0.0.1:53211: UPSTASH_REDIS_REST_URL. */
  url: string;
  /** UPSTASH_REDIS_REST_TOKEN. */
  token: string;
  port: number;
  /** Requests and commands served (authorised ones), for tests that count round trips. */
  readonly stats: { requests: number; commands: number };
  close(): Promise<void>;
}

type Reply = Buffer | number | null | Reply[] | Error;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Constant-time: hash both sides so that lengths do not leak either. */
function tokenMatches(given: string | undefined, expected: Buffer): boolean {
  return given !== undefined && timingSafeEqual(digest(given), expected);
}

function toArg(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

function parseCommand(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0) throw new HttpError(400, "ERR a command must be a non-empty JSON array");
  return v.map(toArg);
}

function encode(reply: Reply, base64: boolean, top: boolean): unknown {
  if (reply === null || typeof reply === "number") return reply;
  if (Array.isArray(reply)) return reply.map((r) => (r instanceof Error ? null : encode(r, base64, false)));
  if (reply instanceof Error) return null;
  if (!base64) return reply.toString("utf8");
  // The client special-cases a bare "OK" at the top level only; nested strings are always decoded.
  if (top && reply.length === 2 && reply.toString("latin1") === "OK") return "OK";
  return reply.toString("base64");
}

function errorText(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.length > 0 ? m : "ERR unknown error";
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (b: Buffer) => {
      size += b.length;
      if (size > max) {
        reject(new HttpError(413, "ERR request body too large"));
        req.destroy();
        return;
      }
      parts.push(b);
    });
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

export async function startUpstashGateway(options: UpstashGatewayOptions): Promise<UpstashGateway> {
  const token = options.token ?? randomBytes(24).toString("base64url");
  const expected = digest(token);
  const refused = new Set((options.refuseCommands ?? []).map((c) => c.toLowerCase()));
  const maxBody = options.maxBodyBytes ?? 10 * 1024 * 1024;
  // Auto-pipelining stays off: ioredis 6 drops the command name of an
  // auto-pipelined callBuffer. /pipeline bodies go out as explicit pipelines.
  const redis = new Redis(options.redisUrl, { lazyConnect: true, enableAutoPipelining: false, maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  await redis.connect();

  const stats = { requests: 0, commands: 0 };
  const sockets = new Set<Socket>();

  async function run(cmd: string[]): Promise<Reply> {
    const [name, ...args] = cmd;
    if (refused.has(name!.toLowerCase())) return new Error(`ERR Command is not available: '${name}'`);
    try {
      return (await redis.callBuffer(name!.toUpperCase(), ...args)) as Reply;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  /** Not atomic: one write, replies in order, a failing command fails alone. */
  async function pipeline(cmds: string[][]): Promise<Reply[]> {
    const p = redis.pipeline();
    const sent: number[] = [];
    const out: Reply[] = cmds.map((c, i) => {
      if (refused.has(c[0]!.toLowerCase())) return new Error(`ERR Command is not available: '${c[0]}'`);
      p.callBuffer(c[0]!.toUpperCase(), ...c.slice(1));
      sent.push(i);
      return null;
    });
    if (sent.length === 0) return out;
    try {
      const res = (await p.exec()) ?? [];
      res.forEach(([err, value], j) => (out[sent[j]!] = err ? err : (value as Reply)));
    } catch (e) {
      for (const i of sent) out[i] = e instanceof Error ? e : new Error(String(e));
    }
    return out;
  }

  /** MULTI/EXEC: all or nothing; a refused command aborts the whole transaction. */
  async function multiExec(cmds: string[][]): Promise<Reply[] | Error> {
    for (const c of cmds) if (refused.has(c[0]!.toLowerCase())) return new Error(`ERR Command is not available: '${c[0]}'`);
    const tx = redis.multi();
    for (const c of cmds) tx.callBuffer(c[0]!.toUpperCase(), ...c.slice(1));
    try {
      const res = (await tx.exec()) ?? [];
      return res.map(([err, value]) => (err ? err : (value as Reply)));
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  function commandsOf(path: GatewayPath, url: URL, body: Buffer): string[][] {
    if (path === "path") {
      const parts = url.pathname
        .split("/")
        .filter((p) => p.length > 0)
        .map(decodeURIComponent);
      if (body.length > 0) parts.push(body.toString("utf8"));
      return [parseCommand(parts)];
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      throw new HttpError(400, "ERR request body is not JSON");
    }
    if (path === "/") return [parseCommand(parsed)];
    if (!Array.isArray(parsed) || parsed.length === 0) throw new HttpError(400, "ERR a pipeline must be a non-empty array of commands");
    return parsed.map(parseCommand);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://gateway");
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? url.searchParams.get("_token") ?? undefined;
    if (!tokenMatches(bearer, expected)) throw new HttpError(401, "Unauthorized");
    const path: GatewayPath = url.pathname === "/" ? "/" : url.pathname === "/pipeline" ? "/pipeline" : url.pathname === "/multi-exec" ? "/multi-exec" : "path";
    if (path !== "path" && req.method !== "POST") throw new HttpError(405, "ERR use POST");
    const body = await readBody(req, maxBody);
    const commands = commandsOf(path, url, body);
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    stats.requests++;
    stats.commands += commands.length;

    const fault = options.faults ? await options.faults({ n: stats.requests, path, commands }) : undefined;
    if (fault?.kind === "status") throw new HttpError(fault.status ?? 500, fault.message ?? "ERR injected fault");
    if (fault?.kind === "delay") await new Promise((r) => setTimeout(r, fault.ms));
    if ((fault?.kind === "reset" || fault?.kind === "hang") && fault.when === "before") return drop(req, fault);

    let status = 200;
    let payload: unknown;
    if (path === "/multi-exec") {
      const results = await multiExec(commands);
      if (results instanceof Error) {
        status = 400;
        payload = { error: errorText(results) };
      } else {
        payload = results.map((r) => (r instanceof Error ? { error: errorText(r) } : { result: encode(r, base64, true) }));
      }
    } else if (path === "/pipeline") {
      const results = await pipeline(commands);
      payload = results.map((r) => (r instanceof Error ? { error: errorText(r) } : { result: encode(r, base64, true) }));
    } else {
      const r = await run(commands[0]!);
      if (r instanceof Error) {
        status = 400;
        payload = { error: errorText(r) };
      } else {
        payload = { result: encode(r, base64, true) };
      }
    }
    if (fault?.kind === "reset" || fault?.kind === "hang") return drop(req, fault);
    send(res, status, payload);
  }

  async function drop(req: IncomingMessage, fault: { kind: "reset" } | { kind: "hang"; ms: number }): Promise<void> {
    if (fault.kind === "hang") await new Promise((r) => setTimeout(r, fault.ms));
    req.socket.destroy();
  }

  function send(res: ServerResponse, status: number, payload: unknown): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(payload);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      send(res, status, { error: errorText(e) });
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = options.host && options.host !== "0.0.0.0" && options.host !== "::" ? options.host : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    token,
    port: address.port,
    stats,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        });
        redis.disconnect();
      })()),
  };
}
