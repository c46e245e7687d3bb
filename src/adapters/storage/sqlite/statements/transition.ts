import { appendHistory, awaited, entry, tally } from "./fragments.js";

/*
 * transition (an operator's delete or requeue; the core settling awaiting
 * jobs: release, fail, delete), for a batch of ids: when awaiting jobs
 * may leave, transitionRetain (target enqueued) and transitionEdges; then
 * transitionTally when the target is failed; then this update, then `get`
 * (get.ts) of the same ids, which reads every job as it is after it,
 * changed or not. The statements before the update select what it
 * changes as it will (same ids, same states): the batch is one transaction.
 */

/** The jobs the update changes: ?1 json array of ids, ?2 json array of states they may leave. */
const CHANGED = `id IN (SELECT value FROM json_each(?1)) AND state IN (SELECT value FROM json_each(?2))`;

/** The awaiting jobs among those the update changes. */
const LEAVING = `SELECT id FROM qml_jobs WHERE ${CHANGED} AND state = 'awaiting'`;

/**
 * A released job (to enqueued) is about to run and read the jobs it waited
 * for (ctx.dependencies()): their retention starts again now (waited_until,
 * migration 0005), so that one finished long ago is not pruned before it
 * runs. Before transitionEdges, which it reads. Only in a batch whose
 * target is enqueued.
 * Input:  ?1 ids, ?2 states they may leave, ?3 now.
 */
export const transitionRetain = `
UPDATE qml_jobs SET waited_until = ?3
WHERE id IN (SELECT dep FROM qml_job_deps WHERE waiter IN (${LEAVING}))`;

/**
 * A job that leaves `awaiting` waits no more: the edges it is the waiter of
 * go (qml_job_deps_waiter), in the batch that moves it.
 * Input:  ?1 ids, ?2 states they may leave.
 */
export const transitionEdges = `
DELETE FROM qml_job_deps WHERE waiter IN (${LEAVING})`;

/**
 * A waiting job failed by its dependency counts in the failed throughput,
 * as a failed run does. Only in a batch whose target is failed.
 * Input:  ?1 ids, ?2 states they may leave, ?3 now.
 */
export const transitionTally = tally(`qml_jobs WHERE ${CHANGED}`, "0", "1", "?3");

/**
 * Input:  ?1 ids, ?2 states they may leave, ?3 target state ('deleted',
 *         'enqueued' or 'failed'), ?4 reason, ?5 now, ?6 the error recorded
 *         by a failed target (JSON text; null otherwise).
 * Output: id of each job changed, and deps: 1 when a dependency edge names
 *         it (jobs wait for it: the caller flags a job it finished).
 */
export const transition = `
UPDATE qml_jobs SET
  state = ?3,
  lease_owner = NULL,
  lease_until = NULL,
  lease_token = lease_token + 1,
  updated_at = ?5,
  attempts = CASE WHEN ?3 = 'enqueued' THEN 0 ELSE attempts END,
  run_at = CASE WHEN ?3 = 'enqueued' THEN ?5 ELSE run_at END,
  finished_at = CASE WHEN ?3 = 'enqueued' THEN NULL ELSE ?5 END,
  error = CASE WHEN ?3 = 'enqueued' THEN NULL WHEN ?3 = 'failed' THEN coalesce(?6, error) ELSE error END,
  result = CASE WHEN ?3 = 'enqueued' THEN NULL ELSE result END,
  progress = CASE WHEN ?3 = 'enqueued' THEN NULL ELSE progress END,
  ${appendHistory(entry("?3", "?5", "?4"))}
WHERE ${CHANGED}
RETURNING id, ${awaited("id")} AS deps`;
