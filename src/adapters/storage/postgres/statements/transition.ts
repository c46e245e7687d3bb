import { appendHistory, awaited, entry, freeSlotsCte, jobColumns, notifyCancelledCte, notifyCte, str, tables, tallyCte } from "./fragments.js";

/**
 * transition (operator delete / requeue, and the core settling waiting
 * jobs: release, fail, delete), for a batch of ids
 * Input:  $1 json array of ids, $2 json array of states they may leave,
 *         $3 target state ('deleted' | 'enqueued' | 'failed'), $4 reason,
 *         $5 now, $6 NOTIFY channel or null, $7 the error recorded by
 *         'failed' (ErrorInfo as JSON) or null.
 * Output: one row per existing job: applied, dependents + jobColumns (the
 *         changed job, or as it is when its state is not in $2); no row
 *         for an id that does not exist. In no particular order: the
 *         caller matches by id. `dependents`: the transition finished the
 *         job (deleted, failed) and a dependency edge names it.
 *
 * A job not changed is read from the statement's snapshot, which is how it
 * was when the statement began: the UPDATE passed it over as it was then.
 *
 * `prev` locks the jobs to change and keeps the state each had (RETURNING
 * sees only the new row), so that the statement NOTIFYs the running jobs
 * it ended, `{"cancelled": [ids], "reason": $4}`, as well as the queues it
 * filled, and deletes the dependency edges of the jobs it took out of
 * `awaiting` (migration 0007). Locked as they are read, a job's state
 * there is the one the UPDATE changes (a claim committed meanwhile is
 * seen, not missed), and every job in `prev` is updated: the notification
 * reads `prev` alone, without a join to `upd`.
 *
 * 'failed' is counted in the failed throughput, as a failed run is.
 */
export function transition(schema: string): string {
  const { s, J } = tables(schema);
  const cols = jobColumns("j");
  return `
WITH ids AS (SELECT json_array_elements_text($1::json) AS id),
prev AS (
  SELECT p.id, p.state AS was, p.concurrency_key FROM ${J} p
  WHERE p.id = ANY (ARRAY(SELECT id FROM ids)) AND p.state IN (SELECT json_array_elements_text($2::json))
  FOR UPDATE OF p
),
upd AS (
  UPDATE ${J} j SET
    state = $3::text,
    lease_owner = NULL,
    lease_until = NULL,
    lease_token = j.lease_token + 1,
    updated_at = $5::bigint,
    attempts = CASE WHEN $3::text = 'enqueued' THEN 0 ELSE j.attempts END,
    run_at = CASE WHEN $3::text = 'enqueued' THEN $5::bigint ELSE j.run_at END,
    finished_at = CASE WHEN $3::text = 'enqueued' THEN NULL ELSE $5::bigint END,
    error = CASE WHEN $3::text = 'enqueued' THEN NULL WHEN $3::text = 'failed' THEN coalesce($7::jsonb, j.error) ELSE j.error END,
    result = CASE WHEN $3::text = 'enqueued' THEN NULL ELSE j.result END,
    progress = CASE WHEN $3::text = 'enqueued' THEN NULL ELSE j.progress END,
    ${appendHistory(s, entry(str("$3::text"), "$5::bigint", str("$4::text")))}
  WHERE j.id = ANY (ARRAY(SELECT id FROM prev))
  RETURNING ${cols}
),
unlinked AS (
  DELETE FROM ${s}.edges e WHERE e.waiter = ANY (ARRAY(SELECT id FROM prev WHERE was = 'awaiting'))
),
${freeSlotsCte(s, "(SELECT concurrency_key FROM prev WHERE was = 'processing') AS left_processing")},
${tallyCte(s, "upd", "$5")},
${notifyCte("upd", "$6", "upd.state = 'enqueued'")},
${notifyCancelledCte("prev", "$6", "$4", "$3::text IN ('deleted', 'failed') AND prev.was = 'processing'")}
SELECT true AS applied, $3::text <> 'enqueued' AND ${awaited(s, "upd.id")} AS dependents, upd.* FROM upd CROSS JOIN woke CROSS JOIN told
UNION ALL
SELECT false AS applied, false AS dependents, ${cols} FROM ${J} j
WHERE j.id = ANY (ARRAY(SELECT id FROM ids)) AND NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = j.id)`;
}
