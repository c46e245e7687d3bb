import { appendHistory, awaited, entry, freeSlotsCte, notifyCte, str, tables, tallyCte } from "./fragments.js";

/*
 * complete
 * Input:  $1 json array of {i, id, token, state, run_at, count_attempt,
 *         result (JSON text), error, reason, worker}, no id twice (the
 *         caller keeps the first outcome per job: a second one in the same
 *         batch is lost, as it would be one call later), $2 now, $3 NOTIFY
 *         channel or null (releases wake servers).
 * Output: i of each applied outcome, in no particular order, and
 *         dependents: the outcome finished the job (succeeded, failed) and a
 *         dependency edge names it (jobs wait for it). An outcome applies
 *         only while the job is processing under the same token (fencing).
 *         Finished outcomes are tallied for stats.
 *
 * A release (state enqueued) keeps run_at, so the job goes back to the head
 * of its queue rather than behind every job enqueued while it ran, and gives
 * the attempt back unless count_attempt (a run cut off at a deadline).
 *
 * A suspension (state scheduled: a durable step's sleep or event wait)
 * gives the attempt back as a release does, and is due again at run_at as
 * a retry is; error, result and steps are left as they are. It is promoted
 * and claimed later as any scheduled job. Like every exit from processing,
 * it frees the job's concurrency slot.
 */

const OUTCOMES = `o AS (
  SELECT * FROM json_to_recordset($1::json) AS x(
    i int, id text, token bigint, state text, run_at bigint, count_attempt boolean, result text, error jsonb, reason text, worker text)
)`;

/** The outcomes of `from` (a CTE of outcomes) written to their jobs, if the jobs are still held under the outcomes' tokens. */
function writeOutcomes(schema: string, from: string): string {
  const { s, J } = tables(schema);
  return `UPDATE ${J} j SET
    state = f.state,
    updated_at = $2::bigint,
    lease_owner = NULL,
    lease_until = NULL,
    attempts = CASE WHEN f.state IN ('enqueued', 'scheduled') AND f.count_attempt IS NOT TRUE THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
    run_at = CASE WHEN f.state IN ('awaiting_retry', 'scheduled') THEN coalesce(f.run_at, $2::bigint) ELSE j.run_at END,
    finished_at = CASE WHEN f.state IN ('succeeded', 'failed') THEN $2::bigint ELSE j.finished_at END,
    result = CASE WHEN f.state = 'succeeded' THEN f.result::json ELSE j.result END,
    error = CASE WHEN f.state = 'succeeded' THEN NULL
                 WHEN f.state IN ('failed', 'awaiting_retry') THEN coalesce(f.error, j.error)
                 ELSE j.error END,
    ${appendHistory(s, entry(str("f.state"), "$2::bigint", str("f.reason"), str("f.worker")))}
  FROM ${from} f
  WHERE j.id = f.id AND j.state = 'processing' AND j.lease_token = f.token
  RETURNING f.i, j.id, j.queue, j.run_at, j.state, j.concurrency_key,
    f.state IN ('succeeded', 'failed') AND ${awaited(s, "j.id")} AS dependents`;
}

export function complete(schema: string): string {
  const { s } = tables(schema);
  return `
WITH ${OUTCOMES},
upd AS (${writeOutcomes(schema, "o")}),
${freeSlotsCte(s, "upd")},
${tallyCte(s, "upd", "$2")},
${notifyCte("upd", "$3", "upd.state = 'enqueued'")}
SELECT upd.i, upd.dependents FROM upd CROSS JOIN woke`;
}

/**
 * completeAndDelete: complete for a backend that keeps no finished jobs
 * (maxFinishedJobs 0). A job that succeeds or fails is deleted in the
 * statement that finishes it, as the next prune would have done: a
 * deletion writes no new row version and no index entry, so it costs a
 * fraction of the update (docs/decisions/postgres-complete.md). Other
 * outcomes (retries, releases) are written as by complete, and so is a
 * job that others wait for (an edge names it): its outcome decides theirs,
 * so it is kept until they are settled, and pruned after. Same input and
 * output.
 */
export function completeAndDelete(schema: string): string {
  const { s, J } = tables(schema);
  return `
WITH ${OUTCOMES},
split AS (SELECT o.*, state IN ('succeeded', 'failed') AND NOT ${awaited(s, "o.id")} AS gone FROM o),
fin AS (SELECT * FROM split WHERE gone),
rest AS (SELECT * FROM split WHERE NOT gone),
del AS (
  DELETE FROM ${J} j USING fin f
  WHERE j.id = f.id AND j.state = 'processing' AND j.lease_token = f.token
  RETURNING f.i, f.state, j.concurrency_key
),
upd AS (${writeOutcomes(schema, "rest")}),
${freeSlotsCte(s, "(SELECT concurrency_key FROM del UNION ALL SELECT concurrency_key FROM upd) AS left_processing")},
${tallyCte(s, "(SELECT state FROM del UNION ALL SELECT state FROM upd) AS finished_now", "$2")},
${notifyCte("upd", "$3", "upd.state = 'enqueued'")}
SELECT i, false AS dependents FROM del UNION ALL SELECT upd.i, upd.dependents FROM upd CROSS JOIN woke`;
}
