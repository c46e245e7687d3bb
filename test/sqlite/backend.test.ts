/**
 * What the SQLite backend promises beyond the shared suite: the driver's
 * settings (WAL, synchronous NORMAL, busy timeout) and one transaction per
 * driver method, the claim on its index, retention riding along on writes,
 * migrations applied once (also by two starters at once), jobs that outlive
 * the process, calls that keep their order, and a locked database reported
 * as StorageUnavailableError.
 */
import { afterAll, describe, expect, it } from "vitest";
import { Job, JobState, ManualClock, Storage, StorageUnavailableError, memoryBackend, type JobRecord } from "../../src/index.js";
import { RATE_COUNT_KEEP_MS, type OutcomeState } from "../../src/core/driver.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { BetterSqlite3Driver, SqliteConfig, sqliteBackend, type SqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { SCHEMA_VERSION } from "../../src/adapters/storage/sqlite/migrate.js";
import { MIGRATIONS } from "../../src/adapters/storage/sqlite/migrations.generated.js";
import * as sql from "../../src/adapters/storage/sqlite/statements/index.js";
import { TempFiles } from "./helpers.js";

const files = new TempFiles();
afterAll(() => files.removeAll());
const HOUR = 3_600_000;
const T0 = Date.UTC(2030, 0, 1);

function open(configure: (c: SqliteConfig) => SqliteConfig = (c) => c, path = files.next(), clock = new ManualClock(T0)) {
  const backend: SqliteBackend = sqliteBackend(configure(new SqliteConfig(path)));
  return { backend, storage: new Storage(backend, { clock }), clock, path };
}

function driverOf(backend: SqliteBackend): BetterSqlite3Driver {
  return backend.sqlite as BetterSqlite3Driver;
}

async function finish(storage: Storage, clock: ManualClock, n: number, state: OutcomeState = JobState.Succeeded): Promise<string[]> {
  const ids = await storage.enqueue(Array.from({ length: n }, (_, i) => new Job("h", [i])));
  const claimed = await storage.driver.claim({ queues: ["default"], limit: n, owner: "w", leaseMs: 60_000, now: clock.now() });
  await storage.driver.complete(
    claimed.map((r) => ({ id: r.id, token: r.leaseToken, state, reason: "done", worker: "w" })),
    clock.now(),
  );
  return ids;
}

