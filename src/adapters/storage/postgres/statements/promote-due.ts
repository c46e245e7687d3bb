import { DELAYED, appendHistory, entry, lit, notifyCte, tables } from "./fragments.js";

/**
 * promoteDue
 * Input:  $1 now, $2 limit, $3 NOTIFY channel or null.
 * Output: n, how many due scheduled/awaiting_retry jobs became enqueued.
 */
export function promoteDue(schema: string): string {
  const { s, J } = tables(schema);
  return `
WITH due AS (
  SELECT id FROM ${J} WHERE state IN ${DELAYED} AND run_at <= $1::bigint
  ORDER BY run_at LIMIT $2::int FOR UPDATE SKIP LOCKED
),
upd AS (
  UPDATE ${J} j SET
    state = 'enqueued',
    updated_at = $1::bigint,
    ${appendHistory(s, entry(lit("enqueued"), "$1::bigint", `CASE WHEN j.state = 'scheduled' THEN ${lit("due")} ELSE ${lit("retry due")} END`))}
  WHERE j.id = ANY (ARRAY(SELECT id FROM due))
  RETURNING j.id, j.queue, j.run_at
),
${notifyCte("upd", "$3")}
SELECT (SELECT count(*) FROM upd)::int AS n, (SELECT n FROM woke) AS notified`;
}
