import { tables } from "./fragments.js";

/**
 * upsertRecurring: an existing definition keeps created_at and last_slot.
 * Input: $1 id, $2 cron, $3 timezone, $4 name, $5 args (JSON text), $6 options (JSON text), $7 created, $8 updated.
 */
export function upsertRecurring(schema: string): string {
  const { s } = tables(schema);
  return `
INSERT INTO ${s}.recurring AS r (id, cron, timezone, name, args, options, created_at, updated_at)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::json, $6::jsonb, $7::bigint, $8::bigint)
ON CONFLICT (id) DO UPDATE SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, name = EXCLUDED.name,
  args = EXCLUDED.args, options = EXCLUDED.options, updated_at = EXCLUDED.updated_at`;
}

/** listRecurring. Output: every definition, JSON and bigints as text. */
export function listRecurring(schema: string): string {
  const { s } = tables(schema);
  return `
SELECT id, cron, timezone, name, args::text AS args, options::text AS options, created_at::text AS created_at,
       updated_at::text AS updated_at, last_slot::text AS last_slot
FROM ${s}.recurring`;
}

/** removeRecurring. Input: $1 id. Output: one row when it existed. */
export function removeRecurring(schema: string): string {
  const { s } = tables(schema);
  return `DELETE FROM ${s}.recurring WHERE id = $1::text RETURNING 1 AS ok`;
}

/** markRecurringFired: moves last_slot forward only. Input: $1 id, $2 slot. Output: no row when another caller got there first. */
export function markRecurringFired(schema: string): string {
  const { s } = tables(schema);
  return `
UPDATE ${s}.recurring SET last_slot = $2::bigint
WHERE id = $1::text AND (last_slot IS NULL OR last_slot < $2::bigint)
RETURNING 1 AS ok`;
}
