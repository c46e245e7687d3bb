import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { HISTORY_LIMIT, type HistoryEntry } from "../../src/index.js";
import { MIGRATIONS, MIGRATION_LOCK_CLASS, PostgresConfig, SCHEMA_VERSION, createPostgresStorage, type PostgresStorage } from "../../src/adapters/storage/postgres/index.js";
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

function storageFor(schema: string, max = 2): Promise<PostgresStorage> {
  return createPostgresStorage(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(schema).withMaxConnections(max));
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
    const storage = await storageFor(schema);
    try {
      await storage.migrate();
      const first = await shape(schema);
      expect(first).toContain(`function append_history`);
      expect(first.some((i) => i.startsWith("index jobs_ready_idx") && i.includes("WHERE (state = 'enqueued'::text)"))).toBe(true);
      await storage.migrate();
      // A second storage (fresh process state) takes the slow path's check and applies nothing.
      const again = await storageFor(schema);
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
    // The schema as a qml that knew only 0001 left it (migrationBlock, stopped after version 1).
    await adminQuery(`
      CREATE SCHEMA ${s};
      CREATE TABLE ${s}.migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
      ${MIGRATIONS[0]!.sql.replaceAll(":QML_SCHEMA", s)};
      INSERT INTO ${s}.migrations (version, name) VALUES (1, '0001_init')`);
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
    const storage = await storageFor(schema);
    try {
      await storage.migrate();
      expect((await storage.getRecord("mixed"))!.history).toEqual(mixed);
      expect((await storage.getRecord("long"))!.history).toEqual(long.slice(-HISTORY_LIMIT));
      expect((await storage.getRecord("empty"))!.history).toEqual([]);
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
      const claimed = await storage.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 1000, now: T + 100 });
      const after = new Map(claimed.map((r) => [r.id, r.history]));
      const entry: HistoryEntry = { state: "processing", at: T + 100, reason: "claimed (attempt 1)", worker: "w" };
      expect(after.get("mixed")).toEqual([...mixed, entry]);
      expect(after.get("long")).toEqual([...long.slice(-HISTORY_LIMIT + 1), entry]);
      expect(after.get("empty")).toEqual([entry]);
    } finally {
      await storage.close();
    }
  });

  it("withAutoMigrate(true) migrates on creation; without it, use before migrate() says what to do", async () => {
    const schema = janitor.next();
    const bare = await storageFor(schema);
    await expect(bare.getRecord("x")).rejects.toMatchObject({ name: "ConfigError" });
    await bare.close();
    const auto = await createPostgresStorage(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withAutoMigrate(true).withMaxConnections(1));
    expect(await auto.getRecord("x")).toBeNull();
    await auto.close();
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
    const a = await storageFor(schema, 1);
    const b = await storageFor(schema, 1);
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
      expect(tables.map((t) => t.table_name)).toEqual(["jobs", "migrations", "recurring", "throughput"]);
      // And the schema works.
      const id = await a.enqueueJob("after-migrate");
      expect((await b.get(id))?.name).toBe("after-migrate");
    } finally {
      await holder.end().catch(() => {});
      await a.close();
      await b.close();
    }
  });
});
