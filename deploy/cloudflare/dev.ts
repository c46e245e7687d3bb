/**
 * `npm run dev:cloudflare`: the reference Worker under `wrangler dev`,
 * offline, against the local Upstash and Neon gateways in front of the real
 * Redis and PostgreSQL, so the code path is the deployed one (REST and HTTP
 * drivers, the Queue, the cron tick) with no Cloudflare account.
 *
 *   npx tsx deploy/cloudflare/dev.ts [--storage redis|postgres] [--port 8787]
 *
 * Environment: QML_STORAGE, PORT, REDIS_URL (default redis://127.0.0.1:6379),
 * DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * QML_DASHBOARD_TOKEN (default: a random one, printed).
 *
 * `wrangler dev` does not fire cron triggers by itself; this script calls
 * its `/__scheduled` endpoint once at start and then every minute, as the
 * platform would. Ctrl-C stops wrangler (and its workerd) and the gateways.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";

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
  const storage = (flag("storage") ?? process.env.QML_STORAGE ?? "redis").toLowerCase();
  if (storage !== "redis" && storage !== "postgres") throw new Error(`[qml] --storage must be redis or postgres; got ${storage}`);
  const port = Number(flag("port") ?? process.env.PORT ?? 8787);
  const token = process.env.QML_DASHBOARD_TOKEN ?? `dev-${crypto.randomUUID()}`;
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

  let upstash: UpstashGateway | undefined;
  let neon: NeonGateway | undefined;
  const vars: Record<string, string> = { QML_STORAGE: storage, QML_DASHBOARD_TOKEN: token };
  if (storage === "redis") {
    upstash = await startUpstashGateway({ port: 0, redisUrl });
    Object.assign(vars, { UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: upstash.token });
  } else {
    neon = await startNeonGateway({ port: 0, databaseUrl });
    Object.assign(vars, { DATABASE_URL: databaseUrl, QML_NEON_FETCH_ENDPOINT: neon.fetchEndpoint });
  }

  // Local Queue and cache state goes to a temporary folder, not into the repository.
  const state = mkdtempSync(join(tmpdir(), "qml-wrangler-dev-"));
  const args = ["wrangler", "dev", "--config", "deploy/cloudflare/wrangler.jsonc", "--local", "--ip", "127.0.0.1", "--port", String(port), "--test-scheduled", "--persist-to", state, "--show-interactive-dev-session=false"];
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

  console.log(`
[qml] Worker running on ${base} (storage: ${storage}, through the local ${storage === "redis" ? "Upstash" : "Neon"} gateway)
  dashboard  ${base}/            token: ${token}
  enqueue    curl -X POST ${base}/api/jobs -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' -d '{"name":"send_email","args":["ada@example.com"]}'
  cron tick  curl '${base}/__scheduled?cron=*+*+*+*+*'   (also fired every minute by this script)
`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
