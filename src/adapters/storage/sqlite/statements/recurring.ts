/**
 * upsertRecurring: an existing definition keeps created_at and last_slot.
 * Input: ?1 id, ?2 cron, ?3 timezone, ?4 name, ?5 args (JSON text), ?6 options (JSON text), ?7 created, ?8 updated.
 */
export const upsertRecurring = `
INSERT INTO qml_recurring AS r (id, cron, timezone, name, args, options, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (id) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, name = excluded.name,
  args = excluded.args, options = excluded.options, updated_at = excluded.updated_at`;

/** listRecurring. Output: every definition, JSON as text. */
export const listRecurring = `SELECT id, cron, timezone, name, args, options, created_at, updated_at, last_slot FROM qml_recurring`;

/** removeRecurring. Input: ?1 id. Output: one row when it existed. */
export const removeRecurring = `DELETE FROM qml_recurring WHERE id = ?1 RETURNING 1 AS ok`;

/** markRecurringFired: moves last_slot forward only. Input: ?1 id, ?2 slot. Output: no row when another caller got there first. */
export const markRecurringFired = `
UPDATE qml_recurring SET last_slot = ?2
WHERE id = ?1 AND (last_slot IS NULL OR last_slot < ?2)
RETURNING 1 AS ok`;
