/**
 * Local Neon gateway, as a program:
 *
 *   npx tsx infra/neon-gateway.ts [--port 4444] [--database-url postgres://postgres@127.0.0.1:5432/test]
 *
 * Defaults come from QML_NEON_GATEWAY_PORT and DATABASE_URL. Prints the
 * settings the Neon driver needs, then serves until SIGINT/SIGTERM.
 * Programmatic use: `startNeonGateway` (re-exported here from ./neon/gateway.ts).
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startNeonGateway } from "./neon/gateway.js";

export * from "./neon/gateway.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

async function main(): Promise<void> {
  const port = Number(arg("port") ?? process.env.QML_NEON_GATEWAY_PORT ?? 4444);
  const databaseUrl = arg("database-url") ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`[qml] [neon-gateway] bad port ${port}`);
  const gw = await startNeonGateway({ port, databaseUrl });
  console.log(`[qml] [neon-gateway] listening on ${gw.host}:${gw.port} in front of ${databaseUrl.replace(/:[^:@/]+@/, ":***@")}`);
  console.log(`  neon() over HTTP:   neonConfig.fetchEndpoint = "${gw.fetchEndpoint}"`);
  console.log(`  Pool over WebSocket: neonConfig.wsProxy = (host, port) => \`${gw.host}:${gw.port}/v1?address=\${host}:\${port}\``);
  console.log(`                       neonConfig.useSecureWebSocket = false; neonConfig.pipelineConnect = false`);
  console.log(`  qml: new PostgresConfig().withDriver("neon-http").withNeonFetchEndpoint("${gw.fetchEndpoint}")`);
  const stop = async () => {
    await gw.close();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