describe("the better-sqlite3 driver", () => {
  it("opens the file in WAL mode with synchronous NORMAL and the busy timeout, creating its folder", async () => {
    const path = `${files.next().replace(/qml\.db$/, "")}nested/deeper/jobs.db`;
    const { backend, storage } = open((c) => c.withBusyTimeout(1234), path);
    await storage.migrate();
    const d = driverOf(backend);
    expect(d.pragma("journal_mode")).toBe("wal");
    expect(d.pragma("synchronous")).toBe(1); // NORMAL
    expect(d.pragma("busy_timeout")).toBe(1234);
    await storage.close();
  });

  it("runs each driver method as one transaction: one commit per claim batch and per completion batch", async () => {
    const { backend, storage, clock } = open();
    await storage.migrate();
    const d = driverOf(backend);
    const commits = async (fn: () => Promise<unknown>) => {
      const before = d.commits;
      await fn();
      return d.commits - before;
    };
    expect(await commits(() => storage.enqueue(Array.from({ length: 300 }, (_, i) => new Job("c", [i]))))).toBe(1);
    let claimed: JobRecord[] = [];
    expect(
      await commits(async () => {
        claimed = await storage.driver.claim({ queues: ["default"], limit: 250, owner: "w", leaseMs: 30_000, now: clock.now() });
      }),
    ).toBe(1);
    expect(claimed).toHaveLength(250);
    const outcomes = claimed.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" }));
    expect(await commits(() => storage.driver.complete(outcomes, clock.now()))).toBe(1);
    expect(await commits(() => storage.driver.extendLeases([{ id: claimed[0]!.id, token: 1 }], 30_000, clock.now()))).toBe(1);
    expect(await commits(() => storage.driver.reclaimExpired(clock.now(), 100))).toBe(1);
    // Reads take no write transaction at all.
    expect(await commits(() => storage.stats())).toBe(0);
    expect(await commits(() => storage.list({ state: JobState.Succeeded }))).toBe(0);
    await storage.close();
  });

  it("binds ?N parameters from an array, and the module can be passed in", async () => {
    const { createRequire } = await import("node:module");
    const module = createRequire(import.meta.url)("better-sqlite3");
    const d = new BetterSqlite3Driver({ path: ":memory:", module });
    const [[row]] = (await d.batch([{ sql: "SELECT ?2 AS b, ?1 AS a, ?2 || ?1 AS ba", params: ["x", "y"] }])) as [[Record<string, unknown>]];
    expect(row).toEqual({ b: "y", a: "x", ba: "yx" });
    await d.exec("CREATE TABLE t (v INTEGER)");
    // All or none: a failing statement rolls back the ones before it.
    await expect(d.batch([{ sql: "INSERT INTO t VALUES (1)" }, { sql: "INSERT INTO nope VALUES (2)" }])).rejects.toThrow(/no such table/);
    expect(await d.batch([{ sql: "SELECT count(*) AS n FROM t" }])).toEqual([[{ n: 0 }]]);
    await d.close();
    await d.close();
  });

  it("a write that waits longer than the busy timeout fails with StorageUnavailableError, then works once the lock is gone", async () => {
    const { storage, path } = open((c) => c.withBusyTimeout(50));
    await storage.migrate();
    const other = new BetterSqlite3Driver({ path });
    await other.exec("BEGIN IMMEDIATE");
    await expect(storage.enqueue(new Job("locked", []))).rejects.toBeInstanceOf(StorageUnavailableError);
    // Reads do not wait for a writer (WAL).
    expect((await storage.stats()).total).toBe(0);
    await other.exec("COMMIT");
    await other.close();
    await storage.enqueue(new Job("locked", []));
    expect((await storage.stats()).total).toBe(1);
    await storage.close();
  });

  it("says so when the tables are missing, and when the file cannot be opened", async () => {
    const { storage } = open();
    await expect(storage.enqueue(new Job("x", []))).rejects.toMatchObject({ name: "ConfigError", message: /call migrate\(\)/ });
    await storage.close();
    const blocked = files.next();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(`${blocked}.dir`, "a file where a folder should be");
    const bad = open((c) => c, `${blocked}.dir/jobs.db`);
    await expect(bad.storage.migrate()).rejects.toMatchObject({ name: "ConfigError" });
  });
});

describe("the config", () => {
  it("reads the environment through the table, and refuses values out of bounds", () => {
    expect(SqliteConfig.fromEnv({ QML_SQLITE_PATH: "/var/lib/qml/jobs.db", QML_MAX_FINISHED_JOBS: "5", QML_FINISHED_JOB_TTL_MS: "0" }).resolve()).toMatchObject(
      {
        path: "/var/lib/qml/jobs.db",
        maxFinishedJobs: 5,
        finishedJobTtlMs: 0,
      },
    );
    expect(SqliteConfig.fromEnv({}).resolve().path).toBe("./data/qml.db");
    expect(() => new SqliteConfig("")).toThrow(/path/);
    expect(() => new SqliteConfig("x.db").withMaxFinishedJobs(-1)).toThrow(/maxFinishedJobs/);
    expect(() => new SqliteConfig("x.db").withFinishedJobTtl(1.5)).toThrow(/finishedJobTtl/);
    expect(() => new SqliteConfig("x.db").withBusyTimeout(-1)).toThrow(/busyTimeout/);
    expect(() => new SqliteConfig().withDriver({} as never)).toThrow(/SqliteDriver/);
    expect(() => sqliteBackend(new SqliteConfig())).toThrow(/no database/);
  });
});

