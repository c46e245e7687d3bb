import { appendHistory, entry, str, tables } from "./fragments.js";

/**
 * Durable steps (migration 0008): a job's steps, written under its lease,
 * and the event-waiter index.
 */

/**
 * saveSteps: replaces a job's steps and appends one history entry, fenced
 * by the lease as setProgress is.
 * Input:  $1 id, $2 token, $3 steps (JSON text of StepRecord[]), $4 now,
 *         $5 the entry's state, $6 its at, $7 its reason (or null),
 *         $8 its worker (or null).
 * Output: one row when the lease is still held (and the job written).
 */
export function saveSteps(schema: string): string {
  const { s, J } = tables(schema);
  return `
UPDATE ${J} j SET
  steps = $3::json,
  updated_at = $4::bigint,
  ${appendHistory(s, entry(str("$5::text"), "$6::bigint", str("$7::text"), str("$8::text")))}
WHERE j.id = $1::text AND j.state = 'processing' AND j.lease_token = $2::bigint
RETURNING 1 AS ok`;
}

/**
 * Each addWaiter also deletes up to 100 expired rows other than its own
 * pair (one statement must not modify a row twice; its upsert replaces
 * that row anyway), locked SKIP LOCKED as the kv writes do (statements/kv.ts):
 * the index purges itself at the pace it is written. The rows are reached
 * by ctid (a TID scan): locked until the statement ends, they cannot move.
 * Input:  $1 event, $2 job id, $3 expiresAt, $4 now.
 * Output: nothing.
 */
export function addWaiter(schema: string): string {
  const { s } = tables(schema);
  return `
WITH purged AS (
  DELETE FROM ${s}.waiters WHERE ctid = ANY (ARRAY(
    SELECT w.ctid FROM ${s}.waiters w
    WHERE w.expires_at <= $4::bigint AND NOT (w.event = $1::text AND w.job_id = $2::text)
    LIMIT 100 FOR UPDATE SKIP LOCKED))
)
INSERT INTO ${s}.waiters (event, job_id, expires_at) VALUES ($1::text, $2::text, $3::bigint)
ON CONFLICT (event, job_id) DO UPDATE SET expires_at = EXCLUDED.expires_at`;
}

/**
 * waiters: the jobs noted for an event whose entry is live, and the
 * event's expired entries deleted in passing (up to 100 per call, SKIP
 * LOCKED: an entry a concurrent addWaiter is renewing is left to it, and
 * one renewed before the lock is re-checked and kept).
 * Input:  $1 event, $2 now, $3 limit.
 * Output: job_id per live entry, at most $3, in no particular order.
 */
export function waiters(schema: string): string {
  const { s } = tables(schema);
  return `
WITH purged AS (
  DELETE FROM ${s}.waiters WHERE event = $1::text AND job_id = ANY (ARRAY(
    SELECT w.job_id FROM ${s}.waiters w
    WHERE w.event = $1::text AND w.expires_at <= $2::bigint
    LIMIT 100 FOR UPDATE SKIP LOCKED))
)
SELECT job_id FROM ${s}.waiters WHERE event = $1::text AND expires_at > $2::bigint LIMIT $3::int`;
}

/**
 * removeWaiters
 * Input:  $1 event, $2 json array of job ids.
 * Output: nothing.
 */
export function removeWaiters(schema: string): string {
  const { s } = tables(schema);
  return `DELETE FROM ${s}.waiters WHERE event = $1::text AND job_id = ANY (ARRAY(SELECT json_array_elements_text($2::json)))`;
}
