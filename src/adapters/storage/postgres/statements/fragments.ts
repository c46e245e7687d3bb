/**
 * Pieces the statements share: the job columns as read, the history entry
 * built in SQL, the NOTIFY and throughput CTEs. Nothing here is a statement
 * of its own.
 */
import { HISTORY_LIMIT } from "../../../../core/job.js";
import { quoteIdent } from "../driver.js";

/** The quoted schema and its job table, as every builder splices them. */
export function tables(schema: string): { s: string; J: string } {
  const s = quoteIdent(schema);
  return { s, J: `${s}.jobs` };
}

/** Columns of a job as the backend reads them (JSON as text: parsed once, the same on every driver): [column, as read]. */
const JOB_COLUMNS: Array<[string, string]> = [
  ["id", "id"],
  ["name", "name"],
  ["queue", "queue"],
  ["priority", "priority"],
  ["state", "state"],
  ["attempts", "attempts"],
  ["max_attempts", "max_attempts"],
  ["retry", "retry::text AS retry"],
  ["timeout_ms", "timeout_ms"],
  ["unique_key", "unique_key"],
  ["unique_until", "unique_until::text AS unique_until"],
  ["concurrency_key", "concurrency_key"],
  ["concurrency_limit", "concurrency_limit"],
  ["rate_key", "rate_key"],
  ["rate_limit", "rate_limit"],
  ["rate_interval", "rate_interval::text AS rate_interval"],
  ["rate_window", "rate_window::text AS rate_window"],
  ["metadata", "metadata::text AS metadata"],
  ["created_at", "created_at::text AS created_at"],
  ["updated_at", "updated_at::text AS updated_at"],
  ["run_at", "run_at::text AS run_at"],
  ["lease_owner", "lease_owner"],
  ["lease_until", "lease_until::text AS lease_until"],
  ["lease_token", "lease_token::text AS lease_token"],
  ["finished_at", "finished_at::text AS finished_at"],
  ["args", "args::text AS args"],
  ["result", "result::text AS result"],
  ["error", "error::text AS error"],
  ["progress", "progress::text AS progress"],
  ["flow", "flow::text AS flow"],
  ["steps", "steps::text AS steps"],
  ["history", "history"],
];

export function jobColumns(t: string): string {
  return JOB_COLUMNS.map(([, read]) => `${t}.${read}`).join(", ");
}

/** Set by the claim to its own parameters: the caller has them. */
const SET_BY_CLAIM = new Set(["state", "lease_owner", "lease_until", "updated_at"]);

/**
 * Columns of a claimed job: jobColumns without those the claim sets to its
 * own parameters, plus seq, for the caller to put the jobs in claim order.
 * A column the caller already has is not sent: each one costs per job to
 * form, send and parse (docs/decisions/postgres-claim.md).
 */
export function claimColumns(t: string): string {
  return [...JOB_COLUMNS.filter(([c]) => !SET_BY_CLAIM.has(c)).map(([, read]) => `${t}.${read}`), `${t}.seq::text AS seq`].join(", ");
}

/**
 * The concurrency slots given back by the jobs of `from` (a CTE of rows
 * that left processing, with their concurrency_key), in the statement that
 * moved them: a slot is never held by a job that no longer runs.
 *
 * The slot rows are locked in key order first, the order in which the
 * claim takes them (claim.ts, `cgrant`): updated in a join's order, a
 * completion holding key B and waiting for A met a claim holding A and
 * waiting for B, and PostgreSQL broke each such deadlock only after
 * deadlock_timeout (1 s): with a per-key limit, processing at c=20 fell to
 * a tenth (bench/README.md, "Per-key limits").
 */
export function freeSlotsCte(s: string, from: string): string {
  return `freed AS (
  UPDATE ${s}.concurrency_slots k SET active = greatest(k.active - f.n, 0)
  FROM (
    SELECT c.key, n.n FROM ${s}.concurrency_slots c
    JOIN (SELECT concurrency_key AS key, count(*)::int AS n FROM ${from} WHERE concurrency_key IS NOT NULL GROUP BY concurrency_key) n
      ON n.key = c.key
    ORDER BY c.key FOR UPDATE OF c
  ) f
  WHERE k.key = f.key
)`;
}

export const FINISHED = `('succeeded', 'failed', 'deleted')`;
export const DELAYED = `('scheduled', 'awaiting_retry')`;

/**
 * Whether a dependency edge (migration 0007) names the job whose id is
 * `id` as a dependency: jobs wait for it. A probe of the edges' primary key.
 */
