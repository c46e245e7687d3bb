import { appendHistory, entry, lit, tally } from "./fragments.js";

/** Expired leases, oldest first; the same selection for the tally and the update (one transaction). */
const EXPIRED = `(SELECT seq FROM qml_jobs WHERE state = 'processing' AND lease_until < ?1 ORDER BY lease_until, seq LIMIT ?2)`;

/**
 * reclaimExpired: two statements, the tally first.
 * Input:  ?1 now, ?2 limit.
 * Output: one row per reclaimed job (back to enqueued, or failed when no
 *         attempts are left; token bumped either way).
 */
export const reclaimTally = tally(`qml_jobs WHERE seq IN ${EXPIRED}`, "0", "attempts >= max_attempts", "?1");

export const reclaimExpired = `
UPDATE qml_jobs SET
  state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'enqueued' END,
  lease_owner = NULL,
  lease_until = NULL,
  lease_token = lease_token + 1,
  updated_at = ?1,
  run_at = CASE WHEN attempts >= max_attempts THEN run_at ELSE ?1 END,
  finished_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE finished_at END,
  error = CASE WHEN attempts >= max_attempts
               THEN json_object('name', 'LeaseExpiredError', 'message',
                      'lease expired on attempt ' || attempts || ' of ' || max_attempts || ' (owner ' || coalesce(lease_owner, '?') || ')')
               ELSE error END,
  ${appendHistory(
    `CASE WHEN attempts >= max_attempts
       THEN ${entry(lit("failed"), "?1", `'lease expired; no attempts left (owner ' || coalesce(lease_owner, '?') || ')'`)}
       ELSE ${entry(lit("enqueued"), "?1", `'lease expired (owner ' || coalesce(lease_owner, '?') || ')'`)} END`,
  )}
WHERE seq IN ${EXPIRED}
RETURNING seq`;
