/**
 * A TCP proxy in front of a real service, so a test can take the service
 * away from one client (and give it back) without touching the server that
 * every other test file shares, or watch and delay what passes.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface TcpTap {
  /** Sees each chunk on its way to the service (it is forwarded as is). */
  toService?(data: Buffer): void;
  /** Decides when each chunk from the service reaches the client: call `forward` (later, to delay it). */
  toClient?(data: Buffer, forward: () => void): void;
}

export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    private readonly tap: TcpTap = {},
  ) {}

  /** Listens (on the same port as before, after a `down()`). */
  async up(): Promise<number> {
    if (this.server) return this.port;
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      const { toService, toClient } = this.tap;
      if (toService) client.on("data", (d: Buffer) => toService(d));
      client.pipe(upstream);
      if (toClient) upstream.on("data", (d: Buffer) => toClient(d, () => void client.write(d)));
      else upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    const addr = server.address();
    if (typeof addr === "object" && addr) this.port = addr.port;
    return this.port;
  }

  /** Stops listening and cuts every open connection: the service is gone. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
