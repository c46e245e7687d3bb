/**
 * DashboardServer: the dashboard on Node, over `@hono/node-server`, with
 * live updates over `@hono/node-ws`.
 *
 *   const dashboard = new DashboardServer(storage, { auth: { adminTokens: [token] } });
 *   const { url } = await dashboard.start("0.0.0.0:8080");
 *
 * Closed by default: without `auth`, tokens come from QML_DASHBOARD_TOKEN /
 * QML_DASHBOARD_READ_TOKEN (comma-separated; the table in
 * core/config/env.ts), and failing those a random admin token is generated
 * for this process and logged once with the login URL (as Jupyter does). `{ open: true }` binds
 * loopback only: any other host is refused with a ConfigError.
 */
import type { Hono } from "hono";
import { readEnv } from "../../../core/config/env.js";
import { ConfigError } from "../../../core/errors.js";
import { JsonLogger, type Logger } from "../../../core/logger.js";
import type { Storage } from "../../../core/storage.js";
import { createApp, type AppEnv, type AppOptions } from "../../http/app.js";
import { base64url, isLoopbackHost, isOpenAuth, type AuthOptions } from "../../http/auth.js";
import { throttleOption } from "../../http/throttle.js";
import { nodeHttpServer } from "./http-server.js";

const HTTP = { scope: "http" };

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
  private readonly http = nodeHttpServer();
  private started = false;
  private generatedToken: string | undefined;

  constructor(
    readonly storage: Storage,
    options: DashboardServerOptions = {},
  ) {
    this.logger = options.logger ?? new JsonLogger("info", { component: "dashboard" });
    this.auth = options.auth ?? this.authFromEnv();
    this.basePath = (options.basePath ?? "").replace(/\/$/, "");
    this.app = createApp({ ...options, storage, auth: this.auth, upgradeWebSocket: this.http.upgradeWebSocket, logger: this.logger });
    this.http.bind(this.app);
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
    if (this.started) throw new ConfigError("the dashboard server is already started", HTTP);
    const { host, port } = parseAddress(address);
    if (isOpenAuth(this.auth) && !isLoopbackHost(host.includes(":") ? `[${host}]` : host)) {
      throw new ConfigError(
        `open access (auth: { open: true }) binds loopback only; refusing ${JSON.stringify(host)}. Use 127.0.0.1, or configure tokens`,
        HTTP,
      );
    }
    const bound = await this.http.listen(host, port, address);
    this.started = true;
    const url = `${bound.origin}${this.basePath}/`;
    if (this.generatedToken) {
      this.logger.warn("dashboard: no token configured; generated an admin token for this process (set QML_DASHBOARD_TOKEN to choose one)", {
        login: `${url}login`,
        token: this.generatedToken,
      });
    }
    this.logger.info("dashboard listening", { url });
    return { host: bound.address.address, port: bound.address.port, url };
  }

  /** Closes live connections and the listener. */
  async stop(): Promise<void> {
    this.started = false;
    await this.http.close();
  }

  private authFromEnv(): AuthOptions {
    const env = readEnv(process.env, "node");
    const adminTokens = env.dashboardTokens ?? [];
    const readTokens = env.dashboardReadTokens ?? [];
    const secret = { ...(env.sessionSecret !== undefined ? { sessionSecret: env.sessionSecret } : {}), ...throttleOption(env.loginThrottle) };
    if (adminTokens.length + readTokens.length > 0) return { adminTokens, readTokens, ...secret };
    this.generatedToken = base64url(crypto.getRandomValues(new Uint8Array(24)));
    return { adminTokens: [this.generatedToken] };
  }
}

function parseAddress(address: string): { host: string; port: number } {
  if (typeof address !== "string") throw new ConfigError("address must be a string like 127.0.0.1:8080", HTTP);
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
    if (!m) throw new ConfigError(`address must look like 127.0.0.1:8080 or [::1]:8080; got ${JSON.stringify(address)}`, HTTP);
    host = m[1] === "" ? "0.0.0.0" : m[1]!;
    portText = m[2]!;
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`port must be 0-65535; got ${portText}`, HTTP);
  return { host, port };
}
