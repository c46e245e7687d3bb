/**
 * The D1 driver (src/adapters/storage/sqlite/drivers/d1.ts) against
 * miniflare's local D1 inside workerd: a batch is one `db.batch` call and
 * all or nothing, a migration script written over many lines runs (D1's
 * own `exec` cuts at newlines), and D1's failures reach callers as qml's
 * errors (D1's own through the driver, SQLite's through the backend's
 * mapping). The backend's behaviour on D1 is the conformance suite's
 * (sqlite-d1.worker.test.ts).
 */
import { describe, expect, it } from "vitest";
import { ConfigError, QmlError, StorageUnavailableError } from "../../src/core/errors.js";
import { toStorageError } from "../../src/adapters/storage/sqlite/errors.js";
import { D1Driver, splitSqlScript, toD1Error, type D1DatabaseLike, type D1PreparedStatementLike } from "../../src/adapters/storage/sqlite/drivers/d1.js";
import { d1Binding, freshD1 } from "./backends.js";

/** The binding, with every call to it counted. */
function counted(db: D1DatabaseLike): { db: D1DatabaseLike; calls: string[] } {
  const calls: string[] = [];
  const wrap = (s: D1PreparedStatementLike): D1PreparedStatementLike => ({
    bind: (...values) => wrap(s.bind(...values)),
    all: () => {
      calls.push("all");
      return s.all();
    },
    // db.batch needs the binding's own statement objects.
    ...({ inner: s } as object),
  });
  return {
    calls,
    db: {
      prepare: (sql) => wrap(db.prepare(sql)),
      batch: (statements) => {
        calls.push("batch");
        return db.batch(statements.map((s) => (s as unknown as { inner: D1PreparedStatementLike }).inner));
      },
      exec: (sql) => {
        calls.push("exec");
        return db.exec(sql);
      },
    },
  };
}

