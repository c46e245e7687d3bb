/**
 * Shared by the PostgreSQL tests: a fresh random schema per storage, dropped
 * when the file is done, so test files running in parallel never meet.
 */
import pg from "pg";
import { DATABASE_URL } from "../helpers/services.js";

export { DATABASE_URL };

export function randomSchema(prefix = "qml_t"): string {
  return `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Runs one statement on a short-lived connection (setup and assertions only). */
export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/** Collects schemas to drop in afterAll. */
export class SchemaJanitor {
  private readonly schemas = new Set<string>();
  next(prefix?: string): string {
    const s = randomSchema(prefix);
    this.schemas.add(s);
    return s;
  }
  async dropAll(): Promise<void> {
    const list = [...this.schemas];
    this.schemas.clear();
    if (list.length === 0) return;
    // Schema names come from randomSchema: safe to splice, quoted anyway.
    await adminQuery(`DROP SCHEMA IF EXISTS ${list.map((s) => `"${s}"`).join(", ")} CASCADE`);
  }
}
