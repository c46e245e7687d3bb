import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { Job, JobState, Storage, type HistoryEntry, type JobRecord } from "../../src/index.js";
import { HISTORY_LIMIT, newJobRecord } from "../../src/core/job.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { MIGRATIONS } from "../../src/adapters/storage/postgres/migrations.generated.js";
import { MIGRATION_LOCK_CLASS } from "../../src/adapters/storage/postgres/migrate.js";
import { SCHEMA_VERSION } from "../../src/adapters/storage/postgres/migrate.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor, adminQuery } from "./helpers.js";
import pg from "pg";

const janitor = new SchemaJanitor();
const CHILD = fileURLToPath(new URL("./fixtures/migrate-child.ts", import.meta.url));

/** Tables, columns, indexes and functions of a schema, as one comparable list. */
async function shape(schema: string): Promise<string[]> {
  const rows = await adminQuery<{ item: string }>(
    `SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type AS item FROM information_schema.columns WHERE table_schema = $1
     UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = $1
     UNION ALL SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
     ORDER BY 1`,
    [schema],
  );
  return rows.map((r) => r.item);
}

/** A record as Storage makes it (newJobRecord), with a given id and key, as of `now`. */
function newRecord(id: string, args: unknown[], uniqueKey: string, now: number): JobRecord {
  return newJobRecord(new Job("new", args, { uniqueKey }, id), now);
}

function storageFor(schema: string, max = 2): Storage {
  return new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(schema).withMaxConnections(max)));
}

async function record(storage: Storage, id: string): Promise<JobRecord | null> {
  const [r] = await storage.driver.get([id]);
  return r ?? null;
}

/** A schema as a qml that knew only the first `version` migrations left it (migrationBlock, stopped there). */
async function schemaAt(schema: string, version: number): Promise<void> {
  const s = `"${schema}"`;
  await adminQuery(`
    CREATE SCHEMA ${s};
    CREATE TABLE ${s}.migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
    ${MIGRATIONS.slice(0, version)
      .map((m) => `${m.sql.replaceAll(":QML_SCHEMA", s)};\n    INSERT INTO ${s}.migrations (version, name) VALUES (${m.version}, '${m.name}');`)
      .join("\n")}`);
}

function migrateInChild(schema: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", CHILD, DATABASE_URL, schema], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}: ${err}`))));
  });
}

