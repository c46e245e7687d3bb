/**
 * One hono app on a Node HTTP server, with WebSockets: what the stock
 * server (node-server.ts) and DashboardServer share.
 *
 * - `@hono/node-ws` routes upgrade requests through the app, and the app
 *   needs node-ws's upgrade helper: the app is bound after both exist.
 * - node-ws rebuilds upgrade URLs on "http://localhost" (no port) unless
 *   told the real origin: without it a page on another localhost port would
 *   pass the WebSocket Origin check. `listen` sets it to the bound address.
 * - `close` ends WebSockets and keep-alive and SSE connections too, which
 *   would otherwise hold `server.close()` open.
 * - node-ws builds its `ws` server with the defaults, which take messages of
 *   up to 100 MiB and buffer them whole; the live feed's clients send a few
 *   bytes, so a frame over LIVE_MAX_MESSAGE_BYTES closes the socket (1009)
 *   as soon as its header announces the length, before any payload is kept.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { createNodeWebSocket, type NodeWebSocketInit } from "@hono/node-ws";
import type { Hono } from "hono";
import type { UpgradeWebSocket } from "hono/ws";
import { ConfigError } from "../../../core/errors.js";
import { LIVE_MAX_MESSAGE_BYTES } from "../../http/live.js";

export interface NodeHttpServer {
  /** For createApp's `upgradeWebSocket`. */
  readonly upgradeWebSocket: UpgradeWebSocket<any, any>;
  /** The app that answers requests and upgrades; set once, before `listen`. */
  bind(app: { fetch: (request: Request, env?: unknown) => Response | Promise<Response> }): void;
  /** Listens; resolves with the bound address and its URL (0.0.0.0 and :: shown as loopback). */
  listen(host: string, port: number, label?: string): Promise<{ address: AddressInfo; origin: string }>;
  close(): Promise<void>;
}

export function nodeHttpServer(): NodeHttpServer {
  let app: { fetch: (request: Request, env?: unknown) => Response | Promise<Response> } | undefined;
  const init: NodeWebSocketInit = { app: { request: (...args: Parameters<Hono["request"]>) => (app as Hono).request(...args) } as unknown as Hono };
  const nodeWs = createNodeWebSocket(init);
  // ws reads `options.maxPayload` at each upgrade (completeUpgrade → setSocket);
  // node-ws takes no ws options, so it is set on the server it built.
  nodeWs.wss.options.maxPayload = LIVE_MAX_MESSAGE_BYTES;
  let server: Server | undefined;
  return {
    upgradeWebSocket: nodeWs.upgradeWebSocket,
    bind(a) {
      app = a;
    },
    async listen(host, port, label = `${host}:${port}`) {
      if (!app) throw new ConfigError("bind the app before listening", { scope: "node" });
      if (server) throw new ConfigError("already listening", { scope: "node" });
      const fetch = app.fetch.bind(app);
      const s = createAdaptorServer({ fetch }) as Server;
      nodeWs.injectWebSocket(s);
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => {
          s.off("listening", onListening);
          reject(new ConfigError(`cannot listen on ${label}: ${e.message}`, { scope: "node", cause: e }));
        };
        const onListening = () => {
          s.off("error", onError);
          resolve();
        };
        s.once("error", onError);
        s.once("listening", onListening);
        s.listen(port, host);
      });
      server = s;
      const address = s.address() as AddressInfo;
      const shown =
        address.address === "0.0.0.0" ? "127.0.0.1" : address.address === "::" ? "[::1]" : address.family === "IPv6" ? `[${address.address}]` : address.address;
      const origin = `http://${shown}:${address.port}`;
      init.baseUrl = origin;
      return { address, origin };
    },
    async close() {
      const s = server;
      if (!s) return;
      server = undefined;
      for (const ws of nodeWs.wss.clients) ws.terminate();
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
  };
}
