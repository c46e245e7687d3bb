/**
 * Flows on SQLite beyond the shared suite. Migration 0005 rebuilds
 * qml_jobs to widen its state CHECK: a database at version 4 with jobs in
 * every state must come out with every job as it was (each column, seq
 * included, so claim order survives), every index of 0001..0004 back, and
 * the rest of the database untouched. Then: the sweep's page of awaiting
 * jobs reads its own index; retention keeps what a released parent will
 * read; an insert that creates nothing writes no edge.
 */
import { afterAll, describe, expect, it } from "vitest";
import { Job, JobState, ManualClock, Storage } from "../../src/index.js";
import { BetterSqlite3Driver, SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { SCHEMA_VERSION } from "../../src/adapters/storage/sqlite/migrate.js";
import { MIGRATIONS } from "../../src/adapters/storage/sqlite/migrations.generated.js";
import * as sql from "../../src/adapters/storage/sqlite/statements/index.js";
import { TempFiles } from "./helpers.js";

const files = new TempFiles();
afterAll(() => files.removeAll());
const T0 = Date.UTC(2030, 0, 1);

/** The indexes of qml_jobs after 0005: those of 0001, 0002 and 0004, and the sweep's. */
const JOB_INDEXES = [
  "qml_jobs_awaiting",
  "qml_jobs_delayed",
  "qml_jobs_delayed_queue",
  "qml_jobs_finished",
  "qml_jobs_processing",
  "qml_jobs_ready",
  "qml_jobs_running_key",
  "qml_jobs_unique_key",
];

/** A database file at `version`, made by the embedded migrations up to it. */
async function databaseAt(version: number): Promise<{ path: string; d: BetterSqlite3Driver }> {
  const path = files.next();
  const d = new BetterSqlite3Driver({ path });
  const statements = [{ sql: sql.migrationsTable }];
  for (const m of MIGRATIONS.slice(0, version))
    statements.push({ sql: sql.recordMigration, params: [m.version, m.name] } as never, ...m.statements.map((text) => ({ sql: text })));
  await d.batch(statements);
  return { path, d };
}

const columns =
  "id, name, queue, priority, state, attempts, max_attempts, retry, timeout_ms, unique_key, unique_until, metadata, created_at, updated_at, run_at, lease_owner, lease_until, lease_token, finished_at, args, result, error, progress, history, hn, concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval, rate_window";

/** One job row per state a version-4 database can hold, with every optional column used somewhere. */
function legacyJobs(): unknown[][] {
  const h = (state: string, at: number) => JSON.stringify({ state, at, reason: "r" });
  const common = (id: string, state: string, i: number) => [id, "legacy", i % 2 ? "default" : "other", i, state];
  return [
    [
      ...common("ready", "enqueued", 0),
      0,
      3,
      '{"kind":"fixed","delayMs":5}',
      1000,
      "key-1",
      T0 + 3_600_000,
      '{"a":1}',
      T0,
      T0,
      T0,
      null,
      null,
      0,
      null,
      '[1,"x"]',
      null,
      null,
      null,
      h("enqueued", T0),
      1,
      null,
      null,
      null,
      null,
      null,
      null,
    ],
    [
      ...common("later", "scheduled", 1),
      0,
      3,
      null,
      null,
      null,
      null,
      null,
      T0,
      T0,
      T0 + 60_000,
      null,
      null,
      0,
      null,
      "[]",
      null,
      null,
      null,
      h("scheduled", T0),
      1,
      null,
      null,
      null,
      null,
      null,
      null,
    ],
    [
      ...common("running", "processing", 2),
      1,
      3,
      null,
      null,
      null,
      null,
      null,
      T0,
      T0 + 1,
      T0,
      "w1",
      T0 + 30_000,
      4,
      null,
      "[2]",
      null,
      null,
      '{"step":1}',
      `${h("enqueued", T0)}\n${h("processing", T0 + 1)}`,
      2,
      "customer:1",
      2,
      null,
      null,
      null,
      null,
    ],
    [
      ...common("done", "succeeded", 3),
      1,
      3,
      null,
      null,
      null,
      null,
      null,
      T0,
      T0 + 2,
      T0,
      null,
      null,
      1,
      T0 + 2,
      "[3]",
      '{"ok":true}',
      null,
      null,
      h("succeeded", T0 + 2),
      1,
      null,
      null,
      "rate:1",
      5,
      1000,
      null,
    ],
    [
      ...common("broken", "failed", 4),
      3,
      3,
      null,
      null,
      null,
      null,
      null,
      T0,
      T0 + 3,
      T0,
      null,
      null,
      3,
      T0 + 3,
      "[4]",
      null,
      '{"name":"Error","message":"no"}',
      null,
      h("failed", T0 + 3),
      1,
      null,
      null,
      null,
      null,
      null,
      null,
    ],
    [
      ...common("retrying", "awaiting_retry", 5),
      1,
      3,
      null,
      null,
      null,
      null,
      null,
      T0,
      T0 + 4,
      T0 + 10_000,
      null,
      null,
      1,
      null,
      "[5]",
      null,
      '{"name":"Error","message":"once"}',
      null,
      h("awaiting_retry", T0 + 4),
      1,
      null,
      null,
      "rate:1",
      5,
      1000,
      T0 / 1000,
    ],
    [
      ...common("gone", "deleted", 6),
      0,
      3,
      null,
      null,
      null,
      null,
      null,
      T0,
      T0 + 5,
      T0,
      null,
      null,
      1,
      T0 + 5,
      "[6]",
      null,
      null,
      null,
      h("deleted", T0 + 5),
      1,
      null,
      null,
      null,
      null,
      null,
      null,
    ],
  ];
}

describe("migration 0005 (flows) on a database at version 4", () => {
  it("keeps every job, column for column and in its place, every index, and the other tables", async () => {
    // Migrated to the newest version: 0005, then 0006 (steps) on top.
    expect(SCHEMA_VERSION).toBe(6);
    const { path, d } = await databaseAt(4);
    const jobs = legacyJobs();
    const placeholders = `(${columns
      .split(", ")
      .map(() => "?")
      .join(", ")})`;
    await d.batch([
      ...jobs.map((row) => ({ sql: `INSERT INTO qml_jobs (${columns}) VALUES ${placeholders}`, params: row as never })),
      // A gap in seq (a job deleted earlier): the rebuild must keep the numbers, not renumber.
      { sql: "UPDATE qml_jobs SET seq = seq + 100 WHERE id IN ('done', 'broken', 'retrying', 'gone')" },
      {
        sql: "INSERT INTO qml_recurring (id, cron, name, args, options, created_at, updated_at, last_slot) VALUES ('nightly', '0 3 * * *', 'report', '[]', '{}', ?1, ?1, ?1)",
        params: [T0],
      },
      { sql: "INSERT INTO qml_paused_queues (queue, paused_at) VALUES ('other', ?1)", params: [T0] },
      { sql: "INSERT INTO qml_kv (key, value, expires_at) VALUES ('k', 'v', NULL)" },
      { sql: "INSERT INTO qml_throughput (size_ms, bucket, succeeded, failed) VALUES (60000, ?1, 1, 1)", params: [T0] },
      { sql: "INSERT INTO qml_rate_starts (key, next, lim, iv) VALUES ('rate:1', 7, 5, 1000)" },
    ]);
    const read = async (table: string, order: string) => (await d.batch([{ sql: `SELECT * FROM ${table} ORDER BY ${order}` }]))[0]!;
    const before = await read("qml_jobs", "seq");
    const others = ["qml_recurring", "qml_paused_queues", "qml_kv", "qml_throughput", "qml_rate_starts"];
    const othersBefore = await Promise.all(others.map((t) => read(t, "1")));
    expect(before).toHaveLength(jobs.length);
    await d.close();

    const backend = sqliteBackend(new SqliteConfig(path).withAutoMigrate(true));
    const storage = new Storage(backend, { clock: new ManualClock(T0 + 1000) });
    await storage.migrate();
    const m = backend.sqlite as BetterSqlite3Driver;
    const q = async (text: string) => (await m.batch([{ sql: text }]))[0]!;

    expect(await q("SELECT max(version) AS v FROM qml_migrations")).toEqual([{ v: 6 }]);
    // Every job, every column, the same seq; the new columns empty.
    expect(await q("SELECT * FROM qml_jobs ORDER BY seq")).toEqual(before.map((row) => ({ ...row, flow: null, waited_until: null, steps: null })));
    for (const [i, t] of others.entries()) expect(await q(`SELECT * FROM ${t} ORDER BY 1`)).toEqual(othersBefore[i]);
    // The indexes are back, on the new table; the copy is gone; the file is sound.
    const indexes = await q("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'qml_jobs' AND sql IS NOT NULL ORDER BY name");
    expect(indexes.map((r) => r.name)).toEqual(JOB_INDEXES);
    expect(await q("SELECT name FROM sqlite_master WHERE name LIKE 'qml_jobs_new%'")).toEqual([]);
    expect(await q("PRAGMA integrity_check")).toEqual([{ integrity_check: "ok" }]);
    expect(
      (await q("EXPLAIN QUERY PLAN SELECT seq FROM qml_jobs WHERE state = 'enqueued' AND queue = 'default' ORDER BY priority DESC, run_at, seq"))
        .map((r) => r.detail)
        .join(" "),
    ).toMatch(/qml_jobs_ready/);

    // The jobs work as before: read back, claimed in their order, unique key held, a lease reclaimable.
    expect((await storage.get("done"))!.result).toEqual({ ok: true });
    expect((await storage.get("ready"))!.toJSON()).toMatchObject({ uniqueKey: "key-1", metadata: { a: 1 }, arguments: [1, "x"] });
    expect(await storage.enqueue(new Job("legacy", [], { uniqueKey: "key-1" }))).toBe("ready");
    const claimed = await storage.driver.claim({ queues: ["default", "other"], limit: 10, owner: "w2", leaseMs: 1000, now: T0 + 1000 });
    expect(claimed.map((r) => r.id)).toEqual([]); // "other" is paused; "default" holds no ready job
    await storage.resumeQueue("other");
    expect((await storage.driver.claim({ queues: ["other"], limit: 10, owner: "w2", leaseMs: 1000, now: T0 + 1000 })).map((r) => r.id)).toEqual(["ready"]);
    expect(await storage.driver.reclaimExpired(T0 + 40_000, 10)).toBe(2); // "running" and "ready"
    // And the new state is accepted.
    const flow = await storage.enqueueFlow({ job: new Job("parent"), children: [{ job: new Job("child") }] });
    expect((await storage.get(flow.id))!.state).toBe(JobState.Awaiting);
    expect((await storage.stats()).total).toBe(jobs.length + 2);
    await storage.close();
  });
});

describe("the sweep's page of awaiting jobs", () => {
  it("reads qml_jobs_awaiting, not the table", async () => {
    const backend = sqliteBackend(new SqliteConfig(files.next()).withAutoMigrate(true));
    const storage = new Storage(backend, { clock: new ManualClock(T0) });
    await storage.migrate();
    const m = backend.sqlite as BetterSqlite3Driver;
    const text = sql.listAwaiting["createdAt:asc"];
    const plan = (await m.batch([{ sql: `EXPLAIN QUERY PLAN ${text}`, params: ['["awaiting"]', null, null, null, null, null, 101] }]))[0]!;
    const detail = plan.map((r) => r.detail).join(" | ");
    expect(detail).toMatch(/USING INDEX qml_jobs_awaiting/);
    expect(detail).not.toMatch(/TEMP B-TREE/);
    await storage.close();
  });
});

describe("flows and retention", () => {
  const HOUR = 3_600_000;
  function open(configure: (c: SqliteConfig) => SqliteConfig) {
    const clock = new ManualClock(T0);
    return { storage: new Storage(sqliteBackend(configure(new SqliteConfig(files.next()).withAutoMigrate(true))), { clock }), clock };
  }
  async function runAll(storage: Storage, clock: ManualClock, state: typeof JobState.Succeeded | typeof JobState.Failed = JobState.Succeeded) {
    const claimed = await storage.driver.claim({ queues: ["default"], limit: 100, owner: "w", leaseMs: 60_000, now: clock.now() });
    const res = await storage.driver.complete(
      claimed.map((r) => ({ id: r.id, token: r.leaseToken, state, reason: state, worker: "w" })),
      clock.now(),
    );
    const flagged = res.filter((r) => r.dependents).map((r) => r.id);
    if (flagged.length > 0) await storage.settleDependents(flagged);
    return claimed.map((r) => r.id);
  }

  it("keeping no finished jobs (maxFinishedJobs 0), a child whose parent waits is kept until the parent is released", async () => {
    const { storage, clock } = open((c) => c.withMaxFinishedJobs(0));
    const ids = await storage.enqueueFlow({ job: new Job("parent"), children: [{ job: new Job("a") }, { job: new Job("b", [], { delay: HOUR }) }] });
    const lone = await storage.enqueue(new Job("lone"));
    await runAll(storage, clock); // a and lone
    expect(await storage.get(lone)).toBeNull();
    clock.advance(2000);
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect((await storage.get(ids.children[0]!.id))!.state).toBe(JobState.Succeeded);
    clock.advance(HOUR);
    await runAll(storage, clock); // b: the parent is released
    expect((await storage.get(ids.id))!.state).toBe(JobState.Enqueued);
    // Nothing waits for a any more, and no finished job is kept: the next prune removes it.
    clock.advance(2000);
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect(await storage.get(ids.children[0]!.id)).toBeNull();
    await storage.close();
  });

  it("kept past the count limit a child released recently, until that many jobs finished after the release", async () => {
    const { storage, clock } = open((c) => c.withMaxFinishedJobs(2).withFinishedJobTtl(0));
    const ids = await storage.enqueueFlow({ job: new Job("parent"), children: [{ job: new Job("a") }, { job: new Job("b", [], { delay: HOUR }) }] });
    await runAll(storage, clock); // a
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await storage.enqueue(new Job("other"));
      await runAll(storage, clock);
    }
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect((await storage.get(ids.children[0]!.id))!.state).toBe(JobState.Succeeded); // waited for, past the newest 2
    clock.advance(HOUR);
    await runAll(storage, clock); // b: the parent is released
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect((await storage.get(ids.children[0]!.id))!.state).toBe(JobState.Succeeded); // as if it had finished at the release
    for (let i = 0; i < 2; i++) {
      clock.advance(1000);
      await storage.enqueue(new Job("other"));
      await runAll(storage, clock);
    }
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect(await storage.get(ids.children[0]!.id)).toBeNull();
    await storage.close();
  });

  it("a child that finished past the TTL before its parent was released is kept a TTL from the release", async () => {
    const { storage, clock } = open((c) => c.withFinishedJobTtl(24 * HOUR));
    const ids = await storage.enqueueFlow({ job: new Job("parent"), children: [{ job: new Job("a") }, { job: new Job("b", [], { delay: 48 * HOUR }) }] });
    await runAll(storage, clock); // a
    clock.advance(48 * HOUR);
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect((await storage.get(ids.children[0]!.id))!.state).toBe(JobState.Succeeded); // waited for
    await runAll(storage, clock); // b: the parent is released
    expect((await storage.get(ids.id))!.state).toBe(JobState.Enqueued);
    clock.advance(HOUR);
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect((await storage.get(ids.children[0]!.id))!.state).toBe(JobState.Succeeded); // a TTL from the release
    clock.advance(24 * HOUR);
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect(await storage.get(ids.children[0]!.id)).toBeNull();
    await storage.close();
  });

  it("an insert that creates nothing writes no edge: a released waiter written again does not wait again", async () => {
    const { storage, clock } = open((c) => c);
    const tree = () => ({ job: new Job("parent", [], {}, "p1"), children: [{ job: new Job("child", [], {}, "c1") }] });
    await storage.enqueueFlow(tree());
    await runAll(storage, clock);
    expect((await storage.get("p1"))!.state).toBe(JobState.Enqueued);
    await storage.enqueueFlow(tree());
    expect(await storage.driver.dependents(["c1"])).toEqual([]);
    // With a unique key (the keyed insert path) too.
    const parent = await storage.enqueue(new Job("first"));
    const next = await storage.continueWith(parent, new Job("next", [], { uniqueKey: "next-1" }));
    expect(await storage.driver.dependents([parent])).toEqual([next]);
    await runAll(storage, clock);
    expect((await storage.get(next))!.state).toBe(JobState.Enqueued);
    expect((await storage.get(next))!.flow).toEqual({ dependsOn: [parent], on: "success", otherwise: "delete" });
    expect(await storage.driver.dependents([parent])).toEqual([]);
    await storage.close();
  });
});