describe("the claim", () => {
  it("walks the ready index per queue and updates by rowid (no scan of the table)", async () => {
    const { backend, storage } = open();
    await storage.migrate();
    const d = driverOf(backend);
    const plan = async (text: string, params: unknown[]) =>
      ((await d.batch([{ sql: `EXPLAIN QUERY PLAN ${text}`, params: params as string[] }]))[0] as Array<{ detail: string }>).map((r) => r.detail);
    const batch = sql.claim(2);
    const claim = await plan(batch.texts[0]!, ['["a","b"]', 10, T0]);
    expect(claim.filter((l) => /USING (COVERING )?INDEX qml_jobs_ready/.test(l))).toHaveLength(2);
    expect(claim.filter((l) => /USING INDEX qml_jobs_delayed_queue/.test(l))).toHaveLength(2);
    expect(claim.some((l) => /^SCAN qml_jobs\b/.test(l))).toBe(false);
    const update = await plan(batch.texts[batch.returning]!, [T0, "w", 1000]);
    expect(update.some((l) => /INTEGER PRIMARY KEY \(rowid=\?\)/.test(l))).toBe(true);
    expect(update.some((l) => /^SCAN qml_jobs\b/.test(l))).toBe(false);
    const complete = await plan(sql.completeUpdate, ["[]", T0]);
    expect(complete.some((l) => /SEARCH qml_jobs USING INDEX sqlite_autoindex_qml_jobs_1 \(id=\?\)/.test(l))).toBe(true);
    await storage.close();
  });

  it("spells out any number of queues in compounds of at most 5 terms (D1's limit), in queue order", async () => {
    // Terms of each compound: UNION ALLs at the same depth of parentheses.
    const text = sql.claim(12).texts[0]!;
    const counts = new Map<string, number>();
    const stack: number[] = [0];
    let id = 0;
    for (let i = 0; i < text.length; i++) {
      if (text[i] === "(") stack.push(++id);
      else if (text[i] === ")") stack.pop();
      else if (text.startsWith("UNION ALL", i)) counts.set(String(stack.at(-1)), (counts.get(String(stack.at(-1))) ?? 1) + 1);
    }
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(5);
    const { storage, clock } = open((c) => c.withAutoMigrate(true));
    const queues = Array.from({ length: 12 }, (_, i) => `q${i}`);
    const ids = new Map<string, string>();
    for (const q of [...queues].reverse()) ids.set(q, await storage.enqueue(new Job("q", [], { queue: q })));
    const got = await storage.driver.claim({ queues, limit: 12, owner: "w", leaseMs: 1000, now: clock.now() });
    expect(got.map((r) => r.id)).toEqual(queues.map((q) => ids.get(q)));
    await storage.close();
  });

  it("takes a due delayed job of a first queue before ready jobs of the next", async () => {
    const { storage, clock } = open((c) => c.withAutoMigrate(true));
    const later = await storage.enqueue(new Job("q", [], { queue: "first", delay: 1000 }));
    const ready = await storage.enqueue(new Job("q", [], { queue: "second" }));
    clock.advance(1000);
    const got = await storage.driver.claim({ queues: ["first", "second"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() });
    expect(got.map((r) => r.id)).toEqual([later]);
    expect(got[0]!.history.map((h) => h.state)).toEqual([JobState.Scheduled, JobState.Enqueued, JobState.Processing]);
    expect((await storage.get(ready))!.state).toBe(JobState.Enqueued);
    await storage.close();
  });

  it("keeps the last HISTORY_LIMIT entries when a claim appends two at the limit", async () => {
    const { storage, clock } = open((c) => c.withAutoMigrate(true));
    const id = await storage.enqueue(new Job("loop", [], { maxAttempts: 1000 }));
    for (let i = 0; i < 30; i++) {
      const [r] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() });
      await storage.driver.complete(
        [{ id, token: r!.leaseToken, state: JobState.AwaitingRetry, runAt: clock.now() + 10, reason: `retry ${i}`, worker: "w" }],
        clock.now(),
      );
      clock.advance(10);
    }
    const h = (await storage.get(id))!.history;
    expect(h).toHaveLength(HISTORY_LIMIT);
    expect(h.at(-1)!.reason).toBe("retry 29");
    expect(h.at(-2)!.state).toBe(JobState.Processing);
    expect(h.at(-3)!.reason).toBe("retry due");
    await storage.close();
  });
});

