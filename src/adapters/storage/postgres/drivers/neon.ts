/**
 * Drivers over `@neondatabase/serverless`: its Pool (Postgres over a
 * WebSocket, with sessions) and `neon()` (one statement per HTTPS request).
 *
 * Both run in workerd, Lambda and Node: no `pg`, no `node:*` here. On Node
 * 20, which has no global WebSocket, pass `ws` as `webSocketConstructor` or
 * let the Pool driver load it at first use.
 *
 * Settings are applied per driver where Neon allows it (Pool clients), so two
 * drivers pointing at different proxies coexist in one process. Neon keeps
 * the HTTP endpoint global only; the HTTP driver registers its endpoint for
 * its own host:port and leaves every other host to the previous setting.
 */
import { Client, Pool, neon, neonConfig } from "@neondatabase/serverless";
import type { SqlDriver, SqlResult } from "../driver.js";
import { listenWith, type ListeningClient } from "./listen.js";
import { PoolDriver, type QueryablePool } from "./pool-driver.js";
import { nodeRequire } from "../../node-require.js";

/** Per-connection WebSocket settings (see Neon's CONFIG.md). */
export interface NeonSocketOptions {
  /** WebSocket class; default: the global one, else the `ws` package (Node 20). */
  webSocketConstructor?: unknown;
  /** `host:port/path` of a WebSocket proxy, or a function of the database host and port. */
  wsProxy?: string | ((host: string, port: number | string) => string);
  /** `wss:` (default true) or `ws:` to the proxy. */
  useSecureWebSocket?: boolean;
  /** Send password auth with the startup message (default Neon's: only on *.neon.tech). */
  pipelineConnect?: "password" | false;
  pipelineTLS?: boolean;
  forceDisablePgSSL?: boolean;
  /**
   * Batch writes into one frame per tick (Neon's default: on). Off on Node:
   * the batch goes out from a setTimeout(0), which Node runs after at least
   * 1 ms, so each query waits that long (docs/decisions/neon-coalesce-writes.md).
   */
  coalesceWrites?: boolean;
}

export interface NeonPoolDriverOptions {
  connectionString: string;
  max?: number;
  min?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  queryTimeoutMs?: number;
  socket?: NeonSocketOptions;
}

function resolveWebSocket(given: unknown): unknown {
  if (given) return given;
  if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === "function") return undefined;
  // Node 20 has no WebSocket: `ws`, loaded the way that keeps it out of Worker bundles.
  const mod = nodeRequire("ws", "postgres") as { default?: unknown; WebSocket?: unknown };
  return mod.WebSocket ?? mod.default ?? mod;
}

type SocketConfig = Client["neonConfig"];

function applySocketOptions(target: SocketConfig, options: NeonSocketOptions, webSocket: unknown): void {
  const t = target as unknown as Record<string, unknown>;
  if (webSocket) t.webSocketConstructor = webSocket;
  for (const key of ["wsProxy", "useSecureWebSocket", "pipelineConnect", "pipelineTLS", "forceDisablePgSSL", "coalesceWrites"] as const) {
    if (options[key] !== undefined) t[key] = options[key];
  }
}

export class NeonPoolDriver extends PoolDriver implements SqlDriver {
  readonly name = "neon-ws";

  private constructor(
    override readonly pool: Pool,
    private readonly ClientClass: typeof Client,
    private readonly options: NeonPoolDriverOptions,
  ) {
    super(pool as unknown as QueryablePool);
    pool.on("error", () => {});
  }

  static async create(options: NeonPoolDriverOptions): Promise<NeonPoolDriver> {
    const socket = options.socket ?? {};
    const webSocket = resolveWebSocket(socket.webSocketConstructor);
    // Neon's Pool builds its clients from `pool.Client`; a subclass carries
    // this driver's socket settings instead of the process-wide neonConfig.
    class ConfiguredClient extends Client {
      constructor(config?: ConstructorParameters<typeof Client>[0]) {
        super(config);
        applySocketOptions(this.neonConfig, socket, webSocket);
      }
    }
    const pool = new Pool({
      connectionString: options.connectionString,
      max: options.max ?? 10,
      min: options.min ?? 0,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: options.idleTimeoutMs ?? 10_000,
      ...(options.queryTimeoutMs ? { query_timeout: options.queryTimeoutMs } : {}),
    });
    pool.Client = ConfiguredClient;
    return new NeonPoolDriver(pool, ConfiguredClient, options);
  }

  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
    const ClientClass = this.ClientClass;
    return listenWith(() => new ClientClass({ connectionString: this.options.connectionString }) as unknown as ListeningClient, channel, onPayload);
  }
}

// ---------------------------------------------------------------------------

export interface NeonHttpDriverOptions {
  connectionString: string;
  /**
   * Where `/sql` requests go for this connection string's host, e.g. a local
   * gateway's `http://127.0.0.1:4444/sql`. Default: Neon's own endpoint.
   */
  fetchEndpoint?: string;
  /** Abort a request after this many ms (default 30000). */
  queryTimeoutMs?: number;
}

type EndpointFn = (host: string, port: number | string, options?: { jwtAuth?: boolean }) => string;
const endpoints = new Map<string, string>();
let endpointHookInstalled = false;

function registerEndpoint(connectionString: string, endpoint: string): void {
  const url = new URL(connectionString.replace(/^postgres(ql)?:/, "http:"));
  endpoints.set(`${url.hostname}:${url.port || "5432"}`, endpoint);
  if (endpointHookInstalled) return;
  endpointHookInstalled = true;
  const previous = neonConfig.fetchEndpoint as string | EndpointFn;
  neonConfig.fetchEndpoint = (host, port, options) => {
    const own = endpoints.get(`${host}:${port || "5432"}`);
    if (own) return own;
    return typeof previous === "function" ? previous(host, port, options) : previous;
  };
}

interface FullResult {
  rows: unknown[];
  rowCount: number | null;
}

export class NeonHttpDriver implements SqlDriver {
  readonly name = "neon-http";
  private readonly sql: ReturnType<typeof neon<false, true>>;

  constructor(private readonly options: NeonHttpDriverOptions) {
    if (options.fetchEndpoint) registerEndpoint(options.connectionString, options.fetchEndpoint);
    this.sql = neon<false, true>(options.connectionString, { fullResults: true, arrayMode: false });
  }

  async query<R = Record<string, unknown>>(text: string, params: readonly unknown[] = []): Promise<SqlResult<R>> {
    const signal = AbortSignal.timeout(this.options.queryTimeoutMs ?? 30_000);
    const res = (await this.sql.query(text, params as unknown[], { fetchOptions: { signal } })) as unknown as FullResult;
    return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
  }

  async close(): Promise<void> {}
}

export function createNeonPoolDriver(options: NeonPoolDriverOptions): Promise<NeonPoolDriver> {
  return NeonPoolDriver.create(options);
}

export function createNeonHttpDriver(options: NeonHttpDriverOptions): NeonHttpDriver {
  return new NeonHttpDriver(options);
}
