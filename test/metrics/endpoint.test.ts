/**
 * GET /metrics on the hono app after real jobs ran through a
 * BackgroundJobServer, on memory, Redis and PostgreSQL: every counter moves
 * by exactly what happened, the histograms count what was started and
 * finished, and the depth gauges are the store's stats. Then who may
 * scrape, how often the store is read, a reclaim counted through tick(),
 * and the Node server's /metrics.
 */
import { afterAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { loadEnvConfig, startNodeServer } from "../../src/adapters/runtime/node/index.js";
import { createNodeApp } from "../../src/adapters/runtime/node/node-server.js";
import { Readiness } from "../../src/adapters/runtime/node/readiness.js";
import { MetricsEndpoint } from "../../src/adapters/http/metrics.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { Emitter, type JobEventMap } from "../../src/core/events.js";
import { ALL_STATES, Job, JobMetrics, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger, tick } from "../../src/index.js";
import { SkewedClock, systemClock } from "../../src/core/clock.js";
import { testServer, waitForEvents } from "../core/helpers.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { ADMIN, HOST, ORIGIN, READER, call, harness, login, problem } from "../http/helpers.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes, redisStorage } from "../redis/helpers.js";
import { parseExposition, valueOf, type Family } from "./parse.js";

const METRICS = "metrics-scrape-token-0123456789abcdef";

