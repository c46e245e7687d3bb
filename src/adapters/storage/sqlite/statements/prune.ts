import { FINISHED, awaited } from "./fragments.js";

/*
 * Retention, statements that ride along on the batches that finish jobs
 * (at most once a second per process) and on reclaimExpired (the beat
 * every runtime sends): no extra round trip, no cron. Each takes exactly
 * the parameters it uses (D1 counts them).
 *
 * A finished job that jobs wait for (a dependency edge names it) is kept
 * past the limits: its outcome decides theirs. It goes once its waiters
 * have been settled (which deletes their edges). An operator's purge
 * (purge.ts) does not look at edges.
 */

/**
 * Finished jobs that finished before ?1 (now - TTL), oldest first, at most
 * ?2, but those waited for and those whose waiter was released at or after
 * ?1 (waited_until: as if they had finished then). Left out of the batch
 * when there is no age limit.
 */
export const pruneByAge = `
DELETE FROM qml_jobs WHERE seq IN (
  SELECT seq FROM qml_jobs j
  WHERE state IN ${FINISHED} AND finished_at < ?1 AND (waited_until IS NULL OR waited_until < ?1) AND NOT ${awaited("j.id")}
  ORDER BY finished_at LIMIT ?2)`;

/**
 * Finished jobs past the newest ?1, at most ?2 looked at. Walks ?1 entries
 * of qml_jobs_finished from the newest: about a millisecond at the default
 * 10,000, which is why it runs at most once a second, not on every batch.
 * Kept where they fall past the ?1: jobs waited for, and jobs whose waiter
 * was released (waited_until) at or after the oldest of the newest ?1
 * finished, as if they had finished then: they go once ?1 jobs finished
 * after the release (at once when ?1 is 0). The subquery is read only for
 * such jobs.
 */
export const pruneByCount = `
DELETE FROM qml_jobs WHERE seq IN (
  SELECT seq FROM (
    SELECT seq, id, waited_until FROM qml_jobs WHERE state IN ${FINISHED} ORDER BY finished_at DESC, seq DESC LIMIT ?2 OFFSET ?1
  ) j
  WHERE NOT ${awaited("j.id")}
    AND (j.waited_until IS NULL
         OR ?1 = 0
         OR j.waited_until < (SELECT finished_at FROM qml_jobs WHERE state IN ${FINISHED} ORDER BY finished_at DESC, seq DESC LIMIT 1 OFFSET ?1 - 1)))`;

/** Rate keys whose starts are all in windows before ?1, now less RATE_COUNT_KEEP_MS (qml_rate_starts). */
export const pruneRateStarts = `DELETE FROM qml_rate_starts WHERE next <= (CAST(?1 AS INTEGER) / iv) * lim`;

/** Throughput buckets past the stats windows (24 h of minutes, 31 days of hours) at ?1, now. */
export const pruneBuckets = `
DELETE FROM qml_throughput
WHERE (size_ms = 60000 AND bucket < ?1 - 86400000) OR (size_ms = 3600000 AND bucket < ?1 - 2678400000)`;
