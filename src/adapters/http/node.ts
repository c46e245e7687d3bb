/**
 * DashboardServer: the dashboard on Node, over `@hono/node-server`, with
 * live updates over `@hono/node-ws`.
 *
 *   const dashboard = new DashboardServer(storage, { auth: { adminTokens: [token] } });
 *   const { url } = await dashboard.start("0.0.0.0:8080");
 *
 * Closed by default: without `auth`, tokens come from
 * QML_DASHBOARD_ADMIN_TOKENS / QML_DASHBOARD_READ_TOKENS (comma-separated),
 * and failing those a random admin token is generated for this process and
 * logged once with the login URL (as Jupyter does). `{ open: true }` binds
 * loopback only: any other host is refused with a ConfigError.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { createNodeWebSocket, type NodeWebSocket, type NodeWebSocketInit } from "@hono/node-ws";
import type { Hono } from "hono";
import { ConfigError } from "../../core/errors.js";
import { JsonLogger, type Logger } from "../../core/logger.js";
import type { Storage } from "../../core/storage.js";
import { createApp, type AppEnv, type AppOptions } from "./app.js";
import { base64url, isLoopbackHost, isOpenAuth, type AuthOptions } from "./auth.js";

export interface DashboardServerOptions extends Omit<AppOptions, "storage" | "auth" | "upgradeWebSocket"> {
  /** Default: tokens from the environment, else one generated and logged. */
  auth?: AuthOptions;
}

export interface DashboardAddress {
  host: string;
  port: number;
  /** Base URL of the dashboard, e.g. http://127.0.0.1:8080/ (with the basePath). */
  url: string;
}

export class DashboardServer {
  readonly app: Hono<AppEnv>;
  private readonly auth: AuthOptions;
  private readonly logger: Logger;
  private readonly basePath: string;
  private readonly nodeWs: NodeWebSocket;
  /** node-ws reads `baseUrl` on every upgrade; it is set to the bound address once listening. */
  private readonly wsInit: NodeWebSocketInit;
  private server: Server | null = null;
  private generatedToken: string | undefined;

  constructor(
    readonly storage: Storage,
    options: DashboardServerOptions = {},
  ) {
    this.logger = options.logger ?? new JsonLogger("info", { component: "dashboard" });
    this.auth = options.auth ?? this.authFromEnv();
    this.basePath = (options.basePath ?? "").replace(/\/$/, "");
    // node-ws needs the app to route upgrade requests, and the app needs
    // node-ws's upgrade helper: the late-bound reference breaks the cycle.
    let app: Hono<AppEnv> | undefined;
    this.wsInit = { app: { request: (...args: Parameters<Hono["request"]>) => app!.request(...args) } as unknown as Hono };
    this.nodeWs = createNodeWebSocket(this.wsInit);
    app = createApp({ ...options, storage, auth: this.auth, upgradeWebSocket: this.nodeWs.upgradeWebSocket, logger: this.logger });
    this.app = app;
  }

  /** The admin token generated for this process, when no auth was configured. */
  get token(): string | undefined {
    return this.generatedToken;
  }

  /**
   * Listens on "host:port" ("[::1]:0", "0.0.0.0:8080", or a bare port on
   * 127.0.0.1). Port 0 picks a free port. Resolves with the bound address.
   */
  async start(address: string = "127.0.0.1:8080"): Promise<DashboardAddress> {
    if (this.server) throw new ConfigError("[qml] [http] the dashboard server is already started");
    const { host, port } = parseAddress(address);
    if (isOpenAuth(this.auth) && !isLoopbackHost(host.includes(":") ? `[${host}]` : host)) {
      throw new ConfigError(
        `[qml] [http] open access (auth: { open: true }) binds loopback only; refusing ${JSON.stringify(host)}. Use 127.0.0.1, or configure tokens`,
      );
    }
    const server = createAdaptorServer({ fetch: this.app.fetch }) as Server;
    this.nodeWs.injectWebSocket(server);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => {
        server.off("listening", onListening);
        reject(new ConfigError(`[qml] [http] cannot listen on ${address}: ${e.message}`));
      };
      const onListening = () => {
        server.off("error", onError);
        resolve();
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen(port, host);
    });
    this.server = server;
    const bound = server.address() as AddressInfo;
    const shownHost = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
    const urlHost = bound.address === "0.0.0.0" ? "127.0.0.1" : bound.address === "::" ? "[::1]" : shownHost;
    const url = `http://${urlHost}:${bound.port}${this.basePath}/`;
    // Otherwise node-ws builds upgrade URLs on "http://localhost" (no port),
    // a name an Origin check would accept from any local page on port 80.
    this.wsInit.baseUrl = `http://${urlHost}:${bound.port}`;
    if (this.generatedToken) {
      this.logger.warn("dashboard: no token configured; generated an admin token for this process (set QML_DASHBOARD_ADMIN_TOKENS to choose one)", {
        login: `${url}login`,
        token: this.generatedToken,
      });
    }
    this.logger.info("dashboard listening", { url });
    return { host: bound.address, port: bound.port, url };
  }

  /** Closes live connections and the listener. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const ws of this.nodeWs.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Keep-alive and SSE connections would hold close() open.
      server.closeAllConnections();
    });
  }

  private authFromEnv(): AuthOptions {
    const list = (v: string | undefined) =>
      (v ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    const adminTokens = list(process.env.QML_DASHBOARD_ADMIN_TOKENS);
    const readTokens = list(process.env.QML_DASHBOARD_READ_TOKENS);
    if (adminTokens.length + readTokens.length > 0) return { adminTokens, readTokens };
    this.generatedToken = base64url(crypto.getRandomValues(new Uint8Array(24)));
    return { adminTokens: [this.generatedToken] };
  }
}

function parseAddress(address: string): { host: string; port: number } {
  if (typeof address !== "string") throw new ConfigError("[qml] [http] address must be a string like 127.0.0.1:8080");
  let host = "127.0.0.1";
  let portText: string;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(address);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (/^\d+$/.test(address)) {
    portText = address;
  } else {
    const m = /^([A-Za-z0-9.-]*):(\d+)$/.exec(address);
    if (!m) throw new ConfigError(`[qml] [http] address must look like 127.0.0.1:8080 or [::1]:8080; got ${JSON.stringify(address)}`);
    host = m[1] === "" ? "0.0.0.0" : m[1]!;
    portText = m[2]!;
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`[qml] [http] port must be 0-65535; got ${portText}`);
  return { host, port };
}
