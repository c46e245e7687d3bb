/**
 * The path a job takes in production: enqueued through the API (fetch), a
 * wake-up on the real (local) Queue, the consumer runs it, the API shows the
 * outcome. No cron runs here, so only the wake-up can have run the job.
 */
import { SELF, createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { Job } from "../../src/core/job.js";
import { BACKENDS, makeStorage, suiteFor } from "./backends.js";
import worker, { ADMIN_TOKEN, harness } from "./fixtures/worker.js";
import { api, testEnv, waitForState } from "./helpers.js";

for (const backend of BACKENDS) {
  suiteFor(backend, `queue flow on ${backend}`, () => {
    it("an enqueue through fetch wakes the Queue consumer, which runs the job; the API shows it succeeded", async () => {
      harness.reset(await makeStorage(backend));
      harness.wakeUps = true;
      const r = await api<{ id: string; created: boolean }>("/api/jobs", { body: { name: "echo", args: ["hi", 1] } });
      expect(r.status).toBe(201);
      const id = r.body.id;

      const job = await waitForState(id, "succeeded");
      expect(job.result).toEqual({ echo: ["hi", 1] });
      expect(job.attempts).toBe(1);
      expect(job.history.find((h) => h.state === "processing")?.worker).toMatch(/^cf-queue-/);
      expect(harness.runs.get(id)).toBe(1);

      // The wake-up is acknowledged once the outcome is stored, and only then.
      await vi.waitUntil(() => harness.deliveries.some((d) => d.jobIds.includes(id)), { timeout: 5000, interval: 20 });
      expect(harness.deliveries.filter((d) => d.jobIds.includes(id)).map((d) => d.action)).toEqual(["ack"]);
      expect(harness.sent.filter((w) => w.id === id)).toHaveLength(1);
    });

    it("a failing job goes through its retries to failed; every wake-up is acknowledged and none is dead-lettered", async () => {
      harness.reset(await makeStorage(backend));
      harness.wakeUps = true;
      const r = await api<{ id: string }>("/api/jobs", { body: { name: "always_fails", args: [], maxAttempts: 2 } });
      expect(r.status).toBe(201);
      const id = r.body.id;

      const job = await waitForState(id, "failed");
      expect(job.attempts).toBe(2);
      expect(job.error?.message).toContain("always_fails");
      expect(job.history.map((h) => h.state)).toContain("awaiting_retry");
      expect(harness.runs.get(id)).toBe(2);

      // The first wake-up was answered by a fresh one for the retry (the job
      // was waiting, not failing to be handled); both end acknowledged, and
      // nothing for this job is left on the queue: every message sent was
      // delivered and acked.
      await vi.waitUntil(() => harness.deliveries.filter((d) => d.jobIds.includes(id)).length >= harness.sent.filter((w) => w.id === id).length, {
        timeout: 5000,
        interval: 20,
      });
      const deliveries = harness.deliveries.filter((d) => d.jobIds.includes(id));
      expect(harness.sent.filter((w) => w.id === id)).toHaveLength(2);
      expect(deliveries.map((d) => d.action)).toEqual(["ack", "ack"]);
      expect(harness.deadLetters).toEqual([]);
    });
  });
}

describe("fetch", () => {
  it("requires a token for the API and answers health checks without one", async () => {
    harness.reset(await makeStorage("memory"));
    expect((await api("/api/stats", { token: null })).status).toBe(401);
    expect((await api("/api/stats", { token: "not-a-valid-token-at-all" })).status).toBe(401);
    expect((await api("/api/jobs", { token: null, body: { name: "echo" } })).status).toBe(401);
    const stats = await api<{ total: number }>("/api/stats");
    expect(stats.status).toBe(200);
    expect(stats.body.total).toBe(0);
    expect((await api("/healthz", { token: null })).status).toBe(200);
  });

  it("is never open: without a token configured, the API refuses every call", async () => {
    harness.reset(await makeStorage("memory"));
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request("https://qml.test/api/stats"), { ...testEnv, QML_DASHBOARD_TOKEN: "" }, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(500);
    expect(((await res.json()) as { code: string }).code).toBe("INTERNAL");
  });

  it("pushes live snapshots over a WebSocket from workerd", async () => {
    const storage = await makeStorage("memory");
    harness.reset(storage);
    await storage.enqueue(new Job("echo", ["live"], { delay: 60_000 }));
    const res = await SELF.fetch("https://qml.test/ws", { headers: { upgrade: "websocket", authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const first = new Promise<string>((resolve) => ws.addEventListener("message", (e: MessageEvent) => resolve(String(e.data)), { once: true }));
    ws.send("hello");
    const snapshot = JSON.parse(await first) as { type: string; states: Record<string, number> };
    ws.close(1000, "done");
    expect(snapshot.type).toBe("snapshot");
    expect(snapshot.states.scheduled).toBe(1);
  });

  it("refuses a name no worker is registered for", async () => {
    harness.reset(await makeStorage("memory"));
    const r = await api("/api/jobs", { body: { name: "nobody_runs_this" } });
    expect(r.status).toBe(422);
  });
});
