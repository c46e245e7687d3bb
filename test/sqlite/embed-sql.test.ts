/**
 * The SQLite migrations module is generated from the .sql files and
 * committed: this fails when someone edits a .sql file without
 * regenerating. The embedder splits each file into the statements the
 * backend sends as one batch, and refuses what a batch cannot carry.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { SQLITE_GENERATED_FILE, renderSqliteMigrations, splitStatements } from "../../scripts/embed-sql.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { MIGRATIONS } from "../../src/adapters/storage/sqlite/migrations.generated.js";
import { claim } from "../../src/adapters/storage/sqlite/statements/index.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "qml-embed-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

it("migrations.generated.ts is up to date with migrations/*.sql (run: npx tsx scripts/embed-sql.ts)", () => {
  expect(readFileSync(SQLITE_GENERATED_FILE, "utf8")).toBe(renderSqliteMigrations());
  expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
});

it("splits at semicolons outside quotes and comments, and drops the comments", () => {
  expect(
    splitStatements(`-- a comment; with a semicolon
CREATE TABLE qml_a (x TEXT DEFAULT 'a;b''c'); /* block; comment */
CREATE INDEX "qml_b" ON qml_a (x) -- trailing; comment
;  `),
  ).toEqual(["CREATE TABLE qml_a (x TEXT DEFAULT 'a;b''c')", 'CREATE INDEX "qml_b" ON qml_a (x)']);
});

it("refuses gaps, transactions, PRAGMAs, triggers and names outside qml_*", () => {
  expect(() => renderSqliteMigrations(folder({ "0001_a.sql": "CREATE TABLE qml_a (x)", "0003_b.sql": "CREATE TABLE qml_b (x)" }))).toThrow(
    /expected version 2/,
  );
  expect(() => renderSqliteMigrations(folder({ "0001_a.sql": "BEGIN; CREATE TABLE qml_a (x); COMMIT;" }))).toThrow(/BEGIN is not allowed/);
  expect(() => renderSqliteMigrations(folder({ "0001_a.sql": "PRAGMA journal_mode = WAL;" }))).toThrow(/PRAGMA is not allowed/);
  expect(() => renderSqliteMigrations(folder({ "0001_a.sql": "CREATE TRIGGER qml_t AFTER INSERT ON qml_a BEGIN SELECT 1; END;" }))).toThrow(/TRIGGER/);
  expect(() => renderSqliteMigrations(folder({ "0001_a.sql": "CREATE TABLE jobs (x);" }))).toThrow(/must be named qml_\*/);
  expect(() => renderSqliteMigrations(folder({ "0001_a.sql": "CREATE UNIQUE INDEX IF NOT EXISTS other ON qml_a (x);" }))).toThrow(/must be named qml_\*/);
});

it("the history trim keeps HISTORY_LIMIT entries", () => {
  // Every number in the claim's history clauses but 1, 2, 10 (char(10)) and the ?N parameters is that limit.
  const { texts, returning } = claim(1);
  const text = texts[returning]!;
  const clauses = text.slice(text.indexOf("history = CASE"), text.indexOf("WHERE seq IN"));
  expect(clauses).toContain(`WHEN hn + CASE WHEN state = 'enqueued' THEN 1 ELSE 2 END <= ${HISTORY_LIMIT} THEN`);
  const numbers = new Set(clauses.replace(/\?\d+/g, "").match(/\b\d+\b/g));
  for (const n of ["1", "2", "10"]) numbers.delete(n);
  expect(numbers).toEqual(new Set([`${HISTORY_LIMIT}`]));
});
