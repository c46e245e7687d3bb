/**
 * The SQL of PostgresStorage: one statement per contract method.
 *
 * Each is a single statement (CTEs where several steps must be atomic) so
 * that it runs unchanged over Neon's HTTP endpoint, which has no interactive
 * transactions. The only text spliced in is the quoted schema name (strict
 * configuration) and constants chosen from fixed lists (sort column and
 * direction); everything else is a parameter. Batches travel as one JSON
 * parameter unpacked with json_to_recordset: one round trip, any driver.
 *
 * Times are bigint epoch ms passed in by the caller; the database's now()
 * is never used, so leases follow the core's clock.
 *
 * Writes reach their rows as `id = ANY (ARRAY(SELECT id FROM <cte>))`: the
 * array is computed first and probed on the primary key. Joining the CTE
 * instead lets the planner hash-join against a scan of every ready (or
 * finished) job, a cost that grows with the backlog. Rows selected
 * `FOR UPDATE SKIP LOCKED` in a CTE were re-checked when locked and stay
 * locked until the statement ends, so the UPDATE does not test their state
 * again.
 */
import { HISTORY_LIMIT } from "../../../core/job.js";
import { quoteIdent } from "./driver.js";

export interface Statements {
  insertJobs: string;
  lookupExisting: string;
  claim: string;
  extendLeases: string;
  complete: string;
  /** complete for a storage that keeps no finished jobs (maxFinishedJobs 0): finished jobs are deleted. */
  completeAndDelete: string;
  promoteDue: string;
  reclaimExpired: string;
  getRecord: string;
  list: Record<`${"createdAt" | "updatedAt" | "runAt"}:${"asc" | "desc"}`, string>;
  stats: string;
  transition: string;
  purge: string;
  setProgress: string;
  upsertRecurring: string;
  listRecurring: string;
  removeRecurring: string;
  markRecurringFired: string;
  schemaVersion: string;
}

/** Columns of a job as PostgresStorage reads them (JSON as text: parsed once, the same on every driver): [column, as read]. */
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
 * Each column less is ~0.2 µs per job less to form, send and parse.
 */
export function claimColumns(t: string): string {
  return [...JOB_COLUMNS.filter(([c]) => !SET_BY_CLAIM.has(c)).map(([, read]) => `${t}.${read}`), `${t}.seq::text AS seq`].join(", ");
}

const FINISHED = `('succeeded', 'failed', 'deleted')`;
const DELAYED = `('scheduled', 'awaiting_retry')`;

/**
 * One history entry as JSON text, built by concatenation (as the Redis
 * scripts do): building and appending jsonb cost ~6 µs per job per
 * statement, out of ~25 (see migration 0002). Each argument is an SQL expression of JSON text (see `str`,
 * `lit`); `at` is a bigint. `reason` and `worker` are left out when null,
 * as jsonb_strip_nulls did under 0001. Key order matches the core's entries.
 */
function entry(state: string, at: string, reason: string, worker?: string): string {
  return (
    `'{"state":' || ${state} || ',"at":' || (${at})::text || coalesce(',"reason":' || ${reason}, '')` +
    (worker === undefined ? "" : ` || coalesce(',"worker":' || ${worker}, '')`) +
    ` || '}'`
  );
}

/** An SQL text expression as a JSON string (null stays null). */
function str(expr: string): string {
  return `to_json((${expr})::text)::text`;
}

/** A fixed string as a JSON string literal (callers pass constants without quotes or backslashes). */
function lit(value: string): string {
  return `'${JSON.stringify(value)}'`;
}

/**
 * SET clauses that append `entries` (JSON text of `n` entries joined by
 * E'\n') to the history of `j`, keeping the last HISTORY_LIMIT (0002's
 * append_history trims the text, hn follows it). Both read the old row.
 */
function appendHistory(s: string, entries: string, n = "1"): string {
  return `history = ${s}.append_history(j.history, j.hn, ${entries}, ${n}),
    hn = least(j.hn + ${n}, ${HISTORY_LIMIT})`;
}

