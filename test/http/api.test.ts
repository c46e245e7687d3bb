/** The REST API, route by route, with good and bad input. Requests go through app.request: no socket. */
import { describe, expect, it } from "vitest";
import { Job, JobState, JsonLogger, Storage, memoryBackend, StorageUnavailableError, silentLogger } from "../../src/index.js";
import { MemoryBackend } from "../../src/adapters/storage/memory/index.js";
import { createApp } from "../../src/adapters/http/index.js";
import { Emitter, type JobEventMap } from "../../src/core/events.js";
import { Scheduler } from "../../src/core/scheduler.js";
import { ADMIN, READER, HOST, ORIGIN, T0, call, finish, harness, problem } from "./helpers.js";

describe("health and UI", () => {
  it("GET /healthz answers without a token", async () => {
    const { app } = harness();
    const res = await call(app, "GET", "/healthz", { token: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  it("GET / sends a visitor without a session to the login page", async () => {
    const { app } = harness();
    const res = await call(app, "GET", "/", { token: null });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/login");
  });

  it("serves the embedded assets with an ETag, and 304 when unchanged", async () => {
    const { app } = harness();
    const res = await call(app, "GET", "/assets/app.js", { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/javascript/);
    const etag = res.headers.get("etag")!;
    expect(etag).toMatch(/^"[0-9a-f]{20}"$/);
    expect(await res.text()).toContain("qml dashboard");
    const again = await call(app, "GET", "/assets/app.js", { token: null, headers: { "If-None-Match": etag } });
    expect(again.status).toBe(304);
    expect((await call(app, "GET", "/assets/nope.js", { token: null })).status).toBe(404);
    // Pages are served by their routes (behind the login), never as assets.
    expect((await call(app, "GET", "/assets/index.html", { token: null })).status).toBe(404);
  });

  it("answers unknown routes with a 404 problem document", async () => {
    const { app } = harness();
    const res = await call(app, "GET", "/api/nope");
    expect(res.status).toBe(404);
    expect((await problem(res)).code).toBe("NOT_FOUND");
  });
});

describe("POST /api/jobs", () => {
  it("enqueues a job and answers 201 with it", async () => {
    const { app, storage } = harness();
    const res = await call(app, "POST", "/api/jobs", {
      body: { name: "send_email", args: ["a@b.c", { n: 1 }], queue: "mail", priority: 3, maxAttempts: 5, metadata: { t: 1 } },
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string; created: boolean; job: Record<string, unknown> };
    expect(body.created).toBe(true);
    expect(body.job).toMatchObject({
      id: body.id,
      name: "send_email",
      arguments: ["a@b.c", { n: 1 }],
      queue: "mail",
      priority: 3,
      maxAttempts: 5,
      state: "enqueued",
      metadata: { t: 1 },
    });
    expect((await storage.get(body.id))?.state).toBe(JobState.Enqueued);
  });

  it("schedules with delay or runAt", async () => {
    const { app } = harness();
    const a = (await (await call(app, "POST", "/api/jobs", { body: { name: "send_email", delay: 60_000 } })).json()) as {
      job: { state: string; runAt: string };
    };
    expect(a.job.state).toBe("scheduled");
    expect(a.job.runAt).toBe(new Date(T0 + 60_000).toISOString());
    const at = new Date(T0 + 3_600_000).toISOString();
    const b = (await (await call(app, "POST", "/api/jobs", { body: { name: "send_email", runAt: at } })).json()) as { job: { state: string; runAt: string } };
    expect(b.job).toMatchObject({ state: "scheduled", runAt: at });
    const c = (await (await call(app, "POST", "/api/jobs", { body: { name: "send_email", runAt: T0 + 5000 } })).json()) as { job: { runAt: string } };
    expect(c.job.runAt).toBe(new Date(T0 + 5000).toISOString());
  });

  it("dedupes by uniqueKey: the second enqueue answers 200 with the first job", async () => {
    const { app } = harness();
    const first = (await (await call(app, "POST", "/api/jobs", { body: { name: "send_email", uniqueKey: "k1" } })).json()) as { id: string };
    const res = await call(app, "POST", "/api/jobs", { body: { name: "send_email", uniqueKey: "k1" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: first.id, created: false });
  });

  it("takes limits and dedup modes, refusing a limit of 0 or an unknown mode with 422 and storing nothing", async () => {
    const { app, storage } = harness();
    const body = {
      name: "send_email",
      uniqueKey: "digest:1",
      uniqueMode: "debounce",
      uniqueTtl: 60_000,
      concurrency: { key: "customer:42", limit: 5 },
      rateLimit: { key: "smtp", limit: 100, interval: 60_000 },
    };
    const res = await call(app, "POST", "/api/jobs", { body });
    expect(res.status).toBe(201);
    const { job } = (await res.json()) as { job: Record<string, unknown> };
    expect(job).toMatchObject({ concurrency: { key: "customer:42", limit: 5 }, rateLimit: { key: "smtp", limit: 100, interval: 60_000 } });
    const before = (await storage.stats()).total;
    for (const bad of [
      { name: "send_email", concurrency: { key: "c", limit: 0 } },
      { name: "send_email", rateLimit: { key: "r", limit: 1 } },
      { name: "send_email", concurrency: { key: "x".repeat(201), limit: 1 } },
      { name: "send_email", uniqueKey: "k", uniqueMode: "throttle" },
    ]) {
      const r = await call(app, "POST", "/api/jobs", { body: bad });
      expect(r.status).toBe(422);
    }
    expect((await storage.stats()).total).toBe(before);
  });

  it("answers malformed JSON with 400", async () => {
    const { app } = harness();
    const res = await call(app, "POST", "/api/jobs", { raw: '{"name": "send_email",', headers: { "Content-Type": "application/json" } });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const p = await problem(res);
    expect(p).toMatchObject({ status: 400, code: "BAD_REQUEST" });
    expect((await call(app, "POST", "/api/jobs", { raw: "", headers: { "Content-Type": "application/json" } })).status).toBe(400);
  });

  it("answers a body that is not JSON with 415", async () => {
    const { app } = harness();
    const res = await call(app, "POST", "/api/jobs", { raw: "name=send_email", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    expect(res.status).toBe(415);
  });

  it("answers an oversized body with 413, with or without Content-Length", async () => {
    const { app } = harness({ bodyLimit: 64 * 1024 });
    const big = { name: "send_email", args: ["x".repeat(100 * 1024)] };
    const res = await call(app, "POST", "/api/jobs", { body: big });
    expect(res.status).toBe(413);
    expect((await problem(res)).code).toBe("BODY_TOO_LARGE");
    // A streamed body carries no Content-Length: the limit counts the bytes.
    const stream = new ReadableStream({
      start(ctl) {
        for (let i = 0; i < 10; i++) ctl.enqueue(new TextEncoder().encode("x".repeat(10 * 1024)));
        ctl.close();
      },
    });
    const streamed = await app.request(`${ORIGIN}/api/jobs`, {
      method: "POST",
      headers: { Host: HOST, Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it("refuses with 413 under the default limit (1 MiB) too", async () => {
    const { app } = harness();
    const res = await call(app, "POST", "/api/jobs", { body: { name: "send_email", args: ["x".repeat(1100 * 1024)] } });
    expect(res.status).toBe(413);
  });

  it("answers a name no worker is registered for with 422", async () => {
    const { app } = harness();
    const res = await call(app, "POST", "/api/jobs", { body: { name: "no_such_job" } });
    expect(res.status).toBe(422);
    const p = await problem(res);
    expect(p.code).toBe("UNKNOWN_JOB_NAME");
    expect(p.errors?.[0]?.field).toBe("name");
  });

  it("accepts any valid name when no registry is given", async () => {
    const storage = new Storage(memoryBackend());
    const app = createApp({ storage, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
    const res = await call(app, "POST", "/api/jobs", { body: { name: "anything.at/all" } });
    expect(res.status).toBe(201);
  });

  it("answers bad queue names and other invalid fields with 422 listing each field", async () => {
    const { app } = harness();
    for (const queue of ["bad:queue", "", "x".repeat(65), "white space", "<script>"]) {
      const res = await call(app, "POST", "/api/jobs", { body: { name: "send_email", queue } });
      expect(res.status, queue).toBe(422);
      expect((await problem(res)).errors?.map((e) => e.field)).toContain("queue");
    }
    const res = await call(app, "POST", "/api/jobs", { body: { name: "send_email", args: "nope", priority: 1.5, maxAttempts: 0, extra: true } });
    expect(res.status).toBe(422);
    const fields = (await problem(res)).errors!.map((e) => e.field);
    expect(fields).toEqual(expect.arrayContaining(["args", "priority", "maxAttempts", ""]));
    expect((await call(app, "POST", "/api/jobs", { body: { name: "send_email", delay: 5, runAt: T0 } })).status).toBe(422);
    expect((await call(app, "POST", "/api/jobs", { body: ["send_email"] })).status).toBe(422);
    expect((await call(app, "POST", "/api/jobs", { body: { name: "bad name" } })).status).toBe(422);
  });
});

describe("GET /api/jobs", () => {
  async function seed() {
    const h = harness();
    const { storage, clock } = h;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await storage.enqueue(new Job("send_email", [`user${i}@example.com`], { queue: i % 2 ? "mail" : "default" })));
      clock.advance(1000);
    }
    const failed = await finish(storage, clock, "build_report", ["q3"], "failed");
    clock.advance(1000);
    const scheduled = await storage.enqueue(new Job("build_report", ["later"], { delay: 3_600_000 }));
    return { ...h, ids, failed, scheduled };
  }

  type ListBody = { items: Array<Record<string, unknown>>; nextCursor: string | null };
  const list = async (app: ReturnType<typeof harness>["app"], qs: string) => {
    const res = await call(app, "GET", `/api/jobs${qs}`);
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as ListBody;
  };

  it("lists newest first, without history", async () => {
    const { app, scheduled } = await seed();
    const body = await list(app, "");
    expect(body.items).toHaveLength(7);
    expect(body.items[0]!.id).toBe(scheduled);
    expect(body.items[0]).not.toHaveProperty("history");
    expect(body.nextCursor).toBeNull();
  });

  it("filters by state (one, many, repeated), queue, name and free text", async () => {
    const { app, ids, failed, scheduled } = await seed();
    expect((await list(app, "?state=failed")).items.map((j) => j.id)).toEqual([failed]);
    expect((await list(app, "?state=failed,scheduled")).items.map((j) => j.id).sort()).toEqual([failed, scheduled].sort());
    expect((await list(app, "?state=failed&state=scheduled")).items).toHaveLength(2);
    expect((await list(app, "?queue=mail")).items.map((j) => j.id).sort()).toEqual([ids[1], ids[3]].sort());
    expect((await list(app, "?name=build_report")).items).toHaveLength(2);
    expect((await list(app, "?q=USER3")).items.map((j) => j.id)).toEqual([ids[3]]);
    expect((await list(app, "?q=" + ids[2]!.slice(0, 13))).items.map((j) => j.id)).toEqual([ids[2]]);
  });

  it("pages with a cursor, each job once", async () => {
    const { app } = await seed();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const body: ListBody = await list(app, `?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      seen.push(...body.items.map((j) => j.id as string));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(4);
    expect(new Set(seen).size).toBe(7);
  });

  it("sorts by runAt ascending", async () => {
    const { app, scheduled } = await seed();
    const items = (await list(app, "?sort=runAt&order=asc")).items;
    expect(items.at(-1)!.id).toBe(scheduled);
    const runAts = items.map((j) => Date.parse(j.runAt as string));
    expect([...runAts].sort((a, b) => a - b)).toEqual(runAts);
  });

  it("answers bad filters with 422", async () => {
    const { app } = await seed();
    for (const qs of [
      "?state=bogus",
      "?queue=bad:queue",
      "?name=%3Cscript%3E",
      "?limit=0",
      "?limit=501",
      "?limit=abc",
      "?cursor=garbage",
      "?sort=name",
      "?order=up",
      "?status=failed",
      `?q=${"x".repeat(201)}`,
    ]) {
      const res = await call(app, "GET", `/api/jobs${qs}`);
      expect(res.status, qs).toBe(422);
      expect((await problem(res)).code).toBe("VALIDATION");
    }
  });
});

describe("one job: detail and actions", () => {
  it("GET /api/jobs/:id returns arguments, result, error with stack, and history", async () => {
    const { app, storage, clock } = harness();
    const id = await finish(storage, clock, "build_report", ["q3", { deep: [1, 2] }], "failed", {
      name: "TypeError",
      message: "x is undefined",
      stack: "TypeError: x is undefined\n    at build (report.ts:3)",
    });
    const res = await call(app, "GET", `/api/jobs/${id}`);
    expect(res.status).toBe(200);
    const { job } = (await res.json()) as { job: Record<string, any> };
    expect(job.arguments).toEqual(["q3", { deep: [1, 2] }]);
    expect(job.error).toMatchObject({ name: "TypeError", message: "x is undefined", stack: expect.stringContaining("report.ts:3") });
    expect(job.history.map((h: { state: string }) => h.state)).toEqual(["enqueued", "processing", "failed"]);
    expect(job.history[2]).toMatchObject({ reason: "failed", worker: "w/1" });
    const ok = await finish(storage, clock, "send_email", [], "succeeded");
    expect(((await (await call(app, "GET", `/api/jobs/${ok}`)).json()) as { job: { result: unknown } }).job.result).toEqual({ ok: true });
  });

  it("answers an unknown id with 404", async () => {
    const { app } = harness();
    const res = await call(app, "GET", "/api/jobs/00000000-0000-0000-0000-000000000000");
    expect(res.status).toBe(404);
    expect((await problem(res)).code).toBe("NOT_FOUND");
    expect((await call(app, "GET", `/api/jobs/${"x".repeat(201)}`)).status).toBe(422);
  });

  it("retry: a failed job goes back to enqueued; other states answer 409, unknown ids 404", async () => {
    const { app, storage, clock } = harness();
    const id = await finish(storage, clock, "build_report", [], "failed");
    const res = await call(app, "POST", `/api/jobs/${id}/retry`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { job: { state: string; attempts: number } }).job).toMatchObject({ state: "enqueued", attempts: 0 });
    const again = await call(app, "POST", `/api/jobs/${id}/retry`);
    expect(again.status).toBe(409);
    expect((await problem(again)).code).toBe("INVALID_STATE");
    const ok = await finish(storage, clock, "send_email", [], "succeeded");
    expect((await call(app, "POST", `/api/jobs/${ok}/retry`)).status).toBe(409);
    expect((await call(app, "POST", "/api/jobs/nope/retry")).status).toBe(404);
  });

  it("requeue: a succeeded job runs again; an enqueued one answers 409", async () => {
    const { app, storage, clock } = harness();
    const ok = await finish(storage, clock, "send_email", [], "succeeded");
    const res = await call(app, "POST", `/api/jobs/${ok}/requeue`);
    expect(res.status).toBe(200);
    expect((await storage.get(ok))?.state).toBe(JobState.Enqueued);
    expect((await call(app, "POST", `/api/jobs/${ok}/requeue`)).status).toBe(409);
    expect((await call(app, "POST", "/api/jobs/nope/requeue")).status).toBe(404);
  });

  it("delete: soft-deletes; deleting twice answers 409; DELETE works the same", async () => {
    const { app, storage } = harness();
    const a = await storage.enqueue(new Job("send_email"));
    const res = await call(app, "POST", `/api/jobs/${a}/delete`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { job: { state: string } }).job.state).toBe("deleted");
    expect((await call(app, "POST", `/api/jobs/${a}/delete`)).status).toBe(409);
    const b = await storage.enqueue(new Job("send_email"));
    expect((await call(app, "DELETE", `/api/jobs/${b}`)).status).toBe(200);
    expect((await storage.get(b))?.state).toBe(JobState.Deleted);
    expect((await call(app, "DELETE", "/api/jobs/nope")).status).toBe(404);
  });
});

describe("bulk actions", () => {
  it("retries every failed job matching a filter", async () => {
    const { app, storage, clock } = harness();
    const failed = [await finish(storage, clock, "build_report", [1], "failed"), await finish(storage, clock, "build_report", [2], "failed")];
    const other = await finish(storage, clock, "send_email", [3], "failed");
    const res = await call(app, "POST", "/api/jobs/bulk/retry", { body: { filter: { name: "build_report" } } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ action: "retry", matched: 2, applied: 2, skipped: [], truncated: false });
    for (const id of failed) expect((await storage.get(id))?.state).toBe(JobState.Enqueued);
    expect((await storage.get(other))?.state).toBe(JobState.Failed);
  });

  it("acts on ids, reporting the ones it skipped", async () => {
    const { app, storage, clock } = harness();
    const failed = await finish(storage, clock, "build_report", [], "failed");
    const enqueued = await storage.enqueue(new Job("send_email"));
    const res = await call(app, "POST", "/api/jobs/bulk/retry", { body: { ids: [failed, enqueued, "nope"] } });
    const body = (await res.json()) as { matched: number; applied: number; skipped: Array<{ id: string; reason: string }> };
    expect(body.matched).toBe(3);
    expect(body.applied).toBe(1);
    expect(body.skipped.map((s) => s.id).sort()).toEqual([enqueued, "nope"].sort());
    const del = await call(app, "POST", "/api/jobs/bulk/delete", { body: { ids: [enqueued] } });
    expect(((await del.json()) as { applied: number }).applied).toBe(1);
    expect((await storage.get(enqueued))?.state).toBe(JobState.Deleted);
  });

  it("stops at max and says so", async () => {
    const { app, storage } = harness();
    for (let i = 0; i < 5; i++) await storage.enqueue(new Job("send_email", [i], { queue: "bulk" }));
    const res = await call(app, "POST", "/api/jobs/bulk/delete", { body: { filter: { queue: "bulk" }, max: 3 } });
    expect(await res.json()).toMatchObject({ matched: 3, applied: 3, truncated: true });
    const rest = await call(app, "POST", "/api/jobs/bulk/delete", { body: { filter: { queue: "bulk", state: "enqueued" } } });
    expect(await rest.json()).toMatchObject({ matched: 2, applied: 2, truncated: false });
  });

  it("acts on 1,000 jobs in two list pages and one batched transition (two chunks of 500, sent together)", async () => {
    class CountingBackend extends MemoryBackend {
      calls: string[] = [];
      inFlight = 0;
      maxInFlight = 0;
      override async list(...a: Parameters<MemoryBackend["list"]>) {
        this.calls.push("list");
        return super.list(...a);
      }
      override async transition(...a: Parameters<MemoryBackend["transition"]>) {
        this.calls.push(`transition:${a[0].ids.length}`);
        this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        this.inFlight--;
        return super.transition(...a);
      }
      override async get(...a: Parameters<MemoryBackend["get"]>) {
        this.calls.push("get");
        return super.get(...a);
      }
    }
    const backend = new CountingBackend();
    const storage = new Storage(backend);
    const app = createApp({ storage, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
    const ids = await storage.enqueue(Array.from({ length: 1000 }, (_, i) => new Job("send_email", [i], { queue: "bulk" })));

    backend.calls = [];
    const del = await call(app, "POST", "/api/jobs/bulk/delete", { body: { filter: { queue: "bulk" } } });
    expect(await del.json()).toEqual({ action: "delete", matched: 1000, applied: 1000, skipped: [], truncated: false });
    expect(backend.calls).toEqual(["list", "list", "transition:500", "transition:500"]);
    expect(backend.maxInFlight).toBe(2);

    // Deleted jobs cannot be retried: every one is skipped, and the report stops at 100.
    backend.calls = [];
    const retry = await call(app, "POST", "/api/jobs/bulk/retry", { body: { ids } });
    const body = (await retry.json()) as { matched: number; applied: number; skipped: Array<{ id: string; reason: string }> };
    expect(body).toMatchObject({ matched: 1000, applied: 0, truncated: false });
    expect(body.skipped).toHaveLength(100);
    expect(body.skipped[0]).toEqual({ id: ids[0], reason: expect.stringMatching(/^job is deleted; only failed or awaiting_retry/) });
    expect(backend.calls).toEqual(["transition:500", "transition:500"]);

    const requeue = await call(app, "POST", "/api/jobs/bulk/requeue", { body: { filter: { queue: "bulk", state: "deleted" }, max: 999 } });
    expect(await requeue.json()).toMatchObject({ matched: 999, applied: 999, truncated: true });
  });

  it("refuses an empty filter, ids and filter together, bad filters, and unknown actions", async () => {
    const { app } = harness();
    expect((await call(app, "POST", "/api/jobs/bulk/delete", { body: { filter: {} } })).status).toBe(422);
    expect((await call(app, "POST", "/api/jobs/bulk/delete", { body: {} })).status).toBe(422);
    expect((await call(app, "POST", "/api/jobs/bulk/delete", { body: { ids: ["a"], filter: { state: "failed" } } })).status).toBe(422);
    expect((await call(app, "POST", "/api/jobs/bulk/retry", { body: { filter: { queue: "bad:q" } } })).status).toBe(422);
    expect((await call(app, "POST", "/api/jobs/bulk/retry", { body: { filter: { state: "nope" } } })).status).toBe(422);
    expect((await call(app, "POST", "/api/jobs/bulk/retry", { raw: "{", headers: { "Content-Type": "application/json" } })).status).toBe(400);
    expect((await call(app, "POST", "/api/jobs/bulk/explode", { body: { ids: ["a"] } })).status).toBe(404);
  });
});

describe("stats and queues", () => {
  it("counts by state and by queue, and succeeded/failed per minute and per hour", async () => {
    const { app, storage, clock } = harness();
    await storage.enqueue(new Job("send_email", [], { queue: "mail" }));
    await finish(storage, clock, "build_report", [], "failed");
    clock.advance(60_000);
    await finish(storage, clock, "send_email", [], "succeeded");
    await finish(storage, clock, "send_email", [], "succeeded");
    const res = await call(app, "GET", "/api/stats?minutes=5&hours=2");
    expect(res.status).toBe(200);
    const s = (await res.json()) as {
      states: Record<string, number>;
      total: number;
      queues: Array<{ name: string }>;
      perMinute: Array<{ at: number; succeeded: number; failed: number }>;
      perHour: unknown[];
    };
    expect(s.states).toMatchObject({ enqueued: 1, failed: 1, succeeded: 2 });
    expect(s.total).toBe(4);
    expect(s.queues.map((q) => q.name)).toEqual(["finish-failed", "finish-succeeded", "mail"]);
    expect(s.perMinute).toHaveLength(5);
    expect(s.perHour).toHaveLength(2);
    expect(s.perMinute.at(-1)).toMatchObject({ succeeded: 2, failed: 0 });
    expect(s.perMinute.at(-2)).toMatchObject({ succeeded: 0, failed: 1 });
    for (const qs of ["?minutes=0", "?hours=99999", "?minutes=x", "?window=1"]) expect((await call(app, "GET", `/api/stats${qs}`)).status, qs).toBe(422);
  });

  it("GET /api/queues lists each queue with its counts and total", async () => {
    const { app, storage } = harness();
    await storage.enqueue(new Job("send_email", [], { queue: "mail" }));
    await storage.enqueue(new Job("send_email", [], { queue: "mail", delay: 1000 }));
    const body = (await (await call(app, "GET", "/api/queues")).json()) as { items: Array<{ name: string; total: number; counts: Record<string, number> }> };
    expect(body.items).toEqual([{ name: "mail", total: 2, paused: false, counts: expect.objectContaining({ enqueued: 1, scheduled: 1 }) }]);
  });
});

describe("recurring", () => {
  it("PUT creates and updates, GET lists with the next run, DELETE removes", async () => {
    const { app } = harness();
    const put = await call(app, "PUT", "/api/recurring/nightly", { body: { cron: "0 3 * * *", name: "build_report", args: ["daily"], queue: "reports" } });
    expect(put.status).toBe(200);
    const created = (await put.json()) as { recurring: Record<string, unknown> };
    expect(created.recurring).toMatchObject({
      id: "nightly",
      cron: "0 3 * * *",
      timezone: "UTC",
      name: "build_report",
      args: ["daily"],
      options: { queue: "reports" },
    });
    expect(created.recurring.nextRunAt).toBe(new Date(Date.UTC(2030, 0, 2, 3, 0, 0)).toISOString());
    const upd = await call(app, "PUT", "/api/recurring/nightly", { body: { cron: "30 4 * * *", name: "build_report", timezone: "Europe/Paris" } });
    expect(((await upd.json()) as { recurring: { cron: string; timezone: string } }).recurring).toMatchObject({ cron: "30 4 * * *", timezone: "Europe/Paris" });
    const list = (await (await call(app, "GET", "/api/recurring")).json()) as { items: Array<{ id: string }> };
    expect(list.items.map((d) => d.id)).toEqual(["nightly"]);
    expect((await call(app, "GET", "/api/recurring/nightly")).status).toBe(200);
    expect((await call(app, "GET", "/api/recurring/other")).status).toBe(404);
    expect((await call(app, "DELETE", "/api/recurring/nightly")).status).toBe(200);
    expect((await call(app, "DELETE", "/api/recurring/nightly")).status).toBe(404);
  });

  it("trigger enqueues one firing now, marked with the scheduler's recurringId plus trigger: manual", async () => {
    const { app, storage, clock } = harness();
    await call(app, "PUT", "/api/recurring/hourly", { body: { cron: "0 * * * *", name: "send_email", args: [1], metadata: { team: "mail" } } });
    const res = await call(app, "POST", "/api/recurring/hourly/trigger");
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const manual = (await storage.get(id))!;
    expect(manual.toJSON()).toMatchObject({ name: "send_email", arguments: [1], metadata: { team: "mail", recurringId: "hourly", trigger: "manual" } });
    expect(manual.metadata).not.toHaveProperty("recurring");

    // A firing of the scheduler carries the same key, so one filter finds both.
    clock.advance(3_600_000);
    expect(await new Scheduler(storage, new Emitter<JobEventMap>(), silentLogger).fireRecurring(clock.now())).toBe(1);
    const fired = (await storage.list({ name: "send_email" })).items.find((j) => j.id !== id)!;
    expect(fired.metadata).toMatchObject({ team: "mail", recurringId: "hourly" });
    expect(fired.metadata).not.toHaveProperty("trigger");
    expect((await call(app, "POST", "/api/recurring/none/trigger")).status).toBe(404);
  });

  it("answers an invalid cron, an unknown name, a bad id or queue with 422", async () => {
    const { app } = harness();
    const cron = await call(app, "PUT", "/api/recurring/r1", { body: { cron: "61 * * * *", name: "send_email" } });
    expect(cron.status).toBe(422);
    expect((await problem(cron)).errors?.[0]?.field).toBe("cron");
    expect((await call(app, "PUT", "/api/recurring/r1", { body: { cron: "not a cron", name: "send_email" } })).status).toBe(422);
    const name = await call(app, "PUT", "/api/recurring/r1", { body: { cron: "* * * * *", name: "unknown_job" } });
    expect(name.status).toBe(422);
    expect((await problem(name)).code).toBe("UNKNOWN_JOB_NAME");
    expect((await call(app, "PUT", "/api/recurring/bad%20id", { body: { cron: "* * * * *", name: "send_email" } })).status).toBe(422);
    expect((await call(app, "PUT", "/api/recurring/r1", { body: { cron: "* * * * *", name: "send_email", queue: "a:b" } })).status).toBe(422);
    expect((await call(app, "PUT", "/api/recurring/r1", { body: { cron: "* * * * *", name: "send_email", timezone: "Mars/Olympus" } })).status).toBe(422);
    expect((await call(app, "PUT", "/api/recurring/r1", { raw: "[", headers: { "Content-Type": "application/json" } })).status).toBe(400);
    expect(((await (await call(app, "GET", "/api/recurring")).json()) as { items: unknown[] }).items).toEqual([]);
  });
});

describe("store failures", () => {
  class DownBackend extends MemoryBackend {
    override async list(): Promise<never> {
      throw new StorageUnavailableError("connection refused to 10.0.0.7:6379 password=hunter2", { retryAfterMs: 2500 });
    }
    override async stats(): Promise<never> {
      throw new Error("driver exploded: postgres://user:secret@db/prod");
    }
  }

  it("maps StorageUnavailableError to 503 with Retry-After, without the driver's message", async () => {
    const app = createApp({ storage: new Storage(new DownBackend()), auth: { adminTokens: [ADMIN] }, logger: silentLogger });
    const res = await call(app, "GET", "/api/jobs");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("3");
    const text = await res.text();
    expect(text).not.toContain("hunter2");
    expect(JSON.parse(text)).toMatchObject({ status: 503, code: "STORAGE_UNAVAILABLE" });
  });

  it("maps an unexpected error to a 500 that reveals nothing, and logs the error itself (stack and all)", async () => {
    const lines: string[] = [];
    const logger = new JsonLogger("info", { component: "http" }, (line) => lines.push(line));
    const app = createApp({ storage: new Storage(new DownBackend()), auth: { adminTokens: [ADMIN] }, logger });
    const res = await call(app, "GET", "/api/stats");
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toContain("secret");
    expect(JSON.parse(text)).toMatchObject({ status: 500, code: "INTERNAL", detail: "internal error" });
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({
        level: "error",
        msg: "dashboard request failed",
        error: expect.objectContaining({ name: "Error", message: expect.stringContaining("driver exploded"), stack: expect.stringContaining("stats") }),
      }),
    ]);
  });
});

describe("cancel", () => {
  it("POST /api/jobs/:id/cancel ends an unfinished job, saying who; 409 for a finished one; bulk cancel by filter", async () => {
    const { app, storage } = harness();
    const a = await storage.enqueue(new Job("send_email", ["a"], { delay: 60_000 }));
    const res = await call(app, "POST", `/api/jobs/${a}/cancel`, { token: ADMIN });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { job: { state: string; history: Array<{ reason?: string }> } };
    expect(body.job.state).toBe("deleted");
    expect(body.job.history.at(-1)!.reason).toBe("cancelled by api (admin)");
    expect((await call(app, "POST", `/api/jobs/${a}/cancel`, { token: ADMIN })).status).toBe(409);
    expect((await call(app, "POST", `/api/jobs/${a}/cancel`, { token: READER })).status).toBe(403);
    await storage.enqueue([new Job("send_email", ["b"]), new Job("send_email", ["c"], { queue: "mail" })]);
    const bulk = await call(app, "POST", "/api/jobs/bulk/cancel", { token: ADMIN, body: { filter: { queue: "mail" } } });
    expect(await bulk.json()).toMatchObject({ action: "cancel", matched: 1, applied: 1 });
    expect((await storage.stats()).states).toMatchObject({ deleted: 2, enqueued: 1 });
  });
});

describe("paused queues", () => {
  it("POST /api/queues/:name/pause and /resume toggle a queue for every server; GET /api/queues and the live snapshot say so", async () => {
    const { app, storage } = harness();
    await storage.enqueue(new Job("send_email", ["a"], { queue: "mail" }));
    expect((await call(app, "POST", "/api/queues/mail/pause", { token: READER })).status).toBe(403);
    expect(await (await call(app, "POST", "/api/queues/mail/pause", { token: ADMIN })).json()).toEqual({ name: "mail", paused: true });
    expect(await storage.pausedQueues()).toEqual(["mail"]);
    await call(app, "POST", "/api/queues/later/pause", { token: ADMIN });
    const queues = (await (await call(app, "GET", "/api/queues", { token: READER })).json()) as {
      items: Array<{ name: string; paused: boolean; total: number }>;
    };
    expect(queues.items.map((q) => [q.name, q.paused, q.total])).toEqual([
      ["later", true, 0],
      ["mail", true, 1],
    ]);
    const live = (await (await call(app, "GET", "/api/live", { token: READER })).json()) as { paused: string[] };
    expect(live.paused).toEqual(["later", "mail"]);
    await call(app, "POST", "/api/queues/mail/resume", { token: ADMIN });
    expect(await storage.pausedQueues()).toEqual(["later"]);
    expect((await call(app, "POST", "/api/queues/a:b/pause", { token: ADMIN })).status).toBe(422);
  });
});
