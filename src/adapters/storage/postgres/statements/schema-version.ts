import { tables } from "./fragments.js";

/** schemaVersion: the newest migration applied (0 for none). Fails with 42P01/3F000 before the first migration. */
export function schemaVersion(schema: string): string {
  const { s } = tables(schema);
  return `SELECT coalesce(max(version), 0)::int AS version FROM ${s}.migrations`;
}