describe("retention and housekeeping", () => {
  it("prunes finished jobs past the count limit and past the TTL on writes, leaving live jobs alone", async () => {
    const { storage, clock } = open((c) => c.withMaxFinishedJobs(3).withFinishedJobTtl(HOUR).withAutoMigrate(true));
    const old = await finish(storage, clock, 2);
    clock.advance(1000);
    const recent = await finish(storage, clock, 3);
    const live = await storage.enqueue(new Job("live", []));
    // The completion a second later carried the prune: only the 3 most recent finished jobs stay.
    for (const id of old) expect(await storage.get(id)).toBeNull();
    for (const id of recent) expect(await storage.get(id)).not.toBeNull();
    clock.advance(HOUR + 1000);
    await storage.delete(live); // a write that finishes a job: the prune rides along
    for (const id of recent) expect(await storage.get(id)).toBeNull();
    expect((await storage.get(live))!.state).toBe(JobState.Deleted);
    await storage.close();
  });

  it("keeps up with the throughput: a prune removes at least what was finished since the last one", async () => {
    const { storage, clock } = open((c) => c.withMaxFinishedJobs(100).withAutoMigrate(true));
    // 1,500 finished every 200 ms: 7,500 a second, while the prune rides along once a second.
    for (let i = 0; i < 8; i++) {
      await finish(storage, clock, 1500);
      clock.advance(200);
    }
    clock.advance(1000);
    await finish(storage, clock, 1);
    expect((await storage.stats()).states.succeeded).toBe(100);
    await storage.close();
  });

  it("reclaimExpired prunes too, and throughput stays counted after the jobs are gone", async () => {
    const { backend, storage, clock } = open((c) => c.withMaxFinishedJobs(0).withFinishedJobTtl(0).withAutoMigrate(true));
    await finish(storage, clock, 4);
    await finish(storage, clock, 2, JobState.Failed);
    const st = await storage.stats({ minutes: 1, hours: 1 });
    // maxFinishedJobs 0: the completion deleted them.
    expect(st.total).toBe(0);
    expect(st.perMinute.at(-1)).toMatchObject({ succeeded: 4, failed: 2 });
    const id = await storage.enqueue(new Job("x", [], { maxAttempts: 1 }));
    await storage.driver.claim({ queues: ["default"], limit: 1, owner: "gone", leaseMs: 1000, now: clock.now() });
    clock.advance(1001);
    expect(await backend.prune(clock.now())).toBe(1);
    // Failed for its lease, counted, then pruned by the same batch (keep 0).
    expect(await storage.get(id)).toBeNull();
    expect((await storage.stats({ minutes: 1, hours: 1 })).perHour.at(-1)).toMatchObject({ succeeded: 4, failed: 3 });
    // A day and a half later the minute buckets are pruned, the hour buckets kept.
    clock.advance(36 * HOUR);
    await backend.prune(clock.now());
    const rows = (await driverOf(backend).batch([{ sql: "SELECT size_ms, count(*) AS n FROM qml_throughput GROUP BY size_ms" }]))[0];
    expect(rows).toEqual([{ size_ms: 3_600_000, n: 1 }]);
    await storage.close();
  });

  it("forgets a rate key's count RATE_COUNT_KEEP_MS after its last window, not as the window ends", async () => {
    const { backend, storage, clock } = open((c) => c.withAutoMigrate(true));
    await storage.enqueue(new Job("r", [], { rateLimit: { key: "api", limit: 5, interval: 1000 } }));
    expect((await storage.driver.claim({ queues: ["default"], limit: 5, owner: "w", leaseMs: 60_000, now: clock.now() })).length).toBe(1);
    const counts = async () => (await driverOf(backend).batch([{ sql: "SELECT key FROM qml_rate_starts" }]))[0];
    await backend.prune(clock.now() + 1000 + RATE_COUNT_KEEP_MS - 1);
    expect(await counts()).toEqual([{ key: "api" }]);
    await backend.prune(clock.now() + 1000 + RATE_COUNT_KEEP_MS);
    expect(await counts()).toEqual([]);
    await storage.close();
  });
});

