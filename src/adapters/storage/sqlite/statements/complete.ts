import { appendHistory, awaited, entry, tally } from "./fragments.js";

/*
 * complete: three statements, run in this order in one batch.
 * Input:  ?1 json array of {id, token, state, run_at, count_attempt (1 or
 *         absent), result (JSON text), error (JSON text), reason, worker},
 *         no id twice (the caller keeps the first outcome per job: a second
 *         one in the same batch is lost, as it would be one call later),
 *         ?2 now.
 * Output: the ids of the applied outcomes (RETURNING id of the delete and
 *         of the update), the update's with `deps`: 1 when a dependency
 *         edge names the job (jobs wait for it: the caller flags a finished
 *         one `dependents`), read in the same statement. An outcome applies
 *         only while the job is processing under the same token (fencing).
 *
 * A release (state enqueued) keeps run_at and seq, so the job goes back to
 * the head of its queue rather than behind every job enqueued while it ran,
 * and gives the attempt back unless count_attempt (a run cut off at a
 * deadline). A suspension (state scheduled: a durable step's sleep or
 * event wait) gives the attempt back as a release does and is due again at
 * run_at as a retry is; error, result and steps are left as they are.
 */

/** The outcomes as rows, their columns prefixed (json_each has columns named id, key, value…). */
const OUTCOMES = `o AS (
  SELECT json_extract(value, '$.id') AS o_id, json_extract(value, '$.token') AS o_token, json_extract(value, '$.state') AS o_state,
         json_extract(value, '$.run_at') AS o_run_at, json_extract(value, '$.count_attempt') AS o_count,
         json_extract(value, '$.result') AS o_result, json_extract(value, '$.error') AS o_error,
         json_extract(value, '$.reason') AS o_reason, json_extract(value, '$.worker') AS o_worker
  FROM json_each(?1)
)`;

/** Outcomes whose job is still held under their token: those that apply. */
const HELD = `o JOIN qml_jobs j ON j.id = o.o_id AND j.state = 'processing' AND j.lease_token = o.o_token`;

/** Adds the finished outcomes that apply to the throughput buckets; before the update, which changes what it reads. */
export const completeTally = `
WITH ${OUTCOMES}
${tally(HELD, "o.o_state = 'succeeded'", "o.o_state = 'failed'", "?2")}`;

/**
 * For a backend that keeps no finished jobs (maxFinishedJobs 0): a job that
 * succeeds or fails is deleted by the batch that finishes it, as the next
 * prune would have done, unless jobs wait for it (the prune keeps those
 * too: their outcome decides the waiters'). Before the update, so the
 * update sees only the rest.
 */
export const completeDelete = `
WITH ${OUTCOMES}
DELETE FROM qml_jobs WHERE seq IN (SELECT j.seq FROM ${HELD} WHERE o.o_state IN ('succeeded', 'failed') AND NOT ${awaited("j.id")})
RETURNING id`;

export const completeUpdate = `
WITH ${OUTCOMES}
UPDATE qml_jobs SET
  state = o.o_state,
  updated_at = ?2,
  lease_owner = NULL,
  lease_until = NULL,
  attempts = CASE WHEN o.o_state IN ('enqueued', 'scheduled') AND o.o_count IS NOT 1 THEN max(attempts - 1, 0) ELSE attempts END,
  run_at = CASE WHEN o.o_state IN ('awaiting_retry', 'scheduled') THEN coalesce(o.o_run_at, ?2) ELSE run_at END,
  finished_at = CASE WHEN o.o_state IN ('succeeded', 'failed') THEN ?2 ELSE finished_at END,
  result = CASE WHEN o.o_state = 'succeeded' THEN o.o_result ELSE result END,
  error = CASE WHEN o.o_state = 'succeeded' THEN NULL
               WHEN o.o_state IN ('failed', 'awaiting_retry') THEN coalesce(o.o_error, error)
               ELSE error END,
  ${appendHistory(entry("o.o_state", "?2", "o.o_reason", "o.o_worker"))}
FROM o
WHERE qml_jobs.id = o.o_id AND qml_jobs.state = 'processing' AND qml_jobs.lease_token = o.o_token
RETURNING id, ${awaited("id")} AS deps`;