async function scrape(
  app: { request: (url: string, init?: RequestInit) => Response | Promise<Response> },
  token: string | null = METRICS,
): Promise<Map<string, Family>> {
  const res = await app.request(`${ORIGIN}/metrics`, { headers: { Host: HOST, ...(token !== null ? { Authorization: `Bearer ${token}` } : {}) } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parseExposition(await res.text());
}

/**
 * Runs, on `storage`: three `ok` jobs and a `bad` one (fails for good) on
 * `default`, a `flaky` one on `mail` (retried once, then succeeds), a
 * `slow` one cancelled while it runs, an `ok` one scheduled an hour ahead
 * and one on a queue no server takes. Then scrapes and checks every figure.
 */
async function runAndScrape(storage: Storage): Promise<void> {
  const collector = new JobMetrics();
  const app = createApp({ storage, auth: { adminTokens: [ADMIN] }, logger: silentLogger, metrics: { collector, token: METRICS, cacheMs: 0 } });
  const registry = new WorkerRegistry()
    .register("ok", () => WorkerResult.success())
    .register("flaky", (_job, ctx) => (ctx.attempt === 1 ? WorkerResult.retry(new Error("first try"), { delay: 0 }) : WorkerResult.success()))
    .register("bad", () => WorkerResult.failure(new Error("never")))
    .register("slow", (_job, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve())));
  const server = testServer(storage, registry, (c) => c.workerCount(8).queues(["default", "mail"]));
  const stop = collector.observe(server);
  const finished = Promise.all([waitForEvents(server, "job:succeeded", 4), waitForEvents(server, "job:failed", 1), waitForEvents(server, "job:retry", 1)]);
  const slowStarted = waitForEvents(server, "job:start", 1, (p) => p.job.name === "slow");
  const cancelled = waitForEvents(server, "job:cancelled", 1);
  await server.start();
  try {
    const ids = await storage.enqueue([
      new Job("ok", [1]),
      new Job("ok", [2]),
      new Job("ok", [3]),
      new Job("bad", []),
      new Job("flaky", [], { queue: "mail", maxAttempts: 3 }),
      new Job("slow", []),
      new Job("ok", ["later"], { delay: 3_600_000 }),
      new Job("ok", ["nobody"], { queue: "idle" }),
    ]);
    await finished;
    await slowStarted;
    await storage.cancel(ids[5]!, { by: "metrics test" });
    await cancelled;
  } finally {
    await server.stop();
    stop();
  }

  const f = await scrape(app);
  const ok = { queue: "default", name: "ok" };
  const bad = { queue: "default", name: "bad" };
  const slow = { queue: "default", name: "slow" };
  const flaky = { queue: "mail", name: "flaky" };
  const idle = { queue: "idle", name: "ok" };
  const expected: Record<string, Array<[Record<string, string>, number]>> = {
    qml_jobs_enqueued_total: [
      [ok, 4],
      [bad, 1],
      [slow, 1],
      [flaky, 1],
      [idle, 1],
    ],
    qml_jobs_started_total: [
      [ok, 3],
      [bad, 1],
      [slow, 1],
      [flaky, 2],
    ],
    qml_jobs_succeeded_total: [
      [ok, 3],
      [flaky, 1],
    ],
    qml_jobs_failed_total: [[bad, 1]],
    qml_jobs_retried_total: [[flaky, 1]],
    qml_jobs_cancelled_total: [[slow, 1]],
    // One wait per start, one run per finished attempt (a cancelled run records nothing).
    qml_job_wait_seconds_count: [
      [ok, 3],
      [bad, 1],
      [slow, 1],
      [flaky, 2],
    ],
    qml_job_run_seconds_count: [
      [ok, 3],
      [bad, 1],
      [flaky, 2],
    ],
  };
  for (const [name, rows] of Object.entries(expected)) {
    // Exactly these series and values: nothing more was counted.
    const samples = [...f.values()].flatMap((fam) => fam.samples).filter((s) => s.name === name);
    expect(
      samples.map((s) => [s.labels, s.value]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      name,
    ).toEqual(rows.map(([l, v]) => [l, v]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))));
  }
  expect(valueOf(f, "qml_jobs_reclaimed_total")).toBe(0);
  expect(valueOf(f, "qml_store_up")).toBe(1);

  // The gauges are the store's own figures, for every queue and state.
  const stats = await storage.stats();
  const gauges = f.get("qml_queue_jobs")!.samples;
  expect(gauges).toHaveLength(stats.queues.length * ALL_STATES.length);
  for (const q of stats.queues)
    for (const s of ALL_STATES) expect(valueOf(f, "qml_queue_jobs", { queue: q.name, state: s }), `${q.name} ${s}`).toBe(q.counts[s]);
  expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "succeeded" })).toBe(3);
  expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "failed" })).toBe(1);
  expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "scheduled" })).toBe(1);
  expect(valueOf(f, "qml_queue_jobs", { queue: "mail", state: "succeeded" })).toBe(1);
  expect(valueOf(f, "qml_queue_jobs", { queue: "idle", state: "enqueued" })).toBe(1);
}

describe("/metrics after real jobs", () => {
  it("on the memory backend", async () => {
    const storage = new Storage(memoryBackend());
    await runAndScrape(storage);
    await storage.close();
  });
});

const keys = prefixes("metrics");
describeWithService("redis", await serviceUp("redis"), "/metrics after real jobs on Redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it("on Redis", async () => {
    const storage = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next()));
    try {
      await runAndScrape(storage);
    } finally {
      await storage.close();
    }
  });
});

const schemas = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "/metrics after real jobs on PostgreSQL", () => {
  afterAll(() => schemas.dropAll());
  it("on PostgreSQL", async () => {
    const storage = new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schemas.next()).withMaxConnections(3)));
    try {
      await runAndScrape(storage);
    } finally {
      await storage.close();
    }
  });
});

