/**
 * Durable steps on SQLite beyond the shared suite (steps-conformance.ts):
 * migration 0006 on a database at version 5; the saved history entry and
 * steps as given; steps kept through the statements that change a job's
 * state and none read for a job without them; the waiter index's purge and
 * query plans; a save refused for size (D1's row limit) failing the job.
 */
import { afterAll, describe, expect, it } from "vitest";
import {
  BackgroundJobServer,
  Job,
  JobState,
  ManualClock,
  RetryPolicy,
  ServerConfig,
  StepResultTooLargeError,
  Storage,
  WorkerRegistry,
  WorkerResult,
  silentLogger,
  type StepRecord,
  type WorkerContext,
} from "../../src/index.js";
import { BetterSqlite3Driver, SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import type { SqlStatement, SqliteDriver, SqliteRow } from "../../src/adapters/storage/sqlite/driver.js";
import { SCHEMA_VERSION } from "../../src/adapters/storage/sqlite/migrate.js";
import { MIGRATIONS } from "../../src/adapters/storage/sqlite/migrations.generated.js";
import * as sql from "../../src/adapters/storage/sqlite/statements/index.js";
import { TempFiles } from "./helpers.js";

const files = new TempFiles();
afterAll(() => files.removeAll());
const T0 = Date.UTC(2030, 0, 1);
const LEASE = 30_000;

async function fresh(clock = new ManualClock(T0)) {
  const backend = sqliteBackend(new SqliteConfig(files.next()).withAutoMigrate(true));
  const storage = new Storage(backend, { clock });
  await storage.migrate();
  const db = backend.sqlite as BetterSqlite3Driver;
  const q = async (text: string, params: Array<string | number> = []) => (await db.batch([{ sql: text, params }]))[0]!;
  return { storage, clock, backend, q };
}

const claim = (storage: Storage, now: number, limit = 10) => storage.driver.claim({ queues: ["default"], limit, owner: "w1", leaseMs: LEASE, now });

describe("migration 0006 (steps) on a database at version 5", () => {
  it("adds qml_jobs.steps (null on every job) and qml_waiters, and the jobs run on with steps", async () => {
    expect(SCHEMA_VERSION).toBe(6);
    const path = files.next();
    const d = new BetterSqlite3Driver({ path });
    const statements: SqlStatement[] = [{ sql: sql.migrationsTable }];
    for (const m of MIGRATIONS.slice(0, 5))
      statements.push({ sql: sql.recordMigration, params: [m.version, m.name] }, ...m.statements.map((text) => ({ sql: text })));
    const h = JSON.stringify({ state: "enqueued", at: T0, reason: "enqueued" });
    statements.push(
      {
        sql: "INSERT INTO qml_jobs (id, name, queue, state, max_attempts, created_at, updated_at, run_at, args, history, hn) VALUES (?1, 'legacy', 'default', 'enqueued', 3, ?2, ?2, ?2, '[]', ?3, 1)",
        params: ["old-1", T0, h],
      },
      {
        sql: "INSERT INTO qml_jobs (id, name, queue, state, max_attempts, created_at, updated_at, run_at, args, history, hn) VALUES (?1, 'legacy', 'default', 'enqueued', 3, ?2, ?2, ?2, '[]', ?3, 1)",
        params: ["old-2", T0 + 1, h],
      },
    );
    await d.batch(statements);
    const before = (await d.batch([{ sql: "SELECT * FROM qml_jobs ORDER BY seq" }]))[0]!;
    await d.close();

    const backend = sqliteBackend(new SqliteConfig(path).withAutoMigrate(true));
    const clock = new ManualClock(T0 + 1000);
    const storage = new Storage(backend, { clock });
    await storage.migrate();
    const m = backend.sqlite as BetterSqlite3Driver;
    const q = async (text: string) => (await m.batch([{ sql: text }]))[0]!;
    expect(await q("SELECT max(version) AS v FROM qml_migrations")).toEqual([{ v: 6 }]);
    expect(await q("SELECT * FROM qml_jobs ORDER BY seq")).toEqual(before.map((row) => ({ ...row, steps: null })));
    expect(await q("SELECT count(*) AS n FROM qml_waiters")).toEqual([{ n: 0 }]);
    expect((await q("SELECT name FROM sqlite_master WHERE tbl_name = 'qml_waiters' AND type = 'index' AND sql IS NOT NULL")).map((r) => r.name)).toEqual([
      "qml_waiters_expires_at",
    ]);
    expect(await q("PRAGMA integrity_check")).toEqual([{ integrity_check: "ok" }]);

    const [r] = await claim(storage, clock.now(), 1);
    expect(r!.id).toBe("old-1");
    expect(r!.steps).toBeUndefined();
    const steps: StepRecord[] = [{ id: "a", kind: "run", status: "completed", startedAt: clock.now(), result: 1 }];
    expect(
      await storage.driver.saveSteps({ id: "old-1", token: r!.leaseToken }, steps, { state: JobState.Processing, at: clock.now(), reason: "a" }, clock.now()),
    ).toBe(true);
    expect((await storage.get("old-1"))!.steps).toEqual(steps);
    expect((await storage.get("old-2"))!.steps).toEqual([]);
    await storage.close();
  });
});

describe("steps as the store keeps them", () => {
  it("the history entry is written as given: reason and worker only when present", async () => {
    const { storage, clock } = await fresh();
    const id = await storage.enqueue(new Job("wf"));
    const [r] = await claim(storage, clock.now());
    const lease = { id, token: r!.leaseToken };
    await storage.driver.saveSteps(lease, [], { state: JobState.Processing, at: clock.now() }, clock.now());
    await storage.driver.saveSteps(lease, [], { state: JobState.Processing, at: clock.now() + 1, reason: 'r ✓ "q"\n', worker: "w1/2" }, clock.now() + 1);
    const [got] = await storage.driver.get([id]);
    expect(got!.history.slice(-2)).toEqual([
      { state: JobState.Processing, at: clock.now() },
      { state: JobState.Processing, at: clock.now() + 1, reason: 'r ✓ "q"\n', worker: "w1/2" },
    ]);
    expect(got!.updatedAt).toBe(clock.now() + 1);
    // An empty list is kept as one (the job reached no step yet), not as none.
    expect(got!.steps).toEqual([]);
  });

  it("keeps results byte for byte (U+0000, astral characters, nested nulls, large numbers)", async () => {
    const { storage, clock } = await fresh();
    const id = await storage.enqueue(new Job("wf"));
    const [r] = await claim(storage, clock.now());
    const steps: StepRecord[] = [
      { id: "nul", kind: "run", status: "completed", startedAt: clock.now(), result: { s: "a\u0000b", e: "😀𝄞", n: [null, 9007199254740991, -0.5, 1e-7] } },
      { id: "big", kind: "run", status: "completed", startedAt: clock.now(), result: "x".repeat(60 * 1024) },
    ];
    await storage.driver.saveSteps({ id, token: r!.leaseToken }, steps, { state: JobState.Processing, at: clock.now(), reason: "s" }, clock.now());
    expect((await storage.driver.get([id]))[0]!.steps).toEqual(steps);
  });

  it("steps outlive a reclaim, a transition, a suspension and a release, and come back with claim, get, list and transition", async () => {
    const { storage, clock } = await fresh();
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 10 }));
    const plain = await storage.enqueue(new Job("plain", [], { priority: -1 }));
    let [r] = await claim(storage, clock.now(), 1);
    const steps: StepRecord[] = [{ id: "a", kind: "sleep", status: "waiting", startedAt: clock.now(), until: clock.now() + 10 }];
    await storage.driver.saveSteps({ id, token: r!.leaseToken }, steps, { state: JobState.Processing, at: clock.now(), reason: "a" }, clock.now());

    // Lease lost: reclaimed to enqueued, then claimed again with them.
    clock.advance(LEASE + 1);
    expect(await storage.driver.reclaimExpired(clock.now(), 10)).toBe(1);
    [r] = await claim(storage, clock.now(), 1);
    expect(r!.id).toBe(id);
    expect(r!.steps).toEqual(steps);
    // Suspended, then released.
    await storage.driver.complete([{ id, token: r!.leaseToken, state: JobState.Scheduled, runAt: clock.now(), reason: "sleep", worker: "w1/1" }], clock.now());
    [r] = await claim(storage, clock.now(), 1);
    expect(r!.steps).toEqual(steps);
    await storage.driver.complete([{ id, token: r!.leaseToken, state: JobState.Enqueued, reason: "shutdown", worker: "w1/1" }], clock.now());
    // A transition's result carries them; list does.
    const [t] = await storage.driver.transition({ ids: [id], from: [JobState.Enqueued], to: JobState.Deleted, reason: "op", now: clock.now() });
    expect(t!.applied).toBe(true);
    expect(t!.record.steps).toEqual(steps);
    const page = await storage.driver.list({}, { limit: 10, sort: "createdAt", order: "asc" });
    const listed = new Map(page.items.map((x) => [x.id, x.steps]));
    expect(listed.get(id)).toEqual(steps);
    expect(listed.has(plain)).toBe(true);
    expect(listed.get(plain)).toBeUndefined();
    // A job that never saved any reads back without the key.
    const [p] = await claim(storage, clock.now(), 1);
    expect(p!.id).toBe(plain);
    expect("steps" in p!).toBe(false);
  });

  it("a suspension keeps the job's error and result and writes no error of its own", async () => {
    const { storage, clock } = await fresh();
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 5 }));
    let [r] = await claim(storage, clock.now());
    await storage.driver.complete(
      [{ id, token: r!.leaseToken, state: JobState.AwaitingRetry, runAt: clock.now(), error: { name: "E", message: "first" }, reason: "retry", worker: "w" }],
      clock.now(),
    );
    [r] = await claim(storage, clock.now());
    expect(r!.attempts).toBe(2);
    await storage.driver.complete(
      [{ id, token: r!.leaseToken, state: JobState.Scheduled, runAt: clock.now() + 5, error: { name: "X", message: "ignored" }, reason: "sleep", worker: "w" }],
      clock.now(),
    );
    const [got] = await storage.driver.get([id]);
    expect(got!.state).toBe(JobState.Scheduled);
    expect(got!.error).toEqual({ name: "E", message: "first" });
    expect(got!.attempts).toBe(1);
    expect(got!.runAt).toBe(clock.now() + 5);
    expect(got!.finishedAt).toBeUndefined();
    expect(got!.history.at(-1)).toEqual({ state: JobState.Scheduled, at: clock.now(), reason: "sleep", worker: "w" });
  });
});

