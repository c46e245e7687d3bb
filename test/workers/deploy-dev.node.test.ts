/**
 * `npm run dev:cloudflare` as a user runs it, with its default store: the
 * reference Worker under `wrangler dev`, offline, on wrangler's local D1,
 * with no gateway, no Redis and no PostgreSQL. A job enqueued through the
 * API is run by the local Queue consumer, and the cron endpoint answers;
 * SIGTERM stops wrangler and its workerd with the script.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const TOKEN = "dev-test-token-0123456789abcdef";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("npm run dev:cloudflare (D1, the default)", () => {
  let child: ChildProcessWithoutNullStreams;
  let exited: Promise<number | null>;
  let output = "";
  let base: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const env: NodeJS.ProcessEnv = { ...process.env, QML_DASHBOARD_TOKEN: TOKEN, NO_COLOR: "1" };
    delete env.QML_STORAGE;
    // node itself (not npx or tsx's runner) so that the pid is the script's and SIGTERM reaches its handler.
    child = spawn(process.execPath, ["--import", "tsx", "deploy/cloudflare/dev.ts", "--port", String(port)], { cwd: repo, env });
    exited = new Promise((resolve) => child.once("exit", resolve));
    child.stdout.setEncoding("utf8").on("data", (s: string) => (output += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (output += s));
    await vi.waitUntil(
      () => {
        if (child.exitCode !== null) throw new Error(`dev.ts exited (${child.exitCode}):\n${output}`);
        return output.includes("[qml] Worker running on");
      },
      { timeout: 55_000, interval: 100 },
    );
  }, 60_000);

  afterAll(async () => {
    if (!child || child.exitCode !== null) return;
    child.kill("SIGTERM");
    const code = await Promise.race([exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 20_000))]);
    if (code === "timeout") child.kill("SIGKILL");
  }, 30_000);

  it("runs on wrangler dev's local D1, with no gateway", () => {
    expect(output).toContain("(storage: sqlite, wrangler dev's local D1 (binding QML_DB))");
    expect(output).toMatch(/env\.QML_DB \(qml\)\s+D1 Database\s+local/);
    // The gateways' addresses would be among the Worker's vars.
    expect(output).not.toMatch(/UPSTASH_REDIS_REST_URL|DATABASE_URL|QML_NEON_FETCH_ENDPOINT/);
  });

  it("runs a job enqueued through the API, and answers the cron endpoint", async () => {
    const headers = { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" };
    const created = await fetch(`${base}/api/jobs`, { method: "POST", headers, body: JSON.stringify({ name: "send_email", args: ["ada@example.com"] }) });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const job = await vi.waitUntil(
      async () => {
        const r = (await (await fetch(`${base}/api/jobs/${id}`, { headers })).json()) as { job: { state: string; result?: unknown } };
        return r.job.state === "succeeded" ? r.job : undefined;
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(job.result).toEqual({ delivered: true });
    expect((await fetch(`${base}/__scheduled?cron=${encodeURIComponent("* * * * *")}`)).status).toBe(200);
  });

  it("stops wrangler and its workerd on SIGTERM", async () => {
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
