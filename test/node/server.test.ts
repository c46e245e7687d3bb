import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { JobState, silentLogger } from "../../src/index.js";
import { loadEnvConfig, startNodeServer, type NodeServerHandle } from "../../src/adapters/runtime/node/index.js";

describe("node server", () => {
  let handle: NodeServerHandle | undefined;
  afterEach(async () => {
    await handle?.stop(0);
    handle = undefined;
  });

  it("processes the demo jobs and reports them at /api/stats", async () => {
    handle = await startNodeServer({ config: { ...loadEnvConfig({ PORT: "0", QML_POLL_MS: "20" }) }, logger: silentLogger });
    expect((await (await fetch(`${handle.url}/healthz`)).json()).ok).toBe(true);
    expect((await fetch(`${handle.url}/readyz`)).status).toBe(200);
    // Wait until every demo job has left enqueued/processing (retries may stay scheduled).
    for (;;) {
      const st = await (await fetch(`${handle.url}/api/stats`)).json();
      if (st.total === 24 && st.states.enqueued === 0 && st.states.processing === 0) {
        expect(st.states.succeeded).toBeGreaterThan(0);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const jobs = await handle.storage.list({ name: "send_email" });
    expect(jobs.items.every((j) => j.state === JobState.Succeeded)).toBe(true);
  });

  it("npm start runs, serves /api/stats and drains on SIGTERM with exit code 0", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/adapters/runtime/node/main.ts"], {
      env: { ...process.env, PORT: "0", QML_LOG_LEVEL: "info", QML_POLL_MS: "20" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const st = await (await fetch(`${url}/api/stats`)).json();
    expect(st.total).toBe(24);
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
    expect(out).toContain("SIGTERM received: draining");
    for (const line of out.trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
  });

  it("a bad environment stops start-up with a message naming the variable", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/adapters/runtime/node/main.ts"], {
      env: { ...process.env, QML_WORKERS: "lots" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(2);
    expect(err).toMatch(/QML_WORKERS="lots" is invalid/);
  });
});