describe("the event-waiter index on SQLite", () => {
  it("each addWaiter deletes up to 100 expired rows of any event, never a live one", async () => {
    const { storage, clock, q } = await fresh();
    const d = storage.driver;
    const now = clock.now();
    for (let i = 0; i < 250; i++) await d.addWaiter(`e${i % 3}`, `job-${i}`, now + 10, now);
    await d.addWaiter("live", "job-live", now + 1_000_000, now);
    clock.advance(10);
    await d.addWaiter("other", "job-x", clock.now() + 5, clock.now());
    expect(await q("SELECT count(*) AS n FROM qml_waiters")).toEqual([{ n: 152 }]);
    await d.addWaiter("other", "job-y", clock.now() + 5, clock.now());
    await d.addWaiter("other", "job-z", clock.now() + 5, clock.now());
    expect(await q("SELECT event, job_id FROM qml_waiters ORDER BY event, job_id")).toEqual([
      { event: "live", job_id: "job-live" },
      { event: "other", job_id: "job-x" },
      { event: "other", job_id: "job-y" },
      { event: "other", job_id: "job-z" },
    ]);
    // A pair re-added after it expired is written, not purged by its own batch.
    clock.advance(5);
    await d.addWaiter("other", "job-x", clock.now() + 5, clock.now());
    expect(await d.waiters("other", clock.now(), 10)).toEqual(["job-x"]);
    expect(await d.waiters("live", clock.now(), 10)).toEqual(["job-live"]);
  });

  it("event names are compared exactly (case, Unicode normalisation, LIKE characters), up to 200 characters", async () => {
    const { storage, clock } = await fresh();
    const d = storage.driver;
    const now = clock.now();
    const long = "é".repeat(200);
    await d.addWaiter("Order.Approved", "a", now + 100, now);
    await d.addWaiter("order.approved", "b", now + 100, now);
    await d.addWaiter("caf\u00e9", "c", now + 100, now);
    await d.addWaiter("cafe\u0301", "d", now + 100, now);
    await d.addWaiter("100%_done", "e", now + 100, now);
    await d.addWaiter(long, "f", now + 100, now);
    expect(await d.waiters("order.approved", now, 10)).toEqual(["b"]);
    expect(await d.waiters("Order.Approved", now, 10)).toEqual(["a"]);
    expect(await d.waiters("caf\u00e9", now, 10)).toEqual(["c"]);
    expect(await d.waiters("cafe\u0301", now, 10)).toEqual(["d"]);
    expect(await d.waiters("100%_done", now, 10)).toEqual(["e"]);
    expect(await d.waiters("100x_done", now, 10)).toEqual([]);
    expect(await d.waiters(long, now, 10)).toEqual(["f"]);
    expect(await d.waiters("x", now, 0)).toEqual([]);
    // Many ids in one removal (one JSON parameter, not one per id).
    const ids = Array.from({ length: 500 }, (_, i) => `job-${i}`);
    for (const id of ids.slice(0, 5)) await d.addWaiter("bulk", id, now + 100, now);
    await d.removeWaiters("bulk", ids);
    expect(await d.waiters("bulk", now, 10)).toEqual([]);
  });

  it("reads its event's rows through the primary key and purges through the expiry index", async () => {
    const { q } = await fresh();
    const plan = async (text: string) => (await q(`EXPLAIN QUERY PLAN ${text}`, [])).map((r) => String(r.detail)).join(" | ");
    expect(await plan(sql.waiters.replace(/\?1/g, "'e'").replace(/\?2/g, "0").replace(/\?3/g, "10"))).toMatch(
      /SEARCH qml_waiters USING PRIMARY KEY \(event=\?\)/,
    );
    expect(await plan(sql.waitersPurge.replace(/\?1/g, "'e'").replace(/\?2/g, "'j'").replace(/\?3/g, "0"))).toMatch(/qml_waiters_expires_at/);
    expect(await plan(sql.removeWaiters.replace(/\?1/g, "'e'").replace(/\?2/g, `'["a"]'`))).toMatch(/PRIMARY KEY/);
  });
});