export function awaited(s: string, id: string): string {
  return `EXISTS (SELECT 1 FROM ${s}.edges e WHERE e.dep = ${id})`;
}

/**
 * One history entry as JSON text, built by concatenation (as the Redis
 * scripts do), never as jsonb: every statement that changes state appends
 * one per job (migration 0002, docs/decisions/postgres-history-text.md).
 * Each argument is an SQL expression of JSON text (see `str`, `lit`); `at`
 * is a bigint. `reason` and `worker` are left out when null,
 * as jsonb_strip_nulls did under 0001. Key order matches the core's entries.
 */
export function entry(state: string, at: string, reason: string, worker?: string): string {
  return (
    `'{"state":' || ${state} || ',"at":' || (${at})::text || coalesce(',"reason":' || ${reason}, '')` +
    (worker === undefined ? "" : ` || coalesce(',"worker":' || ${worker}, '')`) +
    ` || '}'`
  );
}

/** An SQL text expression as a JSON string (null stays null). */
export function str(expr: string): string {
  return `to_json((${expr})::text)::text`;
}

/** A fixed string as a JSON string literal (callers pass constants without quotes or backslashes). */
export function lit(value: string): string {
  return `'${JSON.stringify(value)}'`;
}

/**
 * SET clauses that append `entries` (JSON text of `n` entries joined by
 * E'\n') to the history of `j`, keeping the last HISTORY_LIMIT (0002's
 * append_history trims the text, hn follows it). Both read the old row.
 */
export function appendHistory(s: string, entries: string, n = "1"): string {
  return `history = ${s}.append_history(j.history, j.hn, ${entries}, ${n}),
    hn = least(j.hn + ${n}, ${HISTORY_LIMIT})`;
}

/**
 * NOTIFY `$channel` once per queue with the earliest runAt, for the rows of
 * `source` (id, queue, run_at). A null channel sends nothing. Delivered on
 * commit only, so a rolled-back enqueue wakes no one.
 */
export function notifyCte(source: string, channelParam: string, where = "TRUE"): string {
  return `woke AS (
    SELECT count(*) AS n FROM (
      SELECT pg_notify(${channelParam}::text, json_build_object('queue', queue, 'runAt', min(run_at), 'id', min(id))::text)
      FROM ${source} WHERE ${channelParam}::text IS NOT NULL AND ${where} GROUP BY queue
    ) sent
  )`;
}

/**
 * NOTIFY `$channel` with `{"cancelled": [ids], "reason": …}` for the rows
 * of `source` (with an `id`) that pass `where`: running jobs a transition
 * ended, so that the servers running them abort at once. Delivered on
 * commit only. A payload must stay under 8000 bytes, so the ids go in
 * parts of about 6000 bytes of their JSON: a part holds at most 6000 bytes
 * plus one id (an id of 200 characters is at most 604 bytes as JSON with
 * its separator), the reason at most 300 characters (902 bytes; the core's
 * are under 220), with the keys under 7600 in all.
 */
export function notifyCancelledCte(source: string, channelParam: string, reasonParam: string, where: string): string {
  return `told AS (
    SELECT count(*) AS n FROM (
      SELECT pg_notify(${channelParam}::text, json_build_object('cancelled', json_agg(c.id), 'reason', left(${reasonParam}::text, 300))::text)
      FROM (
        SELECT id, sum(octet_length(to_json(id)::text) + 2) OVER (ORDER BY id) / 6000 AS part
        FROM ${source} WHERE ${channelParam}::text IS NOT NULL AND ${where}
      ) c GROUP BY c.part
    ) sent
  )`;
}

/**
 * Upserts the succeeded/failed counts of `source` (with a `state` column)
 * into the minute and hour buckets of `nowParam`. The rows are counted once
 * and the two bucket rows made from the counts, not by a join of every row
 * with both buckets, which costs per job (docs/decisions/postgres-complete.md).
 */
export function tallyCte(s: string, source: string, nowParam: string): string {
  return `tally AS (
    INSERT INTO ${s}.throughput AS t (size_ms, bucket, succeeded, failed)
    SELECT z.size_ms, (${nowParam}::bigint / z.size_ms) * z.size_ms, n.succeeded, n.failed
    FROM (SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded, count(*) FILTER (WHERE state = 'failed') AS failed FROM ${source}) n
    CROSS JOIN (VALUES (60000), (3600000)) AS z(size_ms)
    WHERE n.succeeded + n.failed > 0
    ORDER BY z.size_ms
    ON CONFLICT (size_ms, bucket) DO UPDATE SET succeeded = t.succeeded + EXCLUDED.succeeded, failed = t.failed + EXCLUDED.failed
  )`;
}
