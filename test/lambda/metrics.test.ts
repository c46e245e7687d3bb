/**
 * GET /metrics through the Lambda Function URL handler: behind the metrics
 * token (`http.metricsToken`, QML_METRICS_TOKEN in deploy/aws) or the
 * API's; in one instance, the counters see the API's enqueue and the
 * scheduled tick's run (processMetrics()), the gauges the store.
 */
import { describe, expect, it } from "vitest";
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { ALL_STATES, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger } from "../../src/index.js";
import { parseExposition, valueOf } from "../metrics/parse.js";
import { functionUrlEvent, lambdaContext, scheduledEvent } from "./aws-events.js";

const TOKEN = "lambda-metrics-admin-0123456789abcdef";
const METRICS = "lambda-metrics-scrape-0123456789abcdef";

describe("lambda: /metrics", () => {
  it("answers the metrics token (401 otherwise) with this instance's counters and the store's depths", async () => {
    const storage = new Storage(memoryBackend());
    const name = `lambda_metrics_${crypto.randomUUID().slice(0, 8)}`;
    const h = createLambdaHandlers({
      storage: () => storage,
      registry: new WorkerRegistry().register(name, () => WorkerResult.success()),
      safetyMs: 100,
      logger: silentLogger,
      http: { auth: { adminTokens: [TOKEN] }, metricsToken: METRICS },
    });
    try {
      const scrape = (token?: string) =>
        h.httpHandler(functionUrlEvent({ method: "GET", path: "/metrics", headers: token ? { authorization: `Bearer ${token}` } : {} }), lambdaContext(5000));
      expect((await scrape()).statusCode).toBe(401);
      expect((await scrape("not-the-token-0123456789abcdef")).statusCode).toBe(401);
      const created = await h.httpHandler(
        functionUrlEvent({
          method: "POST",
          path: "/api/jobs",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ name, args: [] }),
        }),
        lambdaContext(5000),
      );
      expect(created.statusCode).toBe(201);
      await h.scheduleHandler(scheduledEvent(), lambdaContext(5000));

      const res = await scrape(METRICS);
      expect(res.statusCode).toBe(200);
      const f = parseExposition(res.body);
      const l = { queue: "default", name };
      expect(valueOf(f, "qml_jobs_enqueued_total", l)).toBe(1);
      expect(valueOf(f, "qml_jobs_started_total", l)).toBe(1);
      expect(valueOf(f, "qml_jobs_succeeded_total", l)).toBe(1);
      expect(valueOf(f, "qml_job_run_seconds_count", l)).toBe(1);
      const stats = await storage.stats();
      for (const q of stats.queues) for (const s of ALL_STATES) expect(valueOf(f, "qml_queue_jobs", { queue: q.name, state: s })).toBe(q.counts[s]);
      expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "succeeded" })).toBe(1);
      expect((await scrape(TOKEN)).statusCode).toBe(200);
      const api = await h.httpHandler(
        functionUrlEvent({ method: "GET", path: "/api/stats", headers: { authorization: `Bearer ${METRICS}` } }),
        lambdaContext(5000),
      );
      expect(api.statusCode).toBe(401);
    } finally {
      await h.close();
    }
  });
});
