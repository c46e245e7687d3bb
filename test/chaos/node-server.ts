/**
 * The Node runtime's server (src/adapters/runtime/node/node-server.ts, what
 * `npm start` runs: the job server plus /healthz and /readyz) started in
 * the test's own process on a store the test built, so that the test can
 * put a proxy between them, read its logs and measure its process.
 *
 * No vitest import here.
 */
import { JsonLogger, type Storage, type WorkerRegistry } from "../../src/index.js";
import { loadEnvConfig } from "../../src/adapters/runtime/node/env.js";
import { startNodeServer, type NodeServerHandle } from "../../src/adapters/runtime/node/node-server.js";
import type { ReadinessReport } from "../../src/adapters/runtime/node/readiness.js";
import { freePort } from "../helpers/services.js";

export interface ChaosNodeServer {
  handle: NodeServerHandle;
  /** Log lines (JSON) at warn and above. */
  logs: string[];
  /** GET /readyz: its status (0 when the request itself failed) and report. */
  readyz(): Promise<{ status: number; report?: ReadinessReport }>;
}

export interface ChaosNodeServerOptions {
  serverId: string;
  workers: number;
  pollMs: number;
  leaseMs: number;
  /** More settings (QML_DASHBOARD_TOKEN, QML_LIVE_MAX_CONNECTIONS…), over the ones above. */
  env?: Record<string, string>;
}

export async function startChaosNodeServer(storage: Storage, registry: WorkerRegistry, options: ChaosNodeServerOptions): Promise<ChaosNodeServer> {
  const logs: string[] = [];
  const config = loadEnvConfig({
    QML_STORAGE: "memory",
    PORT: String(await freePort()),
    QML_HOST: "127.0.0.1",
    QML_SERVER_ID: options.serverId,
    QML_WORKERS: String(options.workers),
    QML_POLL_MS: String(options.pollMs),
    QML_LEASE_MS: String(options.leaseMs),
    QML_DEMO: "off",
    QML_SHUTDOWN_TIMEOUT_MS: "2000",
    ...options.env,
  });
  const handle = await startNodeServer({
    config,
    storage,
    registry,
    logger: new JsonLogger("warn", {}, (line) => {
      // Keep the tail only: a long run under faults must not fill memory with its own logs.
      logs.push(line);
      if (logs.length > 2000) logs.splice(0, 1000);
    }),
    maxStartRetryMs: 1000,
  });
  return {
    handle,
    logs,
    async readyz() {
      try {
        const res = await fetch(`${handle.url}/readyz`, { signal: AbortSignal.timeout(5000) });
        return { status: res.status, report: (await res.json()) as ReadinessReport };
      } catch {
        return { status: 0 };
      }
    },
  };
}
