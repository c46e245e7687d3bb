/** examples/dashboard_demo.ts starts a server, the dashboard and a producer: the live feed shows jobs succeeding, and it stops cleanly. */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { expect, it } from "vitest";
import WebSocket from "ws";
import type { LiveSnapshot } from "../../src/adapters/http/index.js";

it("examples/dashboard_demo.ts serves a live dashboard with jobs flowing", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", "examples/dashboard_demo.ts"], {
    env: { ...process.env, QML_DASHBOARD_ADDR: "127.0.0.1:0", QML_DEMO_SECONDS: "50" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
  try {
    const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
      const check = () => {
        const u = /dashboard: (\S+)/.exec(out);
        const t = /token: (\S+)/.exec(out);
        if (u && t) resolve({ url: u[1]!, token: t[1]! });
      };
      child.stdout.on("data", check);
      child.once("exit", () => reject(new Error(`demo exited early:\n${out}`)));
    });
    expect((await fetch(`${url}api/jobs`)).status).toBe(401);
    // Wait on the live feed itself for finished jobs: no polling loop here.
    const ws = new WebSocket(url.replace(/^http/, "ws") + "ws", { headers: { Authorization: `Bearer ${token}` } });
    const snap = await new Promise<LiveSnapshot>((resolve, reject) => {
      ws.on("message", (data) => {
        const s = JSON.parse(String(data)) as LiveSnapshot;
        if (s.states.succeeded >= 3 && s.queues.length >= 2) resolve(s);
      });
      ws.once("error", reject);
    });
    ws.close();
    expect(snap.total).toBeGreaterThanOrEqual(3);
    const recurring = (await (await fetch(`${url}api/recurring`, { headers: { Authorization: `Bearer ${token}` } })).json()) as {
      items: Array<{ id: string }>;
    };
    expect(recurring.items.map((d) => d.id)).toEqual(["heartbeat", "nightly-report"]);
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    expect(code).toBe(0);
    expect(out).toMatch(/stopped: \d+ succeeded/);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}, 45_000);
