import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ConfigError, Job, JobState, Storage, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { loadEnvConfig, startNodeServer, type NodeServerHandle } from "../../src/adapters/runtime/node/index.js";

/** Each server its own SQLite file (the default store), never the repository's ./data/qml.db. */
const scratch = mkdtempSync(join(tmpdir(), "qml-server-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const freshFile = () => ({ QML_SQLITE_PATH: join(scratch, `${crypto.randomUUID()}.db`) });

const TOKEN = "server-test-admin-token-0123";
const READ_TOKEN = "server-test-read-token-0123";
const FIXTURE = "test/node/fixtures/shutdown-workers.mjs";

describe("node server", () => {
  let handle: NodeServerHandle | undefined;
  afterEach(async () => {
    await handle?.stop(0);
    handle = undefined;
  });

  it("processes the demo jobs and reports them at /api/stats", async () => {
    handle = await startNodeServer({ config: { ...loadEnvConfig({ ...freshFile(), PORT: "0", QML_POLL_MS: "20" }) }, logger: silentLogger });
    expect(handle.storage.kind).toBe("sqlite");
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

  it("on the default SQLite file, a restart finds the jobs of the last run and seeds no demo job twice", async () => {
    const file = freshFile();
    const logs: Array<{ msg: string; fields: Record<string, unknown> }> = [];
    const logger = { ...silentLogger, info: (msg: string, fields: Record<string, unknown> = {}) => void logs.push({ msg, fields }), child: () => logger };
    handle = await startNodeServer({ config: loadEnvConfig({ ...file, PORT: "0", QML_POLL_MS: "20" }), logger });
    await handle.started;
    const own = await handle.storage.enqueue(new Job("send_email", ["kept@example.com"], { delay: 3_600_000 }));
    await handle.stop();
    handle = await startNodeServer({ config: loadEnvConfig({ ...file, PORT: "0", QML_POLL_MS: "20" }), logger });
    await handle.started;
    expect((await handle.storage.get(own))!.state).toBe(JobState.Scheduled);
    expect((await handle.storage.stats()).total).toBe(25);
    expect(logs.filter((l) => l.msg === "enqueued demo jobs").map((l) => l.fields)).toEqual([
      { count: 24, alreadyThere: 0 },
      { count: 0, alreadyThere: 24 },
    ]);
  });

  it("npm start runs, serves /api/stats and drains on SIGTERM with exit code 0", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/adapters/runtime/node/main.ts"], {
      env: { ...process.env, ...freshFile(), PORT: "0", QML_LOG_LEVEL: "info", QML_POLL_MS: "20" },
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
      env: { ...process.env, ...freshFile(), QML_WORKERS: "lots" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(2);
    expect(err).toMatch(/QML_WORKERS="lots" is invalid/);
  });

  it("with tokens, the dashboard and its API need one (reads with either, actions with the admin one); the probes need none", async () => {
    const config = loadEnvConfig({
      ...freshFile(),
      PORT: "0",
      QML_HOST: "127.0.0.1",
      QML_DASHBOARD_TOKEN: TOKEN,
      QML_DASHBOARD_READ_TOKEN: READ_TOKEN,
      QML_DEMO: "off",
    });
    handle = await startNodeServer({ config, logger: silentLogger });
    expect(handle.dashboard).toBe("token");
    await handle.started;
    expect((await fetch(`${handle.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${handle.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${handle.url}/api/stats`)).status).toBe(401);
    expect((await fetch(`${handle.url}/api/stats`, { headers: { Authorization: `Bearer ${READ_TOKEN}` } })).status).toBe(200);
    const enqueue = (token: string) =>
      fetch(`${handle!.url}/api/jobs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "send_email", args: ["a@b.c"] }),
      });
    expect((await enqueue(READ_TOKEN)).status).toBe(403);
    // No workers here (demo off): a producer for other processes' workers, any name goes.
    expect((await enqueue(TOKEN)).status).toBe(201);
  });

  describe("which names POST /api/jobs accepts (QML_ENQUEUE_NAMES)", () => {
    const post = (url: string, name: string) =>
      fetch(`${url}/api/jobs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
        // A queue no server here takes: the job stays as enqueued.
        body: JSON.stringify({ name, args: [], queue: "elsewhere" }),
      });
    const start = async (env: Record<string, string>, registry?: WorkerRegistry) => {
      const config = loadEnvConfig({ ...freshFile(), PORT: "0", QML_HOST: "127.0.0.1", QML_DASHBOARD_TOKEN: TOKEN, QML_DEMO: "off", ...env });
      handle = await startNodeServer({ config, logger: silentLogger, ...(registry ? { registry } : {}) });
      await handle.started;
      return handle.url;
    };
    const withWorker = () => {
      const registry = new WorkerRegistry();
      registry.register("resize_image", () => WorkerResult.success());
      return registry;
    };

    it("a server with workers accepts their names and refuses others (422)", async () => {
      const url = await start({}, withWorker());
      expect((await post(url, "resize_image")).status).toBe(201);
      const refused = await post(url, "send_email");
      expect(refused.status).toBe(422);
      expect(await refused.json()).toMatchObject({ code: "UNKNOWN_JOB_NAME" });
    });

    it("a server without workers (a producer) accepts any name", async () => {
      const url = await start({});
      const res = await post(url, "send_email");
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      expect((await handle!.storage.get(id))?.name).toBe("send_email");
    });

    it("QML_ENQUEUE_NAMES overrides the default either way", async () => {
      let url = await start({ QML_ENQUEUE_NAMES: "any" }, withWorker());
      expect((await post(url, "send_email")).status).toBe(201);
      await handle!.stop(0);
      handle = undefined;
      url = await start({ QML_ENQUEUE_NAMES: "registered" });
      expect((await post(url, "send_email")).status).toBe(422);
    });
  });

  it("live updates over WebSocket on the same port, for an authenticated client only", async () => {
    const config = loadEnvConfig({ ...freshFile(), PORT: "0", QML_HOST: "127.0.0.1", QML_DASHBOARD_TOKEN: TOKEN, QML_DEMO: "off" });
    handle = await startNodeServer({ config, logger: silentLogger });
    const wsUrl = `${handle.url.replace(/^http/, "ws")}/ws`;
    const refused = new WebSocket(wsUrl);
    refused.on("error", () => {});
    const status = await new Promise<number>((resolve) =>
      refused.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)).once("open", () => resolve(101)),
    );
    refused.terminate();
    expect(status).toBe(401);

    const ws = new WebSocket(wsUrl, { headers: { Authorization: `Bearer ${TOKEN}` } });
    const first = await new Promise<string>((resolve, reject) => {
      ws.once("message", (data) => resolve(String(data)));
      ws.once("error", reject);
    });
    ws.close();
    expect(JSON.parse(first)).toMatchObject({ type: "snapshot", total: 0 });
  });

  it("without a token on a non-loopback address, only the probes answer", async () => {
    const config = loadEnvConfig({ ...freshFile(), PORT: "0", QML_HOST: "0.0.0.0", QML_DEMO: "off" });
    handle = await startNodeServer({ config, logger: silentLogger });
    expect(handle.dashboard).toBe("off");
    expect((await fetch(`${handle.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${handle.url}/api/stats`)).status).toBe(404);
    expect((await fetch(`${handle.url}/`)).status).toBe(404);
  });

  it("without a token on loopback the dashboard is open, to loopback host names only", async () => {
    handle = await startNodeServer({ config: loadEnvConfig({ ...freshFile(), PORT: "0", QML_DEMO: "off" }), logger: silentLogger });
    expect(handle.dashboard).toBe("open");
    expect((await fetch(`${handle.url}/api/stats`)).status).toBe(200);
    // A DNS-rebinding page reaches 127.0.0.1 under a foreign Host name.
    const port = new URL(handle.url).port;
    const rebound = await new Promise<number>((resolve, reject) => {
      import("node:http").then(({ get }) =>
        get({ host: "127.0.0.1", port, path: "/api/stats", headers: { Host: `attacker.example:${port}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).once("error", reject),
      );
    });
    expect(rebound).toBe(403);
  });

  it("runs the workers of QML_WORKERS_MODULE next to the ones it is given", async () => {
    const config = loadEnvConfig({ ...freshFile(), PORT: "0", QML_WORKERS_MODULE: FIXTURE, QML_POLL_MS: "20" });
    expect(config.demo).toBe("off");
    const registry = new WorkerRegistry().register("own", () => WorkerResult.success());
    handle = await startNodeServer({ config, registry, logger: silentLogger });
    expect(handle.registry.names().sort()).toEqual(["finishes_after_sigterm", "own", "quick", "runs_forever"]);
    await handle.started;
    const succeeded = new Promise<string>((resolve) => handle!.server.on("job:succeeded", (e) => resolve(e.job.id)));
    const id = await handle.storage.enqueue(new Job("quick", []));
    expect(await succeeded).toBe(id);
  });

  it("while draining, /readyz says 503 and /healthz 200, and a running job may still finish", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const registry = new WorkerRegistry().register("held", async () => {
      await held;
      return WorkerResult.success({ finished: "during the drain" });
    });
    const file = freshFile();
    const config = loadEnvConfig({ ...file, PORT: "0", QML_DEMO: "off", QML_POLL_MS: "20", QML_SHUTDOWN_TIMEOUT_MS: "60000" });
    handle = await startNodeServer({ config, registry, logger: silentLogger });
    await handle.started;
    const started = new Promise<void>((resolve) => handle!.server.on("job:start", () => resolve()));
    const id = await handle.storage.enqueue(new Job("held", []));
    await started;
    expect((await fetch(`${handle.url}/readyz`)).status).toBe(200);

    const stopping = handle.stop();
    const draining = await fetch(`${handle.url}/readyz`);
    expect(draining.status).toBe(503);
    expect(await draining.json()).toMatchObject({ ok: false, phase: "draining", code: "SHUTDOWN" });
    expect((await fetch(`${handle.url}/healthz`)).status).toBe(200);
    expect((await handle.storage.get(id))!.state).toBe(JobState.Processing);

    release();
    await stopping;
    // The server closed its store; the file keeps what the drain wrote.
    const after = new Storage(sqliteBackend(new SqliteConfig(file.QML_SQLITE_PATH)));
    expect(await after.get(id)).toMatchObject({ state: JobState.Succeeded, result: { finished: "during the drain" } });
    await after.close();
    await expect(fetch(`${handle.url}/healthz`)).rejects.toThrow();
  });

  it("a workers module that cannot be loaded, or exports no register(), stops start-up naming QML_WORKERS_MODULE", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qml-workers-"));
    try {
      writeFileSync(join(dir, "nothing.mjs"), "export const x = 1;\n");
      for (const [module, message] of [
        [join(dir, "missing.mjs"), /QML_WORKERS_MODULE=.*could not be loaded/],
        [join(dir, "nothing.mjs"), /QML_WORKERS_MODULE=.*register\(registry\)/],
      ] as const) {
        const start = startNodeServer({ config: loadEnvConfig({ ...freshFile(), PORT: "0", QML_WORKERS_MODULE: module }), logger: silentLogger });
        await expect(start).rejects.toThrow(ConfigError);
        await expect(start).rejects.toThrow(message);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