describeWithService("postgres", await serviceUp("postgres"), "postgres migrations", () => {
  afterAll(() => janitor.dropAll());

  it("creates the schema, records the version, and is idempotent", async () => {
    const schema = janitor.next();
    const storage = storageFor(schema);
    try {
      await storage.migrate();
      const first = await shape(schema);
      expect(first).toContain(`function append_history`);
      expect(first.some((i) => i.startsWith("index jobs_ready_idx") && i.includes("WHERE (state = 'enqueued'::text)"))).toBe(true);
      await storage.migrate();
      // A second storage (fresh process state) takes the slow path's check and applies nothing.
      const again = storageFor(schema);
      await again.migrate();
      await again.close();
      expect(await shape(schema)).toEqual(first);
      const versions = await adminQuery<{ version: number; name: string }>(`SELECT version, name FROM "${schema}".migrations ORDER BY version`);
      expect(versions.map((v) => v.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      expect(versions[0]!.name).toBe("0001_init");
    } finally {
      await storage.close();
    }
  });

  it("0002 turns histories written under 0001 into text that reads back the same, then appends and trims it", async () => {
    const schema = janitor.next();
    const s = `"${schema}"`;
    await schemaAt(schema, 1);
    const T = Date.UTC(2030, 0, 1);
    const mixed: HistoryEntry[] = [
      { state: "scheduled", at: T, reason: "enqueued with delay" },
      { state: "enqueued", at: T + 1, reason: "due" },
      { state: "processing", at: T + 2, reason: "claimed (attempt 1)", worker: "host:1/2" },
      // Newlines, quotes, backslashes and non-ASCII: the text format must keep one entry per line.
      { state: "awaiting_retry", at: T + 3, reason: 'line 1\nline 2\t"quoted" \\ é ✓ 😀 \u2028', worker: "w\nx" },
      { state: "enqueued", at: T + 4, reason: "retry due" },
    ];
    const long: HistoryEntry[] = Array.from({ length: HISTORY_LIMIT + 5 }, (_, i) => ({ state: "enqueued", at: T + i, reason: `release ${i}` }));
    // Written as 0001's statements wrote them: through its append_history, which trims to the limit.
    await adminQuery(
      `INSERT INTO ${s}.jobs (id, name, queue, state, max_attempts, created_at, updated_at, run_at, args, history)
       SELECT id, 'old', 'default', 'enqueued', 100, $1::bigint, $1::bigint, $1::bigint, '[]', ${s}.append_history('[]', h)
       FROM (VALUES ('mixed', $2::jsonb), ('long', $3::jsonb), ('empty', '[]'::jsonb)) AS v(id, h)`,
      [T, JSON.stringify(mixed), JSON.stringify(long)],
    );
    const storage = storageFor(schema);
    try {
      await storage.migrate();
      expect((await record(storage, "mixed"))!.history).toEqual(mixed);
      expect((await record(storage, "long"))!.history).toEqual(long.slice(-HISTORY_LIMIT));
      expect((await record(storage, "empty"))!.history).toEqual([]);
      const columns = await adminQuery<{ column_name: string; data_type: string; column_default: string }>(
        `SELECT column_name, data_type, column_default FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'jobs' AND column_name IN ('history', 'hn') ORDER BY 1`,
        [schema],
      );
      expect(columns).toEqual([
        { column_name: "history", data_type: "text", column_default: "''::text" },
        { column_name: "hn", data_type: "integer", column_default: "0" },
      ]);
      const counts = await adminQuery<{ id: string; hn: number }>(`SELECT id, hn FROM ${s}.jobs ORDER BY id`);
      expect(counts).toEqual([
        { id: "empty", hn: 0 },
        { id: "long", hn: HISTORY_LIMIT },
        { id: "mixed", hn: mixed.length },
      ]);
      // New entries follow the converted ones; the full history drops its oldest.
      const claimed = await storage.driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 1000, now: T + 100 });
      const after = new Map(claimed.map((r) => [r.id, r.history]));
      const entry: HistoryEntry = { state: "processing", at: T + 100, reason: "claimed (attempt 1)", worker: "w" };
      expect(after.get("mixed")).toEqual([...mixed, entry]);
      expect(after.get("long")).toEqual([...long.slice(-HISTORY_LIMIT + 1), entry]);
      expect(after.get("empty")).toEqual([entry]);
    } finally {
      await storage.close();
    }
  });

  it("0003 adds the estimates table to a schema at version 2, leaving its jobs and definitions as they were", async () => {
    const schema = janitor.next();
    const s = `"${schema}"`;
    await schemaAt(schema, 2);
    const T = Date.UTC(2030, 0, 1);
    const history = [{ state: "enqueued", at: T, reason: "enqueued" }];
    // Rows as 0002's statements wrote them: history as text lines, hn their count.
    await adminQuery(
      `INSERT INTO ${s}.jobs (id, name, queue, state, max_attempts, created_at, updated_at, run_at, args, history, hn, metadata)
       VALUES ('v2-job', 'old', 'default', 'enqueued', 3, $1::bigint, $1::bigint, $1::bigint, '["a\\u0000b", {"k": 1}]', $2, 1, '{"t": "x"}')`,
      [T, history.map((h) => JSON.stringify(h)).join("\n")],
    );
    await adminQuery(
      `INSERT INTO ${s}.recurring (id, cron, name, args, options, created_at, updated_at, last_slot) VALUES ('r', '* * * * *', 'tick', '[]', '{}', $1::bigint, $1::bigint, $1::bigint)`,
      [T],
    );
    const storage = storageFor(schema);
    try {
      await expect(storage.driver.readEstimates()).rejects.toMatchObject({ name: "ConfigError" });
      await storage.migrate();
      const versions = await adminQuery<{ version: number; name: string }>(`SELECT version, name FROM ${s}.migrations ORDER BY version`);
      expect(versions.map((v) => `${v.version} ${v.name}`)).toEqual(MIGRATIONS.map((m) => `${m.version} ${m.name}`));
      // Read back as written, and the job still runs.
      expect(await record(storage, "v2-job")).toMatchObject({ args: ["a\u0000b", { k: 1 }], metadata: { t: "x" }, history, state: JobState.Enqueued });
      expect(await storage.listRecurring()).toMatchObject([{ id: "r", lastSlot: T }]);
      const [claimed] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: T + 1 });
      expect(claimed!.id).toBe("v2-job");
      // The new table works, and the schema is the one a fresh install gets.
      await storage.driver.writeEstimates({ old: 1500.4 }, T);
      expect(await storage.driver.readEstimates()).toEqual({ old: 1500 });
      const fresh = janitor.next();
      const other = storageFor(fresh);
      await other.migrate();
      await other.close();
      const named = async (x: string) => (await shape(x)).map((item) => item.replaceAll(x, "<schema>"));
      expect(await named(schema)).toEqual(await named(fresh));
    } finally {
      await storage.close();
    }
  });

  it("0004 adds unique_until and paused queues to a schema at version 3: its keys hold as before, and take the new rules", async () => {
    const schema = janitor.next();
    const s = `"${schema}"`;
    await schemaAt(schema, 3);
    const T = Date.UTC(2030, 0, 1);
    const line = (state: string, reason: string) => JSON.stringify({ state, at: T, reason });
    // Rows as 0003's statements wrote them: a waiting job and a running one holding keys, and one without.
    await adminQuery(
      `INSERT INTO ${s}.jobs (id, name, queue, state, max_attempts, created_at, updated_at, run_at, args, history, hn, unique_key, lease_owner, lease_until, lease_token, attempts)
       VALUES ('waiting', 'old', 'default', 'enqueued', 3, $1::bigint, $1::bigint, $1::bigint, '[1]', $2, 1, 'k-waiting', NULL, NULL, 0, 0),
              ('running', 'old', 'default', 'processing', 3, $1::bigint, $1::bigint, $1::bigint, '[2]', $3, 2, 'k-running', 'w', $1::bigint + 60000, 1, 1),
              ('plain', 'old', 'mail', 'enqueued', 3, $1::bigint, $1::bigint, $1::bigint, '[3]', $2, 1, NULL, NULL, NULL, 0, 0)`,
      [T, line("enqueued", "enqueued"), `${line("enqueued", "enqueued")}\n${line("processing", "claimed (attempt 1)")}`],
    );
    const storage = storageFor(schema);
    const driver = storage.driver;
    try {
      await expect(driver.pausedQueues()).rejects.toMatchObject({ name: "ConfigError" });
      await storage.migrate();
      const versions = await adminQuery<{ version: number; name: string }>(`SELECT version, name FROM ${s}.migrations ORDER BY version`);
      expect(versions.map((v) => `${v.version} ${v.name}`)).toEqual(MIGRATIONS.map((m) => `${m.version} ${m.name}`));
      // Read back as written: a key without a window holds while the job is kept.
      const waiting = (await record(storage, "waiting"))!;
      expect(waiting).toMatchObject({ args: [1], uniqueKey: "k-waiting", state: JobState.Enqueued });
      expect(waiting.uniqueUntil).toBeUndefined();
      const [first] = await driver.insert([{ ...newRecord("again", [9], "k-waiting", T + 1) }], T + 1);
      expect(first).toEqual({ id: "waiting", created: false });
      // Debounce replaces the old waiting job, and moves the old running job's key to a new one.
      const [replaced, moved] = await driver.insert(
        [
          { ...newRecord("d1", [10], "k-waiting", T + 2), debounce: true },
          { ...newRecord("d2", [20], "k-running", T + 2), debounce: true },
        ],
        T + 2,
      );
      expect(replaced).toEqual({ id: "waiting", created: false, replaced: true });
      expect(moved).toEqual({ id: "d2", created: true });
      expect((await record(storage, "waiting"))!.args).toEqual([10]);
      expect((await record(storage, "waiting"))!.history.map((h) => h.reason)).toEqual(["enqueued", "debounced"]);
      const running = (await record(storage, "running"))!;
      expect(running).toMatchObject({ state: JobState.Processing, args: [2], leaseToken: 1 });
      expect(running.uniqueKey).toBeUndefined();
      expect((await record(storage, "d2"))!.uniqueKey).toBe("k-running");
      // Pausing works on the migrated schema, and the old jobs are claimed by queue as before.
      await driver.setPaused("default", true, T + 3);
      expect(await driver.pausedQueues()).toEqual(["default"]);
      expect((await driver.claim({ queues: ["default", "mail"], limit: 10, owner: "w", leaseMs: 1000, now: T + 3 })).map((r) => r.id)).toEqual(["plain"]);
      await driver.setPaused("default", false, T + 3);
      expect((await driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 1000, now: T + 3 })).map((r) => r.id)).toEqual(["waiting", "d2"]);
      // And the schema is the one a fresh install gets.
      const fresh = janitor.next();
      const other = storageFor(fresh);
      await other.migrate();
      await other.close();
      const named = async (x: string) => (await shape(x)).map((item) => item.replaceAll(x, "<schema>"));
      expect(await named(schema)).toEqual(await named(fresh));
    } finally {
      await storage.close();
    }
  });

  it("0008 adds steps and the waiters table to a schema at version 7: old rows read back without steps, then save, suspend and keep them", async () => {
    const schema = janitor.next();
    const s = `"${schema}"`;
    await schemaAt(schema, 7);
    const T = Date.UTC(2030, 0, 1);
    const history = [{ state: "enqueued", at: T, reason: "enqueued" }];
    // A row as 0007's statements wrote it.
    await adminQuery(
      `INSERT INTO ${s}.jobs (id, name, queue, state, max_attempts, created_at, updated_at, run_at, args, history, hn)
       VALUES ('v7-job', 'old', 'default', 'enqueued', 3, $1::bigint, $1::bigint, $1::bigint, '[1]', $2, 1)`,
      [T, history.map((h) => JSON.stringify(h)).join("\n")],
    );
    const storage = storageFor(schema);
    try {
      await expect(storage.driver.waiters("e", T, 10)).rejects.toMatchObject({ name: "ConfigError" });
      await storage.migrate();
      const versions = await adminQuery<{ version: number; name: string }>(`SELECT version, name FROM ${s}.migrations ORDER BY version`);
      expect(versions.map((v) => `${v.version} ${v.name}`)).toEqual(MIGRATIONS.map((m) => `${m.version} ${m.name}`));
      const old = (await record(storage, "v7-job"))!;
      expect(old).toMatchObject({ args: [1], history, state: JobState.Enqueued });
      expect(old.steps).toBeUndefined();
      const driver = storage.driver;
      const [claimed] = await driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: T + 1 });
      expect(claimed!.id).toBe("v7-job");
      expect(claimed!.steps).toBeUndefined();
      const steps = [{ id: "a", kind: "run" as const, status: "completed" as const, startedAt: T + 1, result: "a\u0000b" }];
      const entry: HistoryEntry = { state: JobState.Processing, at: T + 2, reason: "step a completed", worker: "w/1" };
      expect(await driver.saveSteps({ id: "v7-job", token: claimed!.leaseToken }, steps, entry, T + 2)).toBe(true);
      const [res] = await driver.complete(
        [{ id: "v7-job", token: claimed!.leaseToken, state: JobState.Scheduled, runAt: T + 100, reason: "sleeping", worker: "w/1" }],
        T + 3,
      );
      expect(res!.status).toBe("applied");
      const after = (await record(storage, "v7-job"))!;
      expect(after).toMatchObject({ state: JobState.Scheduled, attempts: 0, runAt: T + 100, steps });
      expect(after.history.slice(-2)).toEqual([entry, { state: JobState.Scheduled, at: T + 3, reason: "sleeping", worker: "w/1" }]);
      await driver.addWaiter("e ✓", "v7-job", T + 100, T);
      expect(await driver.waiters("e ✓", T, 10)).toEqual(["v7-job"]);
      // And the schema is the one a fresh install gets.
      const fresh = janitor.next();
      const other = storageFor(fresh);
      await other.migrate();
      await other.close();
      const named = async (x: string) => (await shape(x)).map((item) => item.replaceAll(x, "<schema>"));
      expect(await named(schema)).toEqual(await named(fresh));
    } finally {
      await storage.close();
    }
  });

  it("withAutoMigrate(true) migrates before the first statement, once; without it, use before migrate() says what to do", async () => {
    const schema = janitor.next();
    const bare = storageFor(schema);
    await expect(bare.get("x")).rejects.toMatchObject({ name: "ConfigError", scope: "postgres" });
    await bare.close();
    // Built without I/O: nothing is created until the first call.
    const auto = new Storage(
      postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withAutoMigrate(true).withMaxConnections(1)),
    );
    expect(await adminQuery(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [schema])).toEqual([]);
    const [a, b] = await Promise.all([auto.get("x"), auto.enqueue(new Job("first-call", []))]);
    expect(a).toBeNull();
    expect((await auto.get(b))?.name).toBe("first-call");
    await auto.close();
    const versions = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".migrations`);
    expect(versions[0]!.n).toBe(SCHEMA_VERSION);
  });

  it("concurrent migrators (another process and two pools) end with one schema, migrated once", async () => {
    const schema = janitor.next();
    // Hold the migration lock so that every migrator is queued behind it,
    // then let go: they run one after the other, and all but the first must
    // find the work done.
    const holder = new pg.Client({ connectionString: DATABASE_URL });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [MIGRATION_LOCK_CLASS, schema]);
    const a = storageFor(schema, 1);
    const b = storageFor(schema, 1);
    try {
      const runs = [migrateInChild(schema), a.migrate(), b.migrate()];
      // Wait (on the catalog, not a timer) until all three are blocked on the lock.
      const deadline = Date.now() + 20_000;
      for (;;) {
        const [row] = await adminQuery<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1::bigint::oid",
          [MIGRATION_LOCK_CLASS],
        );
        if (row!.n >= 3) break;
        if (Date.now() > deadline) throw new Error("migrators never queued on the migration lock");
        await new Promise((r) => setTimeout(r, 25));
      }
      await holder.query("COMMIT");
      const [child] = await Promise.all(runs);
      expect(child).toBe("migrated");
      const versions = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".migrations`);
      expect(versions[0]!.n).toBe(SCHEMA_VERSION);
      const tables = await adminQuery<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", [schema]);
      expect(tables.map((t) => t.table_name)).toEqual([
        "concurrency_slots",
        "edges",
        "estimates",
        "jobs",
        "kv",
        "migrations",
        "paused_queues",
        "rate_starts",
        "recurring",
        "throughput",
        "waiters",
      ]);
      // And the schema works.
      const id = await a.enqueue(new Job("after-migrate", []));
      expect((await b.get(id))?.name).toBe("after-migrate");
    } finally {
      await holder.end().catch(() => {});
      await a.close();
      await b.close();
    }
  });
});
