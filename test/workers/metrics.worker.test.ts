/**
 * GET /metrics of a Worker (createWorker, in workerd): behind the metrics
 * token (QML_METRICS_TOKEN, a binding here) or the API's; the counters are
 * the isolate's, fed by its fetch (an enqueue through the API) and its cron
 * tick (the runs), and the depth gauges are the store's.
 */
import { SELF } from "cloudflare:test";
import { expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { Job } from "../../src/core/job.js";
import { ALL_STATES } from "../../src/core/job.js";
import { WorkerRegistry, WorkerResult } from "../../src/core/registry.js";
import { parseExposition, valueOf } from "../metrics/parse.js";
import { makeStorage, suiteFor, type BackendName } from "./backends.js";
import { ADMIN_TOKEN, harness } from "./fixtures/worker.js";
import { api, runCron } from "./helpers.js";

const METRICS_TOKEN = "test-metrics-token-0123456789abcdef";
const T0 = Date.UTC(2030, 0, 1, 0, 0, 30);

function get(path: string, token?: string): Promise<Response> {
  return SELF.fetch(`https://qml.test${path}`, token !== undefined ? { headers: { authorization: `Bearer ${token}` } } : {});
}

for (const backend of ["memory", "d1"] as BackendName[]) {
  suiteFor(backend, `/metrics on Workers (${backend})`, () => {
    it("counts this isolate's enqueues and cron runs; gauges from the store; 401 without a token", async () => {
      const clock = new ManualClock(T0);
      const storage = await makeStorage(backend, clock);
      harness.reset(storage, { clock });
      const ok = `metrics_ok_${backend}`;
      const bad = `metrics_bad_${backend}`;
      harness.registry = new WorkerRegistry().register(ok, () => WorkerResult.success()).register(bad, () => WorkerResult.failure(new Error("no")));

      const refused = await get("/metrics");
      expect(refused.status).toBe(401);
      await refused.text();
      const wrong = await get("/metrics", "wrong-token-0123456789abcdef");
      expect(wrong.status).toBe(401);
      await wrong.text();

      for (const n of [1, 2]) expect((await api("/api/jobs", { body: { name: ok, args: [n] } })).status).toBe(201);
      await storage.enqueue(new Job(bad, []));
      await runCron(clock);

      const res = await get("/metrics", METRICS_TOKEN);
      expect(res.status).toBe(200);
      const f = parseExposition(await res.text());
      const okL = { queue: "default", name: ok };
      const badL = { queue: "default", name: bad };
      expect(valueOf(f, "qml_jobs_enqueued_total", okL)).toBe(2);
      expect(valueOf(f, "qml_jobs_enqueued_total", badL)).toBe(1);
      expect(valueOf(f, "qml_jobs_started_total", okL)).toBe(2);
      expect(valueOf(f, "qml_jobs_started_total", badL)).toBe(1);
      expect(valueOf(f, "qml_jobs_succeeded_total", okL)).toBe(2);
      expect(valueOf(f, "qml_jobs_failed_total", badL)).toBe(1);
      expect(valueOf(f, "qml_job_wait_seconds_count", okL)).toBe(2);
      expect(valueOf(f, "qml_job_run_seconds_count", badL)).toBe(1);
      const stats = await storage.stats();
      for (const q of stats.queues)
        for (const s of ALL_STATES) expect(valueOf(f, "qml_queue_jobs", { queue: q.name, state: s }), `${q.name} ${s}`).toBe(q.counts[s]);
      expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "succeeded" })).toBe(2);
      expect(valueOf(f, "qml_store_up")).toBe(1);

      // The API's token reads it too; the metrics token opens nothing else.
      const admin = await get("/metrics", ADMIN_TOKEN);
      expect(admin.status).toBe(200);
      await admin.text();
      const other = await get("/api/stats", METRICS_TOKEN);
      expect(other.status).toBe(401);
      await other.text();
    });
  });
}
