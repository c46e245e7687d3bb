/**
 * The Upstash REST gateway: programmatic and command line.
 *
 *   npx tsx infra/upstash-gateway.ts [--port 8079] [--host 127.0.0.1]
 *                                     [--redis-url redis://127.0.0.1:6379] [--token <token>]
 *
 * Environment instead of flags: UPSTASH_GATEWAY_PORT, UPSTASH_GATEWAY_HOST,
 * REDIS_URL, UPSTASH_REDIS_REST_TOKEN (a random token is made and printed
 * when none is given). Then point qml (or any @upstash/redis client) at it:
 *
 *   UPSTASH_REDIS_REST_URL=http://127.0.0.1:8079 UPSTASH_REDIS_REST_TOKEN=<token>
 *
 * From code: `startUpstashGateway({ port: 0, redisUrl, token })` resolves to
 * `{ url, token, close() }` (see infra/upstash/gateway.ts).
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startUpstashGateway } from "./upstash/gateway.js";

export {
  startUpstashGateway,
  type GatewayFault,
  type GatewayPath,
  type GatewayRequest,
  type UpstashGateway,
  type UpstashGatewayOptions,
} from "./upstash/gateway.js";

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log("usage: npx tsx infra/upstash-gateway.ts [--port 8079] [--host 127.0.0.1] [--redis-url redis://127.0.0.1:6379] [--token <token>]");
    return;
  }
  const port = Number(flag(argv, "port") ?? process.env.UPSTASH_GATEWAY_PORT ?? 8079);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`[qml] bad port ${port}`);
  const gateway = await startUpstashGateway({
    port,
    host: flag(argv, "host") ?? process.env.UPSTASH_GATEWAY_HOST ?? "127.0.0.1",
    redisUrl: flag(argv, "redis-url") ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    ...((flag(argv, "token") ?? process.env.UPSTASH_REDIS_REST_TOKEN) ? { token: (flag(argv, "token") ?? process.env.UPSTASH_REDIS_REST_TOKEN)! } : {}),
  });
  console.log(`[qml] Upstash REST gateway listening on ${gateway.url}`);
  console.log(`UPSTASH_REDIS_REST_URL=${gateway.url}`);
  console.log(`UPSTASH_REDIS_REST_TOKEN=${gateway.token}`);
  const stop = () => {
    void gateway.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