describe("who may scrape /metrics", () => {
  const h = harness({ metrics: { collector: new JobMetrics(), token: METRICS } });

  it("nobody without credentials, or with a wrong token: 401 with a problem document", async () => {
    for (const token of [null, "not-the-token-0123456789abcdef"]) {
      const res = await call(h.app, "GET", "/metrics", { token });
      expect(res.status, String(token)).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await problem(res)).code).toBe("UNAUTHORIZED");
    }
  });

  it("the metrics token, the API's admin and read tokens, and a session cookie", async () => {
    for (const token of [METRICS, ADMIN, READER]) expect((await call(h.app, "GET", "/metrics", { token })).status, token).toBe(200);
    const { cookie } = await login(h.app, READER);
    expect((await call(h.app, "GET", "/metrics", { token: null, cookie })).status).toBe(200);
  });

  it("the metrics token opens /metrics and nothing else", async () => {
    expect((await call(h.app, "GET", "/api/stats", { token: METRICS })).status).toBe(401);
    expect((await call(h.app, "GET", "/api/jobs", { token: METRICS })).status).toBe(401);
  });

  it("a page of another site is refused", async () => {
    expect((await call(h.app, "GET", "/metrics", { token: METRICS, headers: { Origin: "https://evil.example" } })).status).toBe(403);
  });

  it("a weak metrics token is refused at configuration", () => {
    expect(() => harness({ metrics: { token: "short" } })).toThrow(/token/);
    expect(() => harness({ metrics: { token: "a".repeat(32) } })).toThrow(/too easy to guess/);
  });

  it("metrics: false serves no /metrics", async () => {
    expect((await call(harness({ metrics: false }).app, "GET", "/metrics")).status).toBe(404);
  });

  it("in open mode, loopback callers only", async () => {
    const storage = new Storage(memoryBackend());
    const app = createApp({ storage, auth: { open: true }, logger: silentLogger, metrics: { collector: new JobMetrics() } });
    expect((await app.request("http://127.0.0.1:8080/metrics")).status).toBe(200);
    expect((await app.request("http://metrics.example/metrics")).status).toBe(403);
  });
});

describe("the store is read at most once per cacheMs", () => {
  it("scrapes within cacheMs share one stats read, concurrent ones too", async () => {
    const h = harness({ metrics: { collector: new JobMetrics(), token: METRICS, cacheMs: 60_000 } });
    const stats = vi.spyOn(h.storage, "stats");
    await h.storage.enqueue(new Job("send_email", ["a@b.c"]));
    const all = await Promise.all(Array.from({ length: 5 }, () => scrape(h.app)));
    await scrape(h.app);
    expect(stats).toHaveBeenCalledTimes(1);
    for (const f of all) expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "enqueued" })).toBe(1);
  });

  it("with cacheMs 0 every scrape reads the store", async () => {
    const h = harness({ metrics: { collector: new JobMetrics(), token: METRICS, cacheMs: 0 } });
    const stats = vi.spyOn(h.storage, "stats");
    await scrape(h.app);
    await scrape(h.app);
    expect(stats).toHaveBeenCalledTimes(2);
  });

  it("a store that fails: the counters are answered, qml_store_up is 0, no depth gauge", async () => {
    const collector = new JobMetrics();
    const h = harness({ metrics: { collector, token: METRICS, cacheMs: 0 } });
    await h.storage.enqueue(new Job("send_email", ["a@b.c"]));
    vi.spyOn(h.storage, "stats").mockRejectedValue(new Error("connection refused"));
    const f = await scrape(h.app);
    expect(valueOf(f, "qml_store_up")).toBe(0);
    expect(f.get("qml_queue_jobs")!.samples).toEqual([]);
    expect(valueOf(f, "qml_jobs_enqueued_total", { queue: "default", name: "send_email" })).toBe(1);
  });
});

