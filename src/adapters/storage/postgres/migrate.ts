/**
 * The migration block: every embedded migration (migrations/*.sql, through
 * migrations.generated.ts) in one DO statement, so one implicit transaction
 * on every driver, the HTTP one included.
 */
import { ConfigError } from "../../../core/errors.js";
import { quoteIdent, validateSchemaName } from "./driver.js";
import { MIGRATIONS } from "./migrations.generated.js";

/** The schema version this code expects: the newest embedded migration. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Advisory lock class for migrations (ASCII "qmlm"); the second key is the schema's hash. */
export const MIGRATION_LOCK_CLASS = 0x716d6c6d;

/** Quote tags of the migration block; the embedder refuses migration files that contain them. */
const BLOCK_QUOTE = "$qml_migrate$";
const MIGRATION_QUOTE = "$qml_migration$";

/**
 * The advisory lock makes a second starter wait, then find the versions
 * already recorded (each plpgsql statement takes a fresh snapshot under
 * READ COMMITTED) and apply nothing.
 */
export function migrationBlock(schema: string): string {
  const s = quoteIdent(validateSchemaName(schema));
  const steps = MIGRATIONS.map((m) => {
    if (m.sql.includes(MIGRATION_QUOTE) || m.sql.includes(BLOCK_QUOTE))
      throw new ConfigError(`migration ${m.name} contains a reserved quote tag`, { scope: "postgres" });
    const body = m.sql.replaceAll(":QML_SCHEMA", s);
    return `
  IF NOT EXISTS (SELECT 1 FROM ${s}.migrations WHERE version = ${m.version}) THEN
    EXECUTE ${MIGRATION_QUOTE}${body}${MIGRATION_QUOTE};
    INSERT INTO ${s}.migrations (version, name) VALUES (${m.version}, '${m.name}');
  END IF;`;
  }).join("");
  return `DO ${BLOCK_QUOTE}
BEGIN
  PERFORM pg_advisory_xact_lock(${MIGRATION_LOCK_CLASS}, hashtext('${schema}'));
  CREATE SCHEMA IF NOT EXISTS ${s};
  CREATE TABLE IF NOT EXISTS ${s}.migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  );${steps}
END
${BLOCK_QUOTE}`;
}