describe("unique keys and paused queues", () => {
  /** The same calls on a memory backend and on SQLite, with one clock each from T0. */
  function pair() {
    const mem = new Storage(memoryBackend(), { clock: new ManualClock(T0) });
    const lite = open((c) => c.withAutoMigrate(true));
    return { both: [mem, lite.storage] as const, lite };
  }

  it("a batch debouncing one job many times keeps its last HISTORY_LIMIT entries, as the memory backend does", async () => {
    const { both, lite } = pair();
    const job = (n: number, delay = 0) => new Job("d", [n], { uniqueKey: "k", uniqueMode: "debounce", delay }, `j${n}`);
    for (const storage of both) {
      await storage.enqueue(job(0));
      for (let i = 1; i < 48; i++) await storage.enqueue(job(i, i % 2 ? 1000 : 0));
      // 48 entries, then 5 in one batch (3 dropped), then 60 in one (the last 50 stay).
      await storage.enqueue(Array.from({ length: 5 }, (_, i) => job(100 + i, i === 4 ? 500 : 0)));
    }
    const [a, b] = await Promise.all(both.map(async (s) => (await s.get("j0"))!));
    expect(b!.history).toHaveLength(HISTORY_LIMIT);
    expect(b!.toJSON()).toEqual(a!.toJSON());
    expect(b!.state).toBe(JobState.Scheduled);
    for (const storage of both) await storage.enqueue(Array.from({ length: 60 }, (_, i) => job(200 + i)));
    const [c, e] = await Promise.all(both.map(async (s) => (await s.get("j0"))!));
    expect(e!.toJSON()).toEqual(c!.toJSON());
    expect(e!.history.every((h) => h.reason === "debounced" && h.state === JobState.Enqueued)).toBe(true);
    expect(e!.arguments).toEqual([259]);
    // The plan lives inside the batch only.
    expect(await driverOf(lite.backend).batch([{ sql: "SELECT count(*) AS n FROM qml_insert_plan" }])).toEqual([[{ n: 0 }]]);
    await lite.storage.close();
  });

  it("settles mixed batches as the memory backend does: free, expired, waiting and running holders, ids taken, keys moved", async () => {
    const { both, lite } = pair();
    const results: unknown[][] = [];
    for (const storage of both) {
      const clock = storage.clock as ManualClock;
      const out: unknown[] = [];
      out.push(await storage.enqueue(new Job("h", [], { uniqueKey: "r" }, "running")));
      out.push(await storage.enqueue(new Job("h", [], { uniqueKey: "w", delay: 5000 }, "waiting")));
      out.push(await storage.enqueue(new Job("h", [], { uniqueKey: "e", uniqueTtl: 1000 }, "expiring")));
      out.push(await storage.enqueue(new Job("h", [], {}, "taken")));
      await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 60_000, now: clock.now() });
      clock.advance(1000);
      const batch = [
        new Job("b", [1], { uniqueKey: "r" }, "b1"), // the running holder answers
        new Job("b", [2], { uniqueKey: "r", uniqueMode: "debounce" }, "b2"), // inserted, takes "r"
        new Job("b", [3], { uniqueKey: "r", uniqueMode: "debounce", delay: 100 }, "b3"), // replaces b2
        new Job("b", [4], { uniqueKey: "w", uniqueMode: "debounce" }, "b4"), // replaces "waiting"
        new Job("b", [5], { uniqueKey: "w" }, "b5"), // "waiting" answers
        new Job("b", [6], { uniqueKey: "e" }, "taken"), // expired, but the id is taken: the holder keeps "e"
        new Job("b", [7], { uniqueKey: "n", uniqueMode: "debounce", uniqueTtl: 10 }, "b7"), // free: inserted
        new Job("b", [8], { uniqueKey: "n" }, "b8"), // b7 answers
        new Job("b", [9], {}, "b7"), // same id as b7: b7's answer
      ];
      out.push(await storage.enqueue(batch), await storage.enqueue(new Job("b", [10], { uniqueKey: "e" }, "b10")));
      out.push(await storage.list({}, { limit: 100, sort: "createdAt", order: "asc" }).then((p) => p.items.map((j) => j.toJSON())));
      results.push(out);
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[1]![4]).toEqual(["running", "b2", "b2", "waiting", "waiting", "taken", "b7", "b7", "b7"]);
    expect(results[1]![5]).toBe("b10");
    await lite.storage.close();
  });

  it("reads a paused queue's name as NULL once per claim: no walk of its jobs", async () => {
    const { backend, storage } = open((c) => c.withAutoMigrate(true));
    await storage.pauseQueue("a");
    const rows = (await driverOf(backend).batch([{ sql: `EXPLAIN QUERY PLAN ${sql.claim(1).texts[0]}`, params: ['["a"]', 10, T0] }]))[0] as Array<{
      detail: string;
    }>;
    const plan = rows.map((r) => r.detail);
    expect(plan.filter((l) => /SEARCH qml_paused_queues USING PRIMARY KEY \(queue=\?\)/.test(l))).toHaveLength(2);
    // The only correlated subqueries are the running-job counts of a concurrency key (one index probe per keyed job).
    expect(plan.filter((l) => /CORRELATED/.test(l)).length).toBe(plan.filter((l) => /qml_jobs_running_key/.test(l)).length);
    expect(await storage.pausedQueues()).toEqual(["a"]);
    await storage.close();
  });
});