describe("counted outside a BackgroundJobServer", () => {
  it("tick(): a reclaimed lease, then the job's run", async () => {
    const storage = new Storage(memoryBackend());
    const collector = new JobMetrics();
    collector.observeEnqueues(storage);
    const registry = new WorkerRegistry().register("ok", () => WorkerResult.success());
    await storage.enqueue(new Job("ok", []));
    // A worker that claimed it and died: its lease runs out a second later.
    await storage.driver.claim({ queues: ["default"], limit: 1, owner: "dead", leaseMs: 1000, now: Date.now() });
    const events = new Emitter<JobEventMap>();
    collector.observe(events);
    // A minute on: the lease has expired.
    const clock = new SkewedClock(systemClock, 60_000);
    const report = await tick({ storage, registry, deadline: clock.now() + 10_000, safetyMs: 100, clock, events });
    expect(report).toMatchObject({ reclaimed: 1, processed: 1, succeeded: 1 });
    const f = parseExposition(collector.render());
    expect(valueOf(f, "qml_jobs_reclaimed_total")).toBe(1);
    expect(valueOf(f, "qml_jobs_enqueued_total", { queue: "default", name: "ok" })).toBe(1);
    expect(valueOf(f, "qml_jobs_started_total", { queue: "default", name: "ok" })).toBe(1);
    expect(valueOf(f, "qml_jobs_succeeded_total", { queue: "default", name: "ok" })).toBe(1);
    await storage.close();
  });

  it("observeEnqueues counts a storage once however often asked, and neither a requeue nor another storage's jobs", async () => {
    const backend = memoryBackend();
    const storage = new Storage(backend);
    const collector = new JobMetrics();
    collector.observeEnqueues(storage);
    collector.observeEnqueues(storage);
    const id = await storage.enqueue(new Job("ok", [], { maxAttempts: 1 }));
    await storage.cancel(id);
    await storage.requeue(id);
    await new Storage(backend).enqueue(new Job("ok", []));
    expect(valueOf(parseExposition(collector.render()), "qml_jobs_enqueued_total", { queue: "default", name: "ok" })).toBe(1);
  });
});

describe("the Node server's /metrics", () => {
  it("npm start on loopback: the curl of the README answers, counting the server's jobs", async () => {
    const collector = new JobMetrics();
    const registry = new WorkerRegistry().register("ok", () => WorkerResult.success());
    const handle = await startNodeServer({
      config: loadEnvConfig({ QML_STORAGE: "memory", PORT: "0", QML_POLL_MS: "20", QML_DEMO: "off", QML_METRICS_TOKEN: METRICS }),
      registry,
      logger: silentLogger,
      metrics: collector,
    });
    try {
      await handle.started;
      const done = waitForEvents(handle.server, "job:succeeded", 2);
      await handle.storage.enqueue([new Job("ok", [1]), new Job("ok", [2])]);
      await done;
      const res = await fetch(`${handle.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS}` } });
      expect(res.status).toBe(200);
      const f = parseExposition(await res.text());
      expect(valueOf(f, "qml_jobs_enqueued_total", { queue: "default", name: "ok" })).toBe(2);
      expect(valueOf(f, "qml_jobs_succeeded_total", { queue: "default", name: "ok" })).toBe(2);
      expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "succeeded" })).toBe(2);
    } finally {
      await handle.stop(0);
    }
  });

  it("without a dashboard (no API token, not on loopback), QML_METRICS_TOKEN alone serves /metrics", async () => {
    const storage = new Storage(memoryBackend());
    const endpoint = new MetricsEndpoint(storage, { collector: new JobMetrics(), token: METRICS }, silentLogger);
    const app = createNodeApp(new Readiness(storage, { logger: silentLogger }), undefined, undefined, endpoint);
    expect((await app.request("http://jobs.internal/metrics")).status).toBe(401);
    expect((await app.request("http://jobs.internal/metrics", { headers: { Authorization: "Bearer wrong-token-0123456789abcdef" } })).status).toBe(401);
    const ok = await app.request("http://jobs.internal/metrics", { headers: { Authorization: `Bearer ${METRICS}` } });
    expect(ok.status).toBe(200);
    expect(valueOf(parseExposition(await ok.text()), "qml_store_up")).toBe(1);
    expect((await app.request("http://jobs.internal/api/stats", { headers: { Authorization: `Bearer ${METRICS}` } })).status).toBe(404);
    await storage.close();
  });
});
