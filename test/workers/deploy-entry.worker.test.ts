/**
 * The reference deployment's entry (deploy/cloudflare/src/worker.ts) in
 * workerd, configured only through its env as wrangler would: it picks D1,
 * Upstash or Neon from QML_STORAGE (D1 when unset), serves the API behind
 * the token secret, and its cron tick runs what the API enqueued.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { expect, it } from "vitest";
import { systemClock } from "../../src/core/clock.js";
import deployed from "../../deploy/cloudflare/src/worker.js";
import { d1Binding, deployEnvFor, freshD1, suiteFor } from "./backends.js";
import { ADMIN_TOKEN } from "./fixtures/worker.js";
import { runCron } from "./helpers.js";

async function call(env: Record<string, unknown>, path: string, init: { method?: string; body?: unknown; token?: string } = {}) {
  const ctx = createExecutionContext();
  const headers: Record<string, string> = {};
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const req = new Request(`https://qml.example.workers.dev${path}`, {
    method: init.method ?? (init.body !== undefined ? "POST" : "GET"),
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const res = await deployed.fetch(req, env as never, ctx);
  await waitOnExecutionContext(ctx);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

for (const backend of ["d1", "upstash", "neon"] as const) {
  suiteFor(backend, `deploy entry on ${backend}`, () => {
    it("serves the API behind the token secret and runs what it enqueued on the cron tick", async () => {
      if (backend === "d1") await freshD1();
      // No QML_QUEUE binding here: the cron tick alone must run the job.
      const env = { ...deployEnvFor(backend), QML_DASHBOARD_TOKEN: ADMIN_TOKEN, QML_LOG_LEVEL: "error" };

      expect((await call(env, "/api/stats")).status).toBe(401);
      const created = await call(env, "/api/jobs", { body: { name: "send_email", args: ["ada@example.com"] }, token: ADMIN_TOKEN });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      expect(created.body.job.state).toBe("enqueued");

      await runCron(systemClock, env, deployed as never);

      const read = await call(env, `/api/jobs/${id}`, { token: ADMIN_TOKEN });
      expect(read.body.job.state).toBe("succeeded");
      expect(read.body.job.result).toEqual({ delivered: true });
      const stats = await call(env, "/api/stats", { token: ADMIN_TOKEN });
      expect(stats.body.states.succeeded).toBe(1);
    });
  });
}

for (const backend of ["d1", "upstash", "neon"] as const) {
  suiteFor(backend, `deploy entry's workflow on ${backend}`, () => {
    it("runs onboard_customer's steps across cron ticks, waits for its event, and finishes once it is posted", async () => {
      if (backend === "d1") await freshD1();
      const env = { ...deployEnvFor(backend), QML_DASHBOARD_TOKEN: ADMIN_TOKEN, QML_LOG_LEVEL: "error" };
      const created = await call(env, "/api/jobs", { body: { name: "onboard_customer", args: ["ada@example.com", { coolOffMs: 1 }] }, token: ADMIN_TOKEN });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      const read = async () => (await call(env, `/api/jobs/${id}`, { token: ADMIN_TOKEN })).body.job;
      // Ticks until the job waits for its event: the account step, then the sleep, then the wait.
      let job = await read();
      for (let tick = 0; tick < 10 && !(job.state === "scheduled" && job.steps?.some((s: { id: string }) => s.id === "verified")); tick++) {
        await runCron(systemClock, env, deployed as never);
        await new Promise((r) => setTimeout(r, 5));
        job = await read();
      }
      expect(job.state).toBe("scheduled");
      expect(job.steps.map((s: { id: string; status: string }) => `${s.id}:${s.status}`)).toEqual([
        "create-account:completed",
        "cool-off:completed",
        "verified:waiting",
      ]);
      const other = await call(env, "/api/events", { body: { name: "customer.verified", data: { email: "bob@example.com" } }, token: ADMIN_TOKEN });
      expect(other.body.delivered).toEqual([]);
      const sent = await call(env, "/api/events", { body: { name: "customer.verified", data: { email: "ada@example.com" } }, token: ADMIN_TOKEN });
      expect(sent.status).toBe(202);
      expect(sent.body.delivered).toEqual([id]);
      await runCron(systemClock, env, deployed as never);
      job = await read();
      expect(job.state).toBe("succeeded");
      expect(job.result).toEqual({ account: "acct_ada", verified: true, sent: true });
      expect(job.steps.every((s: { status: string }) => s.status === "completed")).toBe(true);
    });
  });
}

it("answers a problem document, not a stack trace, when the deployment lacks its settings", async () => {
  for (const storage of ["redis", "sqlite"]) {
    const r = await call({ QML_STORAGE: storage, QML_DASHBOARD_TOKEN: ADMIN_TOKEN, QML_LOG_LEVEL: "error" }, "/api/stats", { token: ADMIN_TOKEN });
    expect(r.status).toBe(500);
    expect(r.body.code).toBe("INTERNAL");
    expect(JSON.stringify(r.body)).not.toMatch(/UPSTASH|QML_DB|d1_databases/);
  }
});

it("runs on D1 when QML_STORAGE is not set: the deployment needs nothing outside Cloudflare", async () => {
  await freshD1();
  const env = { QML_DB: d1Binding(), QML_DASHBOARD_TOKEN: ADMIN_TOKEN, QML_LOG_LEVEL: "error" };
  const created = await call(env, "/api/jobs", { body: { name: "send_email", args: ["ada@example.com"] }, token: ADMIN_TOKEN });
  expect(created.status).toBe(201);
  const tables = await d1Binding().prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'qml_jobs'").all();
  expect(tables.results).toEqual([{ name: "qml_jobs" }]);
});
