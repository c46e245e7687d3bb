/**
 * The migrations module is generated from the .sql files and committed:
 * this fails when someone edits a .sql file without regenerating.
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { GENERATED_FILE, renderMigrations } from "../../scripts/embed-sql.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { MIGRATIONS } from "../../src/adapters/storage/postgres/migrations.generated.js";
import { migrationBlock } from "../../src/adapters/storage/postgres/migrate.js";

it("migrations.generated.ts is up to date with migrations/*.sql (run: npx tsx scripts/embed-sql.ts)", () => {
  expect(readFileSync(GENERATED_FILE, "utf8")).toBe(renderMigrations());
});

it("versions run 1..n, and the migration block names only the configured schema", () => {
  expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
  const block = migrationBlock("my_schema");
  expect(block).not.toContain(":QML_SCHEMA");
  expect(block).toContain('"my_schema".jobs');
  expect(() => migrationBlock('x"; DROP SCHEMA public; --')).toThrow(/schema must match/);
});

it("the history trim in SQL keeps HISTORY_LIMIT entries", () => {
  // 0002's append_history trims the text to 50 entries, which must match the core's limit
  // (the statements set hn from HISTORY_LIMIT itself). Every number in its body but 1 is that limit.
  const text = MIGRATIONS.find((m) => m.name === "0002_history_text")!.sql;
  const body = text.slice(text.indexOf("CREATE FUNCTION :QML_SCHEMA.append_history"));
  expect(body).toContain(`WHEN hn + n <= ${HISTORY_LIMIT} THEN`);
  expect(new Set(body.match(/\d+/g)!.filter((n) => n !== "1"))).toEqual(new Set([`${HISTORY_LIMIT}`]));
});
