/**
 * Runs one local gateway (infra/) in its own process, as the managed
 * service it stands in for runs apart from the application: in the
 * contender's process its CPU (JSON, base64, the Postgres text protocol)
 * would be charged to qml. Started with `fork` by contenders/qml-stores.ts;
 * reports its address over IPC, stops on SIGTERM or when the parent goes.
 *
 *   gateway-process.ts upstash <redis url>   → { url, token }
 *   gateway-process.ts neon <database url>   → { host, port, fetchEndpoint }
 */
import { startNeonGateway } from "../infra/neon-gateway.js";
import { startUpstashGateway } from "../infra/upstash-gateway.js";

export type GatewayInfo = { kind: "upstash"; url: string; token: string } | { kind: "neon"; host: string; port: number; fetchEndpoint: string };

const [kind, upstream] = process.argv.slice(2);
if ((kind !== "upstash" && kind !== "neon") || !upstream || !process.send) {
  console.error("usage (forked, with IPC): gateway-process.ts upstash|neon <upstream url>");
  process.exit(1);
}

let close: () => Promise<void>;
let info: GatewayInfo;
if (kind === "upstash") {
  const gw = await startUpstashGateway({ port: 0, redisUrl: upstream });
  close = () => gw.close();
  info = { kind, url: gw.url, token: gw.token };
} else {
  const gw = await startNeonGateway({ port: 0, databaseUrl: upstream });
  close = () => gw.close();
  info = { kind, host: gw.host, port: gw.port, fetchEndpoint: gw.fetchEndpoint };
}
const stop = () => {
  void close()
    .catch(() => {})
    .finally(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("disconnect", stop);
process.send({ type: "ready", info });
