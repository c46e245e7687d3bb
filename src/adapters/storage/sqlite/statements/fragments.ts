/**
 * Pieces the statements share: the job columns as read, the history entry
 * and its append built in SQL, the throughput tally. Nothing here is a
 * statement of its own.
 *
 * SQLite has no schemas: qml's tables are named qml_* (migrations/).
 */
import { HISTORY_LIMIT } from "../../../../core/job.js";

export const FINISHED = `('succeeded', 'failed', 'deleted')`;
export const DELAYED = `('scheduled', 'awaiting_retry')`;
/** Not started yet: what a debounce may still change. */
export const WAITING = `('scheduled', 'enqueued')`;

/**
 * Whether a dependency edge (qml_job_deps, migration 0005) names job id
 * `id` (an SQL expression) as the dependency: jobs wait for it. One probe
 * of the edges' primary key.
 */
export function awaited(id: string): string {
  return `EXISTS (SELECT 1 FROM qml_job_deps d WHERE d.dep = ${id})`;
}

/** Columns of a job as the backend reads them (JSON as text, parsed once by postgres/rows.ts). */
const JOB_COLUMNS = [
  "id",
  "name",
  "queue",
  "priority",
  "state",
  "attempts",
  "max_attempts",
  "retry",
  "timeout_ms",
  "unique_key",
  "unique_until",
  "concurrency_key",
  "concurrency_limit",
  "rate_key",
  "rate_limit",
  "rate_interval",
  "rate_window",
  "metadata",
  "created_at",
  "updated_at",
  "run_at",
  "lease_owner",
  "lease_until",
  "lease_token",
  "finished_at",
  "args",
  "result",
  "error",
  "progress",
  "flow",
  "steps",
  "history",
] as const;

export const JOB_COLUMN_LIST = JOB_COLUMNS.join(", ");

/** Set by the claim to its own parameters: the caller has them. */
const SET_BY_CLAIM = new Set<string>(["state", "lease_owner", "lease_until", "updated_at"]);

/**
 * Columns of a claimed job: the job's columns without those the claim sets
 * to its own parameters, plus seq, for the caller to put the jobs in claim
 * order (RETURNING comes back in no particular order).
 */
export const CLAIM_COLUMN_LIST = [...JOB_COLUMNS.filter((c) => !SET_BY_CLAIM.has(c)), "seq"].join(", ");

/**
 * One history entry as JSON text, key order as the core's entries. Each
 * argument is an SQL expression; `at` is cast, since a driver may bind a
 * number as REAL (1.0e12 would read back the same, but as another text).
 * `reason` and `worker` are left out when not given (never null here).
 */
export function entry(state: string, at: string, reason?: string, worker?: string): string {
  return `json_object('state', ${state}, 'at', CAST(${at} AS INTEGER)${reason !== undefined ? `, 'reason', ${reason}` : ""}${worker !== undefined ? `, 'worker', ${worker}` : ""})`;
}

/** A fixed string as an SQL literal (callers pass constants without quotes). */
export function lit(value: string): string {
  return `'${value}'`;
}

/**
 * SET clauses that append `entries` (JSON text of `n` entries joined by
 * char(10)) to the row's history and keep the last HISTORY_LIMIT, as
 * PostgreSQL's append_history does: past the limit, whole lines are dropped
 * from the front. `n` is 1 or 2 (a claim that promotes a due job appends
 * two), so at most two lines go. Both clauses read the old row.
 */
export function appendHistory(entries: string, n = "1"): string {
  const drop1 = `substr(history, instr(history, char(10)) + 1)`;
  const drop2 = `substr(${drop1}, instr(${drop1}, char(10)) + 1)`;
  return `history = CASE
      WHEN hn + ${n} <= ${HISTORY_LIMIT} THEN CASE WHEN history = '' THEN '' ELSE history || char(10) END
      WHEN hn + ${n} - ${HISTORY_LIMIT} = 1 THEN ${drop1} || char(10)
      ELSE ${drop2} || char(10)
    END || ${entries},
    hn = min(hn + ${n}, ${HISTORY_LIMIT})`;
}

/**
 * SET clauses that append `entries` (JSON text of `n` entries joined by
 * char(10), n from 1 to HISTORY_LIMIT) and keep the last HISTORY_LIMIT,
 * for the rare append of any number of entries (a batch that debounces one
 * job several times). SQLite has no "n-th occurrence": past the limit, a
 * recursive CTE drops one line per step, at most HISTORY_LIMIT steps, on
 * the row's own history (`row`: the updated table's name, which the CTE
 * reads as the outer row). appendHistory is the cheaper form for one or two.
 */
export function appendHistoryMany(row: string, entries: string, n: string): string {
  const drop = `${row}.hn + ${n} - ${HISTORY_LIMIT}`;
  const kept = `(WITH RECURSIVE cut(rest, k) AS (
        SELECT ${row}.history, ${drop}
        UNION ALL
        SELECT substr(rest, instr(rest, char(10)) + 1), k - 1 FROM cut WHERE k > 0
      ) SELECT rest FROM cut WHERE k = 0)`;
  return `history = CASE
      WHEN ${row}.hn + ${n} <= ${HISTORY_LIMIT} THEN CASE WHEN ${row}.history = '' THEN '' ELSE ${row}.history || char(10) END
      WHEN ${drop} >= ${row}.hn THEN ''
      ELSE ${kept} || char(10)
    END || ${entries},
    hn = min(${row}.hn + ${n}, ${HISTORY_LIMIT})`;
}

/**
 * Adds `succeeded` and `failed` (SQL expressions over `source`, a FROM
 * clause) to the minute and hour buckets of `nowParam`. Runs before the
 * statement that finishes the jobs, over the same selection, in the same
 * batch: the batch is one transaction, so what it counts is what applies.
 */
export function tally(source: string, succeeded: string, failed: string, nowParam: string): string {
  return `
INSERT INTO qml_throughput AS t (size_ms, bucket, succeeded, failed)
SELECT z.size_ms, (CAST(${nowParam} AS INTEGER) / z.size_ms) * z.size_ms, n.s, n.f
FROM (SELECT coalesce(sum(${succeeded}), 0) AS s, coalesce(sum(${failed}), 0) AS f FROM ${source}) AS n,
     (SELECT 60000 AS size_ms UNION ALL SELECT 3600000) AS z
WHERE n.s + n.f > 0
ON CONFLICT (size_ms, bucket) DO UPDATE SET succeeded = t.succeeded + excluded.succeeded, failed = t.failed + excluded.failed`;
}
