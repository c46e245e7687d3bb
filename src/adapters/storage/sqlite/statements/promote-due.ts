import { DELAYED, appendHistory, entry, lit } from "./fragments.js";

/**
 * promoteDue
 * Input:  ?1 now, ?2 limit.
 * Output: one row per due scheduled/awaiting_retry job that became enqueued.
 */
export const promoteDue = `
UPDATE qml_jobs SET
  state = 'enqueued',
  updated_at = ?1,
  ${appendHistory(entry(lit("enqueued"), "?1", `CASE WHEN state = 'scheduled' THEN ${lit("due")} ELSE ${lit("retry due")} END`))}
WHERE seq IN (SELECT seq FROM qml_jobs WHERE state IN ${DELAYED} AND run_at <= ?1 ORDER BY run_at LIMIT ?2)
RETURNING seq`;
