/** Issue 22: the stock Node server takes the live limits and the proxy trust from the environment. */
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { silentLogger } from "../../src/index.js";
import { loadEnvConfig, startNodeServer, type NodeServerHandle } from "../../src/adapters/runtime/node/index.js";
import { ADMIN } from "./helpers.js";

let handle: NodeServerHandle | undefined;
afterEach(async () => {
  await handle?.stop(0);
  handle = undefined;
});

function open(url: string): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${ADMIN}` } });
    ws.once("message", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", reject);
  });
}

describe("QML_LIVE_MAX_PER_SESSION, QML_TRUST_FORWARDED_PROTO", () => {
  it("caps a session's live sockets and trusts the proxy's scheme when told", async () => {
    handle = await startNodeServer({
      config: loadEnvConfig({
        QML_STORAGE: "memory",
        QML_DASHBOARD_TOKEN: ADMIN,
        QML_HOST: "127.0.0.1",
        PORT: "0",
        QML_DEMO: "off",
        QML_LIVE_MAX_PER_SESSION: "1",
        QML_TRUST_FORWARDED_PROTO: "true",
      }),
      logger: silentLogger,
    });
    const url = `${handle.url.replace("http", "ws")}/ws`;
    const first = await open(url);
    expect(typeof first).toBe("object");
    expect(await open(url)).toBe(429);
    (first as WebSocket).close();

    const res = await fetch(`${handle.url}/api/stats`, { headers: { Authorization: `Bearer ${ADMIN}`, "X-Forwarded-Proto": "https" } });
    expect(res.headers.get("strict-transport-security")).toBe("max-age=31536000");
  });

  it("refuses values out of bounds, naming the variable", () => {
    expect(() => loadEnvConfig({ QML_LIVE_MAX_CONNECTIONS: "0" })).toThrow(/QML_LIVE_MAX_CONNECTIONS/);
    expect(() => loadEnvConfig({ QML_TRUST_FORWARDED_PROTO: "yes" })).toThrow(/QML_TRUST_FORWARDED_PROTO/);
    expect(loadEnvConfig({}).trustForwardedProto).toBe(false);
  });
});