describe("large batches", () => {
  it("cuts a batch's JSON under D1's 2 MB per string, in one transaction, keeping the order", async () => {
    const { backend, storage, clock } = open((c) => c.withAutoMigrate(true));
    const big = "x".repeat(400_000);
    const jobs = Array.from({ length: 6 }, (_, i) => new Job("big", [i, big]));
    await storage.migrate();
    const commits = driverOf(backend).commits;
    const ids = await storage.enqueue(jobs);
    expect(driverOf(backend).commits - commits).toBe(1);
    const claimed = await storage.driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 60_000, now: clock.now() });
    expect(claimed.map((r) => r.id)).toEqual(ids);
    const results = await storage.driver.complete(
      claimed.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, result: { echo: big }, reason: "ok", worker: "w" })),
      clock.now(),
    );
    expect(results.every((r) => r.status === "applied")).toBe(true);
    expect((await storage.get(ids[5]!))!.result).toEqual({ echo: big });
    expect((await storage.stats({ minutes: 1, hours: 1 })).perMinute.at(-1)!.succeeded).toBe(6);
    await storage.close();
  });
});

describe("migrations and restarts", () => {
  it("migrates once; two starters at once both succeed; the version is recorded", async () => {
    const path = files.next();
    const a = open((c) => c, path);
    const b = open((c) => c, path);
    await Promise.all([a.storage.migrate(), b.storage.migrate()]);
    await a.storage.migrate();
    const rows = (await driverOf(a.backend).batch([{ sql: "SELECT version, name FROM qml_migrations ORDER BY version" }]))[0];
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    expect(rows!.at(-1)!.version).toBe(SCHEMA_VERSION);
    await Promise.all([a.storage.close(), b.storage.close()]);
  });

  it("upgrades a database of version 1 in place: its jobs are kept, with keys that hold while the job is kept", async () => {
    const path = files.next();
    const d = new BetterSqlite3Driver({ path });
    const v1 = MIGRATIONS[0]!;
    await d.batch([{ sql: sql.migrationsTable }, { sql: sql.recordMigration, params: [v1.version, v1.name] }, ...v1.statements.map((text) => ({ sql: text }))]);
    expect(await d.batch([{ sql: "SELECT max(version) AS v FROM qml_migrations" }])).toEqual([[{ v: 1 }]]);
    await d.batch([
      {
        sql: `INSERT INTO qml_jobs (id, name, queue, state, max_attempts, unique_key, created_at, updated_at, run_at, args)
              VALUES ('old', 'legacy', 'default', 'enqueued', 3, 'k', ?1, ?1, ?1, '[1]')`,
        params: [T0],
      },
    ]);
    await d.close();
    const before = open((c) => c, path);
    await expect(before.storage.get("old")).rejects.toMatchObject({ name: "ConfigError", message: /older than this version.*call migrate\(\)/ });
    await expect(before.storage.pauseQueue("a")).rejects.toMatchObject({ name: "ConfigError", message: /call migrate\(\)/ });
    await before.storage.close();
    const { storage } = open((c) => c.withAutoMigrate(true), path);
    const old = (await storage.get("old"))!;
    expect(old).toMatchObject({ name: "legacy", arguments: [1], uniqueKey: "k" });
    expect(old.toJSON()).not.toHaveProperty("uniqueUntil");
    expect(await storage.enqueue(new Job("legacy", [2], { uniqueKey: "k" }))).toBe("old");
    await storage.close();
  });

  it("jobs, leases and recurring definitions outlive the process: a new backend on the same file reads them", async () => {
    const path = files.next();
    const first = open((c) => c.withAutoMigrate(true), path);
    const ids = await first.storage.enqueue([new Job("keep", [1]), new Job("keep", [2])]);
    const [held] = await first.storage.driver.claim({ queues: ["default"], limit: 1, owner: "dead", leaseMs: 1000, now: first.clock.now() });
    await first.storage.addOrUpdateRecurring("nightly", "0 3 * * *", "report");
    // No close: as if the process had been killed.
    const second = open((c) => c.withAutoMigrate(true), path, new ManualClock(T0 + 2000));
    expect((await second.storage.get(ids[1]!))!.state).toBe(JobState.Enqueued);
    expect((await second.storage.get(held!.id))!.leaseOwner).toBe("dead");
    expect(await second.storage.driver.reclaimExpired(second.clock.now(), 10)).toBe(1);
    expect((await second.storage.listRecurring()).map((d) => d.id)).toEqual(["nightly"]);
    await Promise.all([first.storage.close(), second.storage.close()]);
  });
});

describe("order of calls", () => {
  it("is ordered: a claim made while an insert is in flight finds the job", async () => {
    const { storage, clock } = open((c) => c.withAutoMigrate(true));
    expect(storage.driver.ordered).toBe(true);
    await storage.migrate();
    const inserting = storage.enqueue(new Job("now", []));
    const claimed = await storage.driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 1000, now: clock.now() });
    expect(claimed.map((r) => r.id)).toEqual([await inserting]);
    await storage.close();
  });

  it("a driver instance says for itself, and stays the caller's to close", async () => {
    const d = new BetterSqlite3Driver({ path: files.next() });
    const wrapped = { kind: "wrapped", batch: d.batch.bind(d), exec: d.exec.bind(d), close: d.close.bind(d) };
    const backend = sqliteBackend(new SqliteConfig().withDriver(wrapped).withAutoMigrate(true));
    expect(backend.ordered).toBe(false);
    expect(backend.transport).toBe("wrapped");
    const storage = new Storage(backend);
    await storage.enqueue(new Job("x", []));
    await storage.close();
    expect(await d.batch([{ sql: "SELECT count(*) AS n FROM qml_jobs" }])).toEqual([[{ n: 1 }]]);
    await d.close();
  });
});
