/**
 * A counting TCP proxy: sits between a contender and Redis or PostgreSQL and
 * counts the requests the store receives, whatever the client library.
 *
 * Why a proxy: the servers are shared with other engineers' tests, so
 * server-wide counters (`INFO commandstats`, `pg_stat_statements`, which is
 * not installed anyway) would count their traffic too. A proxy per
 * measurement sees exactly one contender's connections.
 *
 * What counts as one request:
 * - Redis (RESP): one command, i.e. one top-level array the client sends.
 *   A pipeline of 5 commands counts 5; an EVALSHA counts 1.
 * - PostgreSQL (v3 protocol): one statement execution, i.e. one Query ('Q')
 *   or Execute ('E') message. Parse/Bind/Describe/Sync only frame an Execute.
 */
import { createServer, Socket, type AddressInfo, type Server } from "node:net";

export type ProxyProtocol = "resp" | "postgres";

export interface CountingProxy {
  readonly port: number;
  /** Requests seen since the proxy started. */
  count(): number;
  /** Stops accepting; open connections get `graceMs` (default 2000) to close on their own. */
  close(graceMs?: number): Promise<void>;
}

/** Counts requests in one client→server byte stream, across chunk boundaries. */
export interface RequestCounter {
  feed(chunk: Buffer): void;
  readonly requests: number;
}

/**
 * RESP parser for what clients send: arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`).
 * Inline commands (a bare line) count one each; clients libraries never send them.
 */
export class RespCounter implements RequestCounter {
  requests = 0;
  private line = "";
  /** Bulk strings left in the current array. */
  private elements = 0;
  /** Bytes of bulk payload (plus CRLF) still to skip. */
  private skip = 0;

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const nl = chunk.indexOf(10, i);
      if (nl === -1) {
        this.line += chunk.toString("latin1", i);
        return;
      }
      const line = (this.line + chunk.toString("latin1", i, nl)).replace(/\r$/, "");
      this.line = "";
      i = nl + 1;
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (line.length === 0) return;
    const kind = line[0];
    const n = Number(line.slice(1));
    if (this.elements === 0) {
      this.requests++;
      if (kind === "*") this.elements = Math.max(0, n);
      return;
    }
    if (kind === "$") {
      this.elements--;
      if (n >= 0) this.skip = n + 2;
    } else {
      // integers or simple strings inside an array: rare from clients, one element each
      this.elements--;
    }
  }
}

/**
 * PostgreSQL frontend messages: the first one (StartupMessage, or an
 * SSLRequest/GSSENCRequest before it) has no type byte; every later one is
 * type (1 byte) + length (int32, counting itself) + body.
 */
export class PostgresCounter implements RequestCounter {
  requests = 0;
  private untyped = true;
  private header = Buffer.alloc(0);
  private skip = 0;

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const need = this.untyped ? 8 : 5;
      const take = Math.min(need - this.header.length, chunk.length - i);
      this.header = Buffer.concat([this.header, chunk.subarray(i, i + take)]);
      i += take;
      if (this.header.length < need) return;
      if (this.untyped) {
        const len = this.header.readInt32BE(0);
        const code = this.header.readInt32BE(4);
        // SSLRequest (80877103) and GSSENCRequest (80877104) are followed by the real StartupMessage.
        if (code !== 80877103 && code !== 80877104) this.untyped = false;
        this.skip = len - 8;
      } else {
        const type = String.fromCharCode(this.header[0]!);
        if (type === "Q" || type === "E") this.requests++;
        this.skip = this.header.readInt32BE(1) - 4;
      }
      this.header = Buffer.alloc(0);
    }
  }
}

export function newCounter(protocol: ProxyProtocol): RequestCounter {
  return protocol === "resp" ? new RespCounter() : new PostgresCounter();
}

/** Starts a proxy on a random free port of 127.0.0.1 in front of `target`. */
export async function startCountingProxy(target: { host: string; port: number }, protocol: ProxyProtocol): Promise<CountingProxy> {
  const counters = new Set<RequestCounter>();
  let closedTotal = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const counter = newCounter(protocol);
    counters.add(counter);
    const upstream = new Socket();
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // Hold what the client sends until the upstream socket is connected.
    client.pause();
    upstream.connect(target.port, target.host, () => client.resume());
    client.on("data", (chunk: Buffer) => {
      counter.feed(chunk);
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.on("data", (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on("drain", () => upstream.resume());
    const end = () => {
      if (counters.delete(counter)) closedTotal += counter.requests;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    count: () => {
      let n = closedTotal;
      for (const c of counters) n += c.requests;
      return n;
    },
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        // Clients that closed their pools are gone already; give a stopping
        // client's last queries a moment before cutting what is left (a peer
        // whose stop() resolves early would otherwise see its connection die).
        server.close(() => resolve());
        const deadline = Date.now() + graceMs;
        const sweep = () => {
          if (sockets.size === 0) return;
          if (Date.now() >= deadline) {
            for (const s of sockets) s.destroy();
            return;
          }
          setTimeout(sweep, 20);
        };
        sweep();
      }),
  };
}