/**
 * A better-sqlite3 driver that refuses any string parameter over `limit`
 * characters as D1 refuses a row over 2 MB ("string or blob too big").
 */
class RowLimitDriver implements SqliteDriver {
  readonly kind = "row-limit";
  readonly ordered = true;
  constructor(
    private readonly inner: BetterSqlite3Driver,
    private readonly limit: number,
  ) {}
  async batch(statements: readonly SqlStatement[]): Promise<SqliteRow[][]> {
    if (statements.some((s) => s.params?.some((p) => typeof p === "string" && p.length > this.limit)))
      throw new Error("D1_ERROR: string or blob too big: SQLITE_TOOBIG");
    return this.inner.batch(statements);
  }
  exec(text: string): Promise<void> {
    return this.inner.exec(text);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe("steps over what one row holds (D1: 2 MB)", () => {
  it("saveSteps rejects with a StepResultTooLargeError that says why", async () => {
    const inner = new BetterSqlite3Driver({ path: files.next() });
    const clock = new ManualClock(T0);
    const storage = new Storage(sqliteBackend(new SqliteConfig().withDriver(new RowLimitDriver(inner, 1000)).withAutoMigrate(true)), { clock });
    await storage.migrate();
    const id = await storage.enqueue(new Job("wf"));
    const [r] = await claim(storage, clock.now());
    const steps: StepRecord[] = [{ id: "huge", kind: "run", status: "completed", startedAt: clock.now(), result: "x".repeat(2000) }];
    const err = await storage.driver
      .saveSteps({ id, token: r!.leaseToken }, steps, { state: JobState.Processing, at: clock.now() }, clock.now())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepResultTooLargeError);
    expect((err as StepResultTooLargeError).stepId).toBe("huge");
    expect((err as Error).message).toMatch(/1 steps are \d+ bytes serialised/);
    expect((await storage.get(id))!.steps).toEqual([]);
    await storage.close();
    await inner.close();
  });

  it("the job fails at once (not retried), its steps as last saved", async () => {
    const inner = new BetterSqlite3Driver({ path: files.next() });
    const clock = new ManualClock(T0);
    const storage = new Storage(sqliteBackend(new SqliteConfig().withDriver(new RowLimitDriver(inner, 150_000)).withAutoMigrate(true)), { clock });
    await storage.migrate();
    let runs = 0;
    const registry = new WorkerRegistry().register("wf", async (_job: Job, ctx: WorkerContext) => {
      runs++;
      for (let i = 0; i < 5; i++) await ctx.step.run(`part-${i}`, () => "y".repeat(50_000));
      return WorkerResult.success();
    });
    const id = await storage.enqueue(new Job("wf", [], { maxAttempts: 3, retry: RetryPolicy.fixed(0) }));
    const server = new BackgroundJobServer(storage, registry, new ServerConfig("big").workerCount(1).pollingInterval(10).clock(clock).logger(silentLogger));
    await server.start();
    try {
      const end = Date.now() + 10_000;
      let job = await storage.get(id);
      while (job?.state !== JobState.Failed && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 10));
        job = await storage.get(id);
      }
      expect(job!.state).toBe(JobState.Failed);
      expect(job!.attempts).toBe(1);
      expect(runs).toBe(1);
      expect(job!.error?.name).toBe("StepResultTooLargeError");
      expect(job!.steps.map((s) => s.id)).toEqual(["part-0", "part-1"]);
    } finally {
      await server.stop();
      await storage.close();
      await inner.close();
    }
  });
});
