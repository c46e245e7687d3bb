import { tables } from "./fragments.js";

/**
 * purge
 * Input:  $1 json array of states, $2 updated before (ms), $3 limit.
 * Output: n, how many jobs were deleted.
 *
 * An operator's purge is explicit: it deletes finished jobs that others
 * wait for too (those then read them as deleted). A purged awaiting job's
 * own edges go with it, so that they pin nothing.
 */
export function purge(schema: string): string {
  const { s, J } = tables(schema);
  return `
WITH d AS (
  DELETE FROM ${J} WHERE id = ANY (ARRAY(
    SELECT id FROM ${J} WHERE state IN (SELECT json_array_elements_text($1::json)) AND updated_at < $2::bigint LIMIT $3::int))
  RETURNING id, state
),
unlinked AS (
  DELETE FROM ${s}.edges e WHERE e.waiter = ANY (ARRAY(SELECT id FROM d WHERE state = 'awaiting'))
)
SELECT count(*)::int AS n FROM d`;
}
