/**
 * A TCP proxy that can black-hole its connections: a network partition as
 * the client sees it, not a refused or reset connection.
 *
 * While the hole is open, every connection stays open, and nothing passes
 * in either direction: bytes, a FIN (end) and a reset (error) from either
 * side are held back, and new connections are accepted but not connected
 * upstream. No side learns anything, as when packets are dropped on the
 * way. `heal()` then delivers what was held, in order, as TCP's
 * retransmissions deliver it once the route comes back (a 10 s partition
 * is within every stack's retransmission limit, so the connection
 * survives); a client that gave up and closed its socket meanwhile has its
 * close delivered after its bytes.
 *
 * Unlike test/helpers/tcp-proxy.ts (which takes the service away: a
 * refused connection, an immediate error), a client in front of this proxy
 * only finds out by its own timeouts.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface BlackholeProxy {
  readonly port: number;
  /** Whether the hole is open now. */
  readonly holed: boolean;
  /** Client connections accepted so far / open now. */
  readonly accepted: number;
  readonly open: number;
  /** Opens the hole: nothing passes from now on. */
  blackhole(): void;
  /** Closes it: what was held is delivered, and forwarding resumes. */
  heal(): void;
  close(): Promise<void>;
}

type Held = { kind: "data"; data: Buffer } | { kind: "end" } | { kind: "destroy" };

/** One direction of one connection: writes to `to`, or holds while the hole is open. */
class Pipe {
  private readonly held: Held[] = [];
  constructor(
    private readonly to: () => Socket | undefined,
    private readonly isHoled: () => boolean,
  ) {}

  push(h: Held): void {
    const to = this.to();
    if (this.isHoled() || !to || this.held.length > 0) {
      this.held.push(h);
      return;
    }
    this.apply(to, h);
  }

  flush(): void {
    const to = this.to();
    if (!to) return;
    while (this.held.length > 0 && !this.isHoled()) this.apply(to, this.held.shift()!);
  }

  private apply(to: Socket, h: Held): void {
    if (to.destroyed) return;
    if (h.kind === "data") to.write(h.data);
    else if (h.kind === "end") to.end();
    else to.destroy();
  }
}

export async function startBlackholeProxy(targetHost: string, targetPort: number): Promise<BlackholeProxy> {
  let holed = false;
  let accepted = 0;
  const pairs = new Set<{ connectUpstream(): void; flush(): void; destroy(): void; readonly gone: boolean }>();
  const isHoled = () => holed;

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    let upstream: Socket | undefined;
    const toUpstream = new Pipe(() => upstream, isHoled);
    const toClient = new Pipe(() => client, isHoled);
    const pair = {
      connectUpstream() {
        if (upstream || client.destroyed) return;
        upstream = connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
        upstream.on("data", (d: Buffer) => toClient.push({ kind: "data", data: d }));
        upstream.on("end", () => toClient.push({ kind: "end" }));
        upstream.on("error", () => toClient.push({ kind: "destroy" }));
        upstream.on("close", () => toClient.push({ kind: "destroy" }));
        toUpstream.flush();
      },
      flush() {
        if (!upstream) pair.connectUpstream();
        toUpstream.flush();
        toClient.flush();
      },
      destroy() {
        client.destroy();
        upstream?.destroy();
      },
      get gone() {
        return client.destroyed;
      },
    };
    pairs.add(pair);
    client.on("data", (d: Buffer) => toUpstream.push({ kind: "data", data: d }));
    client.on("end", () => toUpstream.push({ kind: "end" }));
    client.on("error", () => toUpstream.push({ kind: "destroy" }));
    client.on("close", () => {
      toUpstream.push({ kind: "destroy" });
      if (!holed) pairs.delete(pair);
    });
    if (!holed) pair.connectUpstream();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    port,
    get holed() {
      return holed;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    blackhole() {
      holed = true;
    },
    heal() {
      holed = false;
      for (const p of [...pairs]) {
        p.flush();
        if (p.gone) pairs.delete(p);
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) p.destroy();
        pairs.clear();
        server.close(() => resolve());
      }),
  };
}
