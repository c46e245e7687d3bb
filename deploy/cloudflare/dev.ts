/**
 * `npm run dev:cloudflare`: the reference Worker under `wrangler dev`,
 * offline, with no Cloudflare account and nothing else to run: the cron
 * tick, the Queue and the store all local, on the deployed code path.
 *
 *   npx tsx deploy/cloudflare/dev.ts [--storage sqlite|redis|postgres] [--port 8787]
 *
 * - sqlite (default): wrangler dev's local D1 (miniflare), the binding
 *   QML_DB of wrangler.jsonc. Nothing else is started.
 * - redis: the local Upstash gateway in front of the real Redis.
 * - postgres: the local Neon gateway in front of the real PostgreSQL.
 *
 * Environment: QML_STORAGE, PORT, REDIS_URL (default redis://127.0.0.1:6379),
 * DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * QML_DASHBOARD_TOKEN (default: a random one, printed).
 *
 * `wrangler dev` does not fire cron triggers by itself; this script calls
 * its `/__scheduled` endpoint once at start and then every minute, as the
 * platform would. Ctrl-C stops wrangler (and its workerd) and the gateways.
 * Local state (the D1 database, the Queue) lives in a temporary folder
 * removed on exit: each run starts empty.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NeonGateway } from "../../infra/neon-gateway.js";
import type { UpstashGateway } from "../../infra/upstash-gateway.js";

const repo = fileURLToPath(new URL("../../", import.meta.url));

function flag(name: string): string | undefined {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return argv[i + 1];
  return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

async function waitForHttp(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`[qml] wrangler dev exited (code ${child.exitCode})`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`[qml] wrangler dev did not answer ${url} within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  const storage = (flag("storage") ?? process.env.QML_STORAGE ?? "sqlite").toLowerCase();
  if (storage !== "sqlite" && storage !== "redis" && storage !== "postgres")
    throw new Error(`[qml] --storage must be sqlite, redis or postgres; got ${storage}`);
  const port = Number(flag("port") ?? process.env.PORT ?? 8787);
  const token = process.env.QML_DASHBOARD_TOKEN ?? `dev-${crypto.randomUUID()}`;
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

  let upstash: UpstashGateway | undefined;
  let neon: NeonGateway | undefined;
  const vars: Record<string, string> = { QML_STORAGE: storage, QML_DASHBOARD_TOKEN: token };
  // The gateways (and the Redis and PostgreSQL clients they load) only when the store needs one.
  if (storage === "redis") {
    const { startUpstashGateway } = await import("../../infra/upstash-gateway.js");
    upstash = await startUpstashGateway({ port: 0, redisUrl });
    Object.assign(vars, { UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: upstash.token });
  } else if (storage === "postgres") {
    const { startNeonGateway } = await import("../../infra/neon-gateway.js");
    neon = await startNeonGateway({ port: 0, databaseUrl });
    Object.assign(vars, { DATABASE_URL: databaseUrl, QML_NEON_FETCH_ENDPOINT: neon.fetchEndpoint });
  }

  // Local D1, Queue and cache state go to a temporary folder, not into the repository.
  const state = mkdtempSync(join(tmpdir(), "qml-wrangler-dev-"));
  const args = [
    "wrangler",
    "dev",
    "--config",
    "deploy/cloudflare/wrangler.jsonc",
    "--local",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--test-scheduled",
    "--persist-to",
    state,
    "--show-interactive-dev-session=false",
  ];
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  // Its own process group, so that stopping it stops the workerd it starts too.
  const child = spawn("npx", args, {
    cwd: repo,
    stdio: "inherit",
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });

  let stopping = false;
  let cron: ReturnType<typeof setInterval> | undefined;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    if (cron) clearInterval(cron);
    if (child.exitCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    await upstash?.close();
    await neon?.close();
    rmSync(state, { recursive: true, force: true });
    process.exit(code);
  };
  process.once("SIGINT", () => void stop(0));
  process.once("SIGTERM", () => void stop(0));
  child.once("exit", (code) => void stop(code ?? 1));

  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/healthz`, child, 60_000);
  const tick = () => fetch(`${base}/__scheduled?cron=${encodeURIComponent("* * * * *")}`).catch(() => undefined);
  await tick();
  cron = setInterval(tick, 60_000);

  const via: Record<string, string> = {
    sqlite: "sqlite, wrangler dev's local D1 (binding QML_DB)",
    redis: "redis, through the local Upstash gateway",
    postgres: "postgres, through the local Neon gateway",
  };
  console.log(`
[qml] Worker running on ${base} (storage: ${via[storage]})
  dashboard  ${base}/            token: ${token}
  enqueue    curl -X POST ${base}/api/jobs -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' -d '{"name":"send_email","args":["ada@example.com"]}'
  cron tick  curl '${base}/__scheduled?cron=*+*+*+*+*'   (also fired every minute by this script)
`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
