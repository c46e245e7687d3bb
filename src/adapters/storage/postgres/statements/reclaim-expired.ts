import { RATE_COUNT_KEEP_MS } from "../../../../core/driver.js";
import { FINISHED, appendHistory, awaited, entry, freeSlotsCte, lit, notifyCte, str, tables, tallyCte } from "./fragments.js";

/**
 * reclaimExpired, with the housekeeping that rides along on it
 * Input:  $1 now, $2 limit, $3 NOTIFY channel or null, $4 finished-job TTL
 *         ms, $5 max finished jobs, $6 prune batch size.
 * Output: n, how many expired leases were reclaimed (back to enqueued, or
 *         failed when no attempts are left; token bumped either way).
 *
 * Pruning happens here because this is the statement every runtime's beat
 * already sends: finished jobs past the TTL or past the count limit (at
 * most $6 per call, oldest first) and throughput buckets past the stats
 * windows (24 h of minutes, 31 days of hours).
 *
 * A finished job that a dependency edge names (migration 0007) is not
 * pruned: jobs still wait for it, and their outcome is read from it. Found
 * past the TTL, it is kept (kept_at = now) and its age counts from then,
 * as the memory backend puts it back at the end of its line: the waiter it
 * was kept for, released since, reads it when it runs. It still counts
 * toward the count limit, and the edges are probed only for the rows a
 * pass would prune (at most $6 of each kind): probing every row the count
 * walk skips (the $5 newest) cost 17 ms per pass at 10,000 against 1.5 ms
 * for the walk alone.
 */
export function reclaimExpired(schema: string): string {
  const { s, J } = tables(schema);
  return `
WITH exp AS (
  SELECT id FROM ${J} WHERE state = 'processing' AND lease_until < $1::bigint
  ORDER BY lease_until LIMIT $2::int FOR UPDATE SKIP LOCKED
),
upd AS (
  UPDATE ${J} j SET
    state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'enqueued' END,
    lease_owner = NULL,
    lease_until = NULL,
    lease_token = j.lease_token + 1,
    updated_at = $1::bigint,
    run_at = CASE WHEN j.attempts >= j.max_attempts THEN j.run_at ELSE $1::bigint END,
    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN $1::bigint ELSE j.finished_at END,
    error = CASE WHEN j.attempts >= j.max_attempts
                 THEN jsonb_build_object('name', 'LeaseExpiredError', 'message',
                        'lease expired on attempt ' || j.attempts || ' of ' || j.max_attempts || ' (owner ' || coalesce(j.lease_owner, '?') || ')')
                 ELSE j.error END,
    ${appendHistory(
      s,
      `CASE WHEN j.attempts >= j.max_attempts
           THEN ${entry(lit("failed"), "$1::bigint", str("'lease expired; no attempts left (owner ' || coalesce(j.lease_owner, '?') || ')'"))}
           ELSE ${entry(lit("enqueued"), "$1::bigint", str("'lease expired (owner ' || coalesce(j.lease_owner, '?') || ')'"))} END`,
    )}
  WHERE j.id = ANY (ARRAY(SELECT id FROM exp))
  RETURNING j.id, j.queue, j.run_at, j.state, j.concurrency_key
),
${freeSlotsCte(s, "upd")},
idle_slots AS (
  DELETE FROM ${s}.concurrency_slots k WHERE k.active = 0 AND NOT EXISTS (SELECT 1 FROM upd WHERE upd.concurrency_key = k.key)
),
past_starts AS (
  DELETE FROM ${s}.rate_starts WHERE next <= floor(($1::bigint - ${RATE_COUNT_KEEP_MS})::numeric / iv)::bigint * lim
),
${tallyCte(s, "upd", "$1")},
${notifyCte("upd", "$3", "upd.state = 'enqueued'")},
expired AS (
  SELECT f.id, ${awaited(s, "f.id")} AS awaited FROM ${J} f
  WHERE f.state IN ${FINISHED} AND f.finished_at < $1::bigint - $4::bigint AND (f.kept_at IS NULL OR f.kept_at < $1::bigint - $4::bigint)
  ORDER BY f.finished_at LIMIT $6::int
),
counted AS (
  SELECT f.id, ${awaited(s, "f.id")} AS awaited FROM ${J} f
  WHERE f.state IN ${FINISHED} ORDER BY f.finished_at DESC OFFSET $5::int LIMIT $6::int
),
kept AS (
  UPDATE ${J} SET kept_at = $1::bigint WHERE id = ANY (ARRAY(SELECT id FROM expired WHERE awaited))
),
pruned AS (
  DELETE FROM ${J} WHERE id = ANY (ARRAY(
    (SELECT id FROM expired WHERE NOT awaited)
    UNION
    (SELECT id FROM counted WHERE NOT awaited)
  ))
  RETURNING 1
),
old_buckets AS (
  DELETE FROM ${s}.throughput
  WHERE (size_ms = 60000 AND bucket < $1::bigint - 86400000) OR (size_ms = 3600000 AND bucket < $1::bigint - 2678400000)
)
SELECT (SELECT count(*) FROM upd)::int AS n, (SELECT n FROM woke) AS notified, (SELECT count(*) FROM pruned)::int AS pruned`;
}