describe("D1Driver", () => {
  it("runs a batch as one db.batch call and answers each statement's rows", async () => {
    await freshD1();
    const { db, calls } = counted(d1Binding());
    const driver = new D1Driver(db);
    const rows = await driver.batch([
      { sql: "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)" },
      { sql: "INSERT INTO t (id, n) VALUES (?, ?), (?, ?)", params: ["a", 1, "b", 2] },
      { sql: "SELECT id, n FROM t ORDER BY id" },
      { sql: "UPDATE t SET n = n + 1 WHERE id = ? RETURNING id, n", params: ["b"] },
    ]);
    expect(rows).toEqual([
      [],
      [],
      [
        { id: "a", n: 1 },
        { id: "b", n: 2 },
      ],
      [{ id: "b", n: 3 }],
    ]);
    expect(calls).toEqual(["batch"]);

    calls.length = 0;
    expect(await driver.batch([{ sql: "SELECT count(*) AS n FROM t" }])).toEqual([[{ n: 2 }]]);
    expect(await driver.batch([])).toEqual([]);
    expect(calls).toEqual(["all"]);
  });

  it("applies all of a batch or none of it", async () => {
    await freshD1();
    const driver = new D1Driver(d1Binding());
    await driver.batch([{ sql: "CREATE TABLE t (id TEXT PRIMARY KEY)" }, { sql: "INSERT INTO t VALUES ('a')" }]);
    await expect(
      driver.batch([
        { sql: "INSERT INTO t VALUES (?)", params: ["b"] },
        { sql: "INSERT INTO t VALUES (?)", params: ["a"] },
      ]),
    ).rejects.toThrow(/UNIQUE constraint failed/);
    expect(await driver.batch([{ sql: "SELECT id FROM t ORDER BY id" }])).toEqual([[{ id: "a" }]]);
  });

  it("runs a migration script written over many lines, with comments, strings and a trigger, as one batch", async () => {
    await freshD1();
    const { db, calls } = counted(d1Binding());
    const driver = new D1Driver(db);
    await driver.exec(`
      -- a header; with a semicolon
      CREATE TABLE jobs (
        id    TEXT PRIMARY KEY, /* the job's id; any text */
        note  TEXT NOT NULL DEFAULT 'a;b -- not a comment',
        n     INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE log ("id;" TEXT, n INTEGER);
      CREATE TRIGGER jobs_log AFTER UPDATE ON jobs
      BEGIN
        INSERT INTO log VALUES (NEW.id, CASE WHEN NEW.n > 1 THEN NEW.n ELSE 0 END);
        INSERT INTO log VALUES ('x;', 0);
      END;
      INSERT INTO jobs (id) VALUES ('it''s; fine');
      UPDATE jobs SET n = 2
    `);
    expect(calls).toEqual(["batch"]);
    const [jobs, log] = await driver.batch([{ sql: "SELECT id, note, n FROM jobs" }, { sql: 'SELECT "id;" AS id, n FROM log ORDER BY rowid' }]);
    expect(jobs).toEqual([{ id: "it's; fine", note: "a;b -- not a comment", n: 2 }]);
    expect(log).toEqual([
      { id: "it's; fine", n: 2 },
      { id: "x;", n: 0 },
    ]);
  });

  it("a failing migration leaves nothing behind", async () => {
    await freshD1();
    const driver = new D1Driver(d1Binding());
    await expect(driver.exec("CREATE TABLE a (x INTEGER);\nCREATE TABLE a (y INTEGER);")).rejects.toThrow(/already exists/);
    expect(await driver.batch([{ sql: "SELECT name FROM sqlite_schema WHERE name = 'a'" }])).toEqual([[]]);
  });

  it("leaves SQLite's failures to the backend's one mapping, which reads them from D1's messages", async () => {
    await freshD1();
    const driver = new D1Driver(d1Binding());
    const e = await driver.batch([{ sql: "SELECT * FROM qml_jobs" }]).catch((x: unknown) => x);
    expect(e).not.toBeInstanceOf(QmlError);
    expect(toStorageError(e, driver.kind)).toMatchObject({ name: "ConfigError", scope: "sqlite", message: expect.stringContaining("migrate()") });
  });

  it("refuses calls once closed", async () => {
    const driver = new D1Driver(d1Binding());
    await driver.close();
    await driver.close();
    await expect(driver.batch([{ sql: "SELECT 1" }])).rejects.toMatchObject({ name: "StorageUnavailableError", scope: "d1" });
  });

  it("maps D1's own transient failures to StorageUnavailableError and keeps SQLite's as they are", () => {
    for (const message of [
      "D1_ERROR: Network connection lost.",
      "D1_ERROR: Internal error in D1 DB storage caused object to be reset.",
      "D1_ERROR: D1 DB storage operation exceeded timeout which caused object to be reset.",
      "D1_ERROR: D1 DB is overloaded. Too many requests queued.",
      "D1_ERROR: D1 DB's isolate exceeded its memory limit and was reset.",
    ]) {
      const e = toD1Error(new Error(message), "batch of 2");
      expect(e).toBeInstanceOf(StorageUnavailableError);
      expect(e).toMatchObject({ scope: "d1", message: `[d1] batch of 2 failed: ${message}` });
    }
    const constraint = new Error("D1_ERROR: UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT");
    expect(toD1Error(constraint, "statement")).toBe(constraint);
    const qml = new ConfigError("already mapped");
    expect(toD1Error(qml, "statement")).toBe(qml);
  });

  it("refuses what is not a D1 binding", () => {
    expect(() => new D1Driver(undefined as never)).toThrow(ConfigError);
    expect(() => new D1Driver({ prepare: () => undefined } as never)).toThrow(/d1_databases/);
  });
});

describe("splitSqlScript", () => {
  it("splits at semicolons outside strings, identifiers, comments and trigger bodies", () => {
    expect(splitSqlScript("SELECT 1; SELECT ';'; -- x;\nSELECT \"a;b\" /* ; */ ;;")).toEqual(["SELECT 1", "SELECT ';'", 'SELECT "a;b"']);
    expect(splitSqlScript("CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN SELECT CASE WHEN 1 THEN 2 END; SELECT 3; END; SELECT 4")).toEqual([
      "CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN SELECT CASE WHEN 1 THEN 2 END; SELECT 3; END",
      "SELECT 4",
    ]);
    expect(splitSqlScript("  -- only a comment\n")).toEqual([]);
  });
});