/**
 * NOTIFY `$channel` once per queue with the earliest runAt, for the rows of
 * `source` (id, queue, run_at). A null channel sends nothing. Delivered on
 * commit only, so a rolled-back enqueue wakes no one.
 */
function notifyCte(source: string, channelParam: string, where = "TRUE"): string {
  return `woke AS (
    SELECT count(*) AS n FROM (
      SELECT pg_notify(${channelParam}::text, json_build_object('queue', queue, 'runAt', min(run_at), 'id', min(id))::text)
      FROM ${source} WHERE ${channelParam}::text IS NOT NULL AND ${where} GROUP BY queue
    ) sent
  )`;
}

/**
 * Upserts the succeeded/failed counts of `source` (with a `state` column)
 * into the minute and hour buckets of `nowParam`. The rows are counted once
 * and the two bucket rows made from the counts (a join of every row with
 * both buckets, grouped, cost ~2 µs per job).
 */
function tallyCte(s: string, source: string, nowParam: string): string {
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

export function buildStatements(schema: string): Statements {
  const s = quoteIdent(schema);
  const J = `${s}.jobs`;
  const cols = jobColumns("j");

  // insertJobs
  // Input:  $1 json array of {i, id, name, queue, priority, state, max_attempts,
  //         retry, timeout_ms, unique_key, metadata, run_at, args (JSON text),
  //         history (entries' JSON text joined by newlines), hn (their count)}
  //         (no two with the same id or unique_key: the caller dedupes the batch),
  //         $2 now, $3 NOTIFY channel or null.
  // Output: per input row in order: i, created, id (the new job's, or the
  //         existing one's that holds the id or unique key; null when that
  //         job was committed by a concurrent statement after this one began,
  //         which the caller resolves with lookupExisting).
  const insertJobs = `
WITH input AS (
  SELECT * FROM json_to_recordset($1::json) AS x(
    i int, id text, name text, queue text, priority int, state text, max_attempts int, retry jsonb,
    timeout_ms int, unique_key text, metadata jsonb, run_at bigint, args text, history text, hn int)
),
ins AS (
  INSERT INTO ${J} (id, name, queue, priority, state, attempts, max_attempts, retry, timeout_ms, unique_key,
                    metadata, created_at, updated_at, run_at, lease_token, args, history, hn)
  SELECT id, name, queue, priority, state, 0, max_attempts, retry, timeout_ms, unique_key,
         metadata, $2::bigint, $2::bigint, run_at, 0, args::json, history, hn
  FROM input ORDER BY i
  ON CONFLICT DO NOTHING
  RETURNING id, queue, run_at
),
${notifyCte("ins", "$3")}
SELECT input.i, ins.id IS NOT NULL AS created,
       coalesce(ins.id, (SELECT u.id FROM ${J} u WHERE u.unique_key = input.unique_key), (SELECT e.id FROM ${J} e WHERE e.id = input.id)) AS id
FROM input LEFT JOIN ins ON ins.id = input.id CROSS JOIN woke
ORDER BY input.i`;

  // lookupExisting
  // Input:  $1 json array of {i, id, unique_key}.
  // Output: i, id of the job holding that unique key (else that id), when one exists.
  const lookupExisting = `
SELECT x.i, coalesce((SELECT u.id FROM ${J} u WHERE u.unique_key = x.unique_key), (SELECT e.id FROM ${J} e WHERE e.id = x.id)) AS id
FROM json_to_recordset($1::json) AS x(i int, id text, unique_key text)`;

  // The candidate scan of claim: per asked queue, the first ready jobs in
  // index order and the due delayed ones, each locked with SKIP LOCKED as it
  // is read, so concurrent claimers pass over each other's rows instead of
  // waiting or coming back empty. A queue contributes at most $2 rows of
  // each kind; the caller keeps the first $2 overall (rows of other queues
  // locked in passing are released when the statement ends).
  const candidates = `
  SELECT c.id, c.ctid, q.ord, c.priority, c.run_at, c.seq
  FROM (SELECT queue, ord FROM json_array_elements_text($1::json) WITH ORDINALITY AS t(queue, ord)) q
  CROSS JOIN LATERAL (
    SELECT r.id, r.ctid, r.priority, r.run_at, r.seq FROM ${J} r
    WHERE r.state = 'enqueued' AND r.queue = q.queue
    ORDER BY r.priority DESC, r.run_at, r.seq
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
  ) c
  UNION ALL
  SELECT c.id, c.ctid, q.ord, c.priority, c.run_at, c.seq
  FROM (SELECT queue, ord FROM json_array_elements_text($1::json) WITH ORDINALITY AS t(queue, ord)) q
  CROSS JOIN LATERAL (
    SELECT d.id, d.ctid, d.priority, d.run_at, d.seq FROM ${J} d
    WHERE d.state IN ${DELAYED} AND d.queue = q.queue AND d.run_at <= $3::bigint
    ORDER BY d.priority DESC, d.run_at, d.seq
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
  ) c`;

  // claim
  // Input:  $1 json array of queue names (in priority order), $2 limit,
  //         $3 now, $4 owner, $5 lease ms.
  // Output: the claimed jobs (claimColumns), in no particular order: the
  //         caller sorts them into claim order (queue order, priority desc,
  //         run_at, seq), which costs it less than a join of the updated
  //         rows back to `pick` cost the server (~8 µs per job at batch
  //         250). A due delayed job is promoted and claimed in the same step
  //         (two history entries).
  // The UPDATE reaches the picked rows by ctid (a TID scan), not through the
  // primary key (~2 µs per job less): the rows stay locked from the
  // candidate scan to the end of the statement, so their ctid cannot change.
  const claim = `
WITH cand AS (${candidates}
),
pick AS (
  SELECT id, ctid, ord, priority, run_at, seq FROM cand ORDER BY ord, priority DESC, run_at, seq LIMIT $2::int
),
upd AS (
  UPDATE ${J} j SET
    state = 'processing',
    attempts = j.attempts + 1,
    lease_token = j.lease_token + 1,
    lease_owner = $4::text,
    lease_until = $3::bigint + $5::bigint,
    updated_at = $3::bigint,
    ${appendHistory(
      s,
      `CASE WHEN j.state = 'enqueued' THEN ''
           ELSE ${entry(lit("enqueued"), "$3::bigint", `CASE WHEN j.state = 'scheduled' THEN ${lit("due")} ELSE ${lit("retry due")} END`)} || E'\\n' END
      || ${entry(lit("processing"), "$3::bigint", `'"claimed (attempt ' || (j.attempts + 1)::text || ')"'`, str("$4::text"))}`,
      "CASE WHEN j.state = 'enqueued' THEN 1 ELSE 2 END",
    )}
  WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM pick))
  RETURNING ${claimColumns("j")}
)
SELECT * FROM upd`;

  // extendLeases
  // Input:  $1 json array of {i, id, token}, $2 now, $3 lease ms.
  // Output: ids whose lease was extended (still processing with that token), in input order.
  const extendLeases = `
WITH l AS (SELECT * FROM json_to_recordset($1::json) AS x(i int, id text, token bigint)),
upd AS (
  UPDATE ${J} j SET lease_until = $2::bigint + $3::bigint
  FROM l
  WHERE j.id = ANY (ARRAY(SELECT id FROM l)) AND j.id = l.id AND j.state = 'processing' AND j.lease_token = l.token
  RETURNING l.i, j.id
)
SELECT id FROM upd ORDER BY i`;

  // complete
  // Input:  $1 json array of {i, id, token, state, run_at, result (JSON text),
  //         error, reason, worker}, no id twice (the caller keeps the first
  //         outcome per job: a second one in the same batch is lost, as it
  //         would be one call later), $2 now, $3 NOTIFY channel or null
  //         (releases wake servers).
  // Output: i of each applied outcome, in no particular order. An outcome
  //         applies only while the job is processing under the same token
  //         (fencing). Finished outcomes are tallied for stats.
  const outcomes = `o AS (
  SELECT * FROM json_to_recordset($1::json) AS x(
    i int, id text, token bigint, state text, run_at bigint, result text, error jsonb, reason text, worker text)
)`;
  // The outcomes of `from` (a CTE of outcomes) written to their jobs, if
  // the jobs are still held under the outcomes' tokens.
  const writeOutcomes = (from: string) => `UPDATE ${J} j SET
    state = f.state,
    updated_at = $2::bigint,
    lease_owner = NULL,
    lease_until = NULL,
    attempts = CASE WHEN f.state = 'enqueued' THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
    run_at = CASE f.state WHEN 'awaiting_retry' THEN coalesce(f.run_at, $2::bigint) WHEN 'enqueued' THEN $2::bigint ELSE j.run_at END,
    finished_at = CASE WHEN f.state IN ('succeeded', 'failed') THEN $2::bigint ELSE j.finished_at END,
    result = CASE WHEN f.state = 'succeeded' THEN f.result::json ELSE j.result END,
    error = CASE WHEN f.state = 'succeeded' THEN NULL
                 WHEN f.state IN ('failed', 'awaiting_retry') THEN coalesce(f.error, j.error)
                 ELSE j.error END,
    ${appendHistory(s, entry(str("f.state"), "$2::bigint", str("f.reason"), str("f.worker")))}
  FROM ${from} f
  WHERE j.id = f.id AND j.state = 'processing' AND j.lease_token = f.token
  RETURNING f.i, j.id, j.queue, j.run_at, j.state`;
  const complete = `
WITH ${outcomes},
upd AS (${writeOutcomes("o")}),
${tallyCte(s, "upd", "$2")},
${notifyCte("upd", "$3", "upd.state = 'enqueued'")}
SELECT upd.i FROM upd CROSS JOIN woke`;

  // completeAndDelete: complete for a storage that keeps no finished jobs
  // (maxFinishedJobs 0). A job that succeeds or fails is deleted in the
  // statement that finishes it, as the next prune would have done: a
  // deletion writes no new row version and no index entry (~10 µs per job
  // instead of ~35). Other outcomes (retries, releases) are written as by
  // complete. Same input and output.
  const completeAndDelete = `
WITH ${outcomes},
fin AS (SELECT * FROM o WHERE state IN ('succeeded', 'failed')),
rest AS (SELECT * FROM o WHERE state NOT IN ('succeeded', 'failed')),
del AS (
  DELETE FROM ${J} j USING fin f
  WHERE j.id = f.id AND j.state = 'processing' AND j.lease_token = f.token
  RETURNING f.i, f.state
),
upd AS (${writeOutcomes("rest")}),
${tallyCte(s, "del", "$2")},
${notifyCte("upd", "$3", "upd.state = 'enqueued'")}
SELECT i FROM del UNION ALL SELECT upd.i FROM upd CROSS JOIN woke`;

  // promoteDue
  // Input:  $1 now, $2 limit, $3 NOTIFY channel or null.
  // Output: n, how many due scheduled/awaiting_retry jobs became enqueued.
  const promoteDue = `
WITH due AS (
  SELECT id FROM ${J} WHERE state IN ${DELAYED} AND run_at <= $1::bigint
  ORDER BY run_at LIMIT $2::int FOR UPDATE SKIP LOCKED
),
upd AS (
  UPDATE ${J} j SET
    state = 'enqueued',
    updated_at = $1::bigint,
    ${appendHistory(s, entry(lit("enqueued"), "$1::bigint", `CASE WHEN j.state = 'scheduled' THEN ${lit("due")} ELSE ${lit("retry due")} END`))}
  WHERE j.id = ANY (ARRAY(SELECT id FROM due))
  RETURNING j.id, j.queue, j.run_at
),
${notifyCte("upd", "$3")}
SELECT (SELECT count(*) FROM upd)::int AS n, (SELECT n FROM woke) AS notified`;

  // reclaimExpired, with the housekeeping that rides along on it
  // Input:  $1 now, $2 limit, $3 NOTIFY channel or null, $4 finished-job TTL
  //         ms, $5 max finished jobs, $6 prune batch size.
  // Output: n, how many expired leases were reclaimed (back to enqueued, or
  //         failed when no attempts are left; token bumped either way).
  // Pruning happens here because this is the statement every runtime's beat
  // already sends: finished jobs past the TTL or past the count limit (at
  // most $6 per call, oldest first) and throughput buckets past the stats
  // windows (24 h of minutes, 31 days of hours).
  const reclaimExpired = `
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
  RETURNING j.id, j.queue, j.run_at, j.state
),
${tallyCte(s, "upd", "$1")},
${notifyCte("upd", "$3", "upd.state = 'enqueued'")},
pruned AS (
  DELETE FROM ${J} WHERE id = ANY (ARRAY(
    (SELECT id FROM ${J} WHERE state IN ${FINISHED} AND finished_at < $1::bigint - $4::bigint ORDER BY finished_at LIMIT $6::int)
    UNION
    (SELECT id FROM ${J} WHERE state IN ${FINISHED} ORDER BY finished_at DESC OFFSET $5::int LIMIT $6::int)
  ))
  RETURNING 1
),
old_buckets AS (
  DELETE FROM ${s}.throughput
  WHERE (size_ms = 60000 AND bucket < $1::bigint - 86400000) OR (size_ms = 3600000 AND bucket < $1::bigint - 2678400000)
)
SELECT (SELECT count(*) FROM upd)::int AS n, (SELECT n FROM woke) AS notified, (SELECT count(*) FROM pruned)::int AS pruned`;

  const getRecord = `SELECT ${cols} FROM ${J} j WHERE j.id = $1::text`;

  // list (one text per sort column and direction, both from fixed lists)
  // Input:  $1 json array of states or null, $2 queue or null, $3 name or
  //         null, $4 text or null (case-insensitive substring of id, name or
  //         arguments; matched with strpos, so % and _ are plain characters),
  //         $5/$6 cursor (sort value, id) or null, $7 page size + 1.
  // Output: jobColumns, in the page's order; ties broken by id in byte order.
  const columnOf = { createdAt: "created_at", updatedAt: "updated_at", runAt: "run_at" } as const;
  const list = {} as Statements["list"];
  for (const sort of ["createdAt", "updatedAt", "runAt"] as const) {
    for (const order of ["asc", "desc"] as const) {
      const col = `j.${columnOf[sort]}`;
      const cmp = order === "asc" ? ">" : "<";
      const dir = order === "asc" ? "ASC" : "DESC";
      list[`${sort}:${order}`] = `
SELECT ${cols} FROM ${J} j
WHERE ($1::json IS NULL OR j.state IN (SELECT json_array_elements_text($1::json)))
  AND ($2::text IS NULL OR j.queue = $2::text)
  AND ($3::text IS NULL OR j.name = $3::text)
  AND ($4::text IS NULL OR strpos(lower(j.id), lower($4::text)) > 0 OR strpos(lower(j.name), lower($4::text)) > 0
       OR strpos(lower(j.args::text), lower($4::text)) > 0)
  AND ($5::bigint IS NULL OR ${col} ${cmp} $5::bigint OR (${col} = $5::bigint AND j.id COLLATE "C" ${cmp} $6::text COLLATE "C"))
ORDER BY ${col} ${dir}, j.id COLLATE "C" ${dir}
LIMIT $7::int`;
    }
  }

  // stats
  // Input:  $1 first minute bucket, $2 first hour bucket.
  // Output: counts (JSON [[queue, state, n]…]) and buckets (JSON [[size_ms, bucket, succeeded, failed]…]).
  const stats = `
SELECT
  (SELECT coalesce(json_agg(json_build_array(queue, state, n)), '[]'::json)
     FROM (SELECT queue, state, count(*) AS n FROM ${J} GROUP BY queue, state) c)::text AS counts,
  (SELECT coalesce(json_agg(json_build_array(size_ms, bucket, succeeded, failed)), '[]'::json)
     FROM ${s}.throughput
     WHERE (size_ms = 60000 AND bucket >= $1::bigint) OR (size_ms = 3600000 AND bucket >= $2::bigint))::text AS buckets`;

  // transition (operator delete / requeue)
  // Input:  $1 id, $2 json array of states it may leave, $3 target state
  //         ('deleted' | 'enqueued'), $4 reason, $5 now, $6 NOTIFY channel or null.
  // Output: one row: applied + jobColumns (the changed job, or as it is when
  //         its state is not in $2); no row when the job does not exist.
  const transition = `
WITH upd AS (
  UPDATE ${J} j SET
    state = $3::text,
    lease_owner = NULL,
    lease_until = NULL,
    lease_token = j.lease_token + 1,
    updated_at = $5::bigint,
    attempts = CASE WHEN $3::text = 'enqueued' THEN 0 ELSE j.attempts END,
    run_at = CASE WHEN $3::text = 'enqueued' THEN $5::bigint ELSE j.run_at END,
    finished_at = CASE WHEN $3::text = 'enqueued' THEN NULL ELSE $5::bigint END,
    error = CASE WHEN $3::text = 'enqueued' THEN NULL ELSE j.error END,
    result = CASE WHEN $3::text = 'enqueued' THEN NULL ELSE j.result END,
    progress = CASE WHEN $3::text = 'enqueued' THEN NULL ELSE j.progress END,
    ${appendHistory(s, entry(str("$3::text"), "$5::bigint", str("$4::text")))}
  WHERE j.id = $1::text AND j.state IN (SELECT json_array_elements_text($2::json))
  RETURNING ${cols}
),
${notifyCte("upd", "$6", "upd.state = 'enqueued'")}
SELECT true AS applied, upd.* FROM upd CROSS JOIN woke
UNION ALL
SELECT false AS applied, ${cols} FROM ${J} j WHERE j.id = $1::text AND NOT EXISTS (SELECT 1 FROM upd)`;

  // purge
  // Input:  $1 json array of states, $2 updated before (ms), $3 limit.
  // Output: n, how many jobs were deleted.
  const purge = `
WITH d AS (
  DELETE FROM ${J} WHERE id = ANY (ARRAY(
    SELECT id FROM ${J} WHERE state IN (SELECT json_array_elements_text($1::json)) AND updated_at < $2::bigint LIMIT $3::int))
  RETURNING 1
)
SELECT count(*)::int AS n FROM d`;

  // setProgress
  // Input:  $1 id, $2 token, $3 progress (JSON text), $4 now.
  // Output: one row when the lease is still held.
  const setProgress = `
UPDATE ${J} SET progress = $3::json, updated_at = $4::bigint
WHERE id = $1::text AND state = 'processing' AND lease_token = $2::bigint
RETURNING 1 AS ok`;

  // upsertRecurring: an existing definition keeps created_at and last_slot.
  // Input: $1 id, $2 cron, $3 timezone, $4 name, $5 args (JSON text), $6 options (JSON text), $7 created, $8 updated.
  const upsertRecurring = `
INSERT INTO ${s}.recurring AS r (id, cron, timezone, name, args, options, created_at, updated_at)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::json, $6::jsonb, $7::bigint, $8::bigint)
ON CONFLICT (id) DO UPDATE SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, name = EXCLUDED.name,
  args = EXCLUDED.args, options = EXCLUDED.options, updated_at = EXCLUDED.updated_at`;

  const listRecurring = `
SELECT id, cron, timezone, name, args::text AS args, options::text AS options, created_at::text AS created_at,
       updated_at::text AS updated_at, last_slot::text AS last_slot
FROM ${s}.recurring`;

  const removeRecurring = `DELETE FROM ${s}.recurring WHERE id = $1::text RETURNING 1 AS ok`;

  // markRecurringFired: moves last_slot forward only; no row when another caller got there first.
  const markRecurringFired = `
UPDATE ${s}.recurring SET last_slot = $2::bigint
WHERE id = $1::text AND (last_slot IS NULL OR last_slot < $2::bigint)
RETURNING 1 AS ok`;

  const schemaVersion = `SELECT coalesce(max(version), 0)::int AS version FROM ${s}.migrations`;

  return {
    insertJobs,
    lookupExisting,
    claim,
    extendLeases,
    complete,
    completeAndDelete,
    promoteDue,
    reclaimExpired,
    getRecord,
    list,
    stats,
    transition,
    purge,
    setProgress,
    upsertRecurring,
    listRecurring,
    removeRecurring,
    markRecurringFired,
    schemaVersion,
  };
}
