import { tables } from "./fragments.js";

/** readEstimates. Output: name, ms (as text) of every estimate (migration 0003). */
export function readEstimates(schema: string): string {
  const { s } = tables(schema);
  return `SELECT name, ms::text AS ms FROM ${s}.estimates`;
}

/**
 * writeEstimates: upserts the names it carries, keeps the others.
 * Input:  $1 json object {name: ms (integer)}, $2 now.
 * Output: nothing.
 */
export function writeEstimates(schema: string): string {
  const { s } = tables(schema);
  return `
INSERT INTO ${s}.estimates AS e (name, ms, updated_at)
SELECT key, value::bigint, $2::bigint FROM json_each_text($1::json)
ON CONFLICT (name) DO UPDATE SET ms = EXCLUDED.ms, updated_at = EXCLUDED.updated_at`;
}
