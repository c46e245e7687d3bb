import { appendHistory } from "./fragments.js";

/*
 * Durable steps (migration 0006): a job's steps, written under its lease,
 * and the event-waiter index.
 */

/**
 * saveSteps: replaces a job's steps and appends one history entry, fenced
 * by the lease as setProgress is. The entry comes as JSON text, made by
 * the caller from the core's entry (keys in the core's order, `reason` and
 * `worker` only when given), as Redis's steps.lua takes it.
 * Input:  ?1 id, ?2 token, ?3 steps (JSON text), ?4 now, ?5 the history
 *         entry (JSON text).
 * Output: one row when the lease is still held (and the job written).
 */
export const saveSteps = `
UPDATE qml_jobs SET
  steps = ?3,
  updated_at = ?4,
  ${appendHistory("?5")}
WHERE id = ?1 AND state = 'processing' AND lease_token = ?2
RETURNING 1 AS ok`;

/** Input: ?1 event, ?2 job id, ?3 now. Up to 100 expired rows (not the pair written) go before each addWaiter. */
export const waitersPurge = `
DELETE FROM qml_waiters WHERE (event, job_id) IN (
  SELECT event, job_id FROM qml_waiters WHERE expires_at <= ?3 AND NOT (event = ?1 AND job_id = ?2) LIMIT 100)`;

/** Input: ?1 event, ?2 job id, ?3 expiresAt. */
export const addWaiter = `
INSERT INTO qml_waiters (event, job_id, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (event, job_id) DO UPDATE SET expires_at = excluded.expires_at`;

/** Input: ?1 event, ?2 now, ?3 limit. Output: job_id per live entry. */
export const waiters = `SELECT job_id FROM qml_waiters WHERE event = ?1 AND expires_at > ?2 LIMIT ?3`;

/** Input: ?1 event, ?2 json array of job ids. */
export const removeWaiters = `DELETE FROM qml_waiters WHERE event = ?1 AND job_id IN (SELECT value FROM json_each(?2))`;
