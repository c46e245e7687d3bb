import { DELAYED, appendHistory, claimColumns, entry, lit, str, tables } from "./fragments.js";

/**
 * The asked queues with their rank, less the paused ones (setPaused): a
 * paused queue is never scanned, so its jobs are neither promoted nor
 * claimed, and a pause committed before the statement began holds for all
 * of it. The planner hashes paused_queues (a few rows) for an anti-join with
 * the asked queues; the scans of each queue keep their plans
 * (test/postgres/explain.test.ts).
 */
function asked(s: string): string {
  return `(SELECT t.queue, t.ord FROM json_array_elements_text($1::json) WITH ORDINALITY AS t(queue, ord)
        WHERE NOT EXISTS (SELECT 1 FROM ${s}.paused_queues p WHERE p.queue = t.queue)) q`;
}

/**
 * The candidate scan of claim: per asked queue, the first ready jobs in
 * index order and the due delayed ones, each locked with SKIP LOCKED as it
 * is read, so concurrent claimers pass over each other's rows instead of
 * waiting or coming back empty. A queue contributes at most $2 rows of
 * each kind; the caller keeps the first $2 overall (rows of other queues
 * locked in passing are released when the statement ends).
 */
function candidates(s: string, J: string): string {
  const cols = (t: string) =>
    `${t}.id, ${t}.ctid, ${t}.priority, ${t}.run_at, ${t}.seq, ${t}.concurrency_key, ${t}.concurrency_limit, ${t}.rate_key, ${t}.rate_limit, ${t}.rate_interval, ${t}.rate_window`;
  // A job whose concurrency key is full (as of the statement's snapshot) is
  // passed over, so it neither holds back the jobs behind it nor takes a
  // place in the claim; the upsert in claim decides exactly.
  const notFull = (t: string) =>
    `(${t}.concurrency_key IS NULL OR NOT EXISTS (SELECT 1 FROM ${s}.concurrency_slots k WHERE k.key = ${t}.concurrency_key AND k.active >= ${t}.concurrency_limit))`;
  return `
  SELECT q.ord, ${cols("c")}
  FROM ${asked(s)}
  CROSS JOIN LATERAL (
    SELECT ${cols("r")} FROM ${J} r
    WHERE r.state = 'enqueued' AND r.queue = q.queue AND ${notFull("r")}
    ORDER BY r.priority DESC, r.run_at, r.seq
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
  ) c
  UNION ALL
  SELECT q.ord, ${cols("c")}
  FROM ${asked(s)}
  CROSS JOIN LATERAL (
    SELECT ${cols("d")} FROM ${J} d
    WHERE d.state IN ${DELAYED} AND d.queue = q.queue AND d.run_at <= $3::bigint AND ${notFull("d")}
    ORDER BY d.priority DESC, d.run_at, d.seq
    LIMIT $2::int
    FOR UPDATE SKIP LOCKED
  ) c`;
}

/**
 * claim
 * Input:  $1 json array of queue names (in priority order), $2 limit,
 *         $3 now, $4 owner, $5 lease ms.
 *         Queues in paused_queues give nothing (asked).
 * Output: the claimed jobs (claimColumns), in no particular order: the
 *         caller sorts them into claim order (queue order, priority desc,
 *         run_at, seq), which costs it less than a join of the updated
 *         rows back to `pick` costs the server. A due delayed job is
 *         promoted and claimed in the same step (two history entries).
 *
 * Limits (driver.ts), decided on the picked rows in this order:
 *   rwant/rgrant  each rate key's next starts go to its picked jobs that
 *                 hold none for this window (rate_starts upserted: the row
 *                 lock orders concurrent claims, and the newest row version
 *                 is read, never a snapshot); `placed` gives each its window;
 *   deferred      jobs whose start is in a later window are scheduled for it;
 *   cwant/cgrant  of the jobs that may start now, each concurrency key's
 *                 free slots (concurrency_slots upserted, as above) go to
 *                 its first ones (`go`);
 *   held          a job given a start now but no slot keeps its start for a
 *                 claim later in the window.
 * Rate first: a slot is never taken by a job the rate limit then puts off.
 *
 * The UPDATE reaches the picked rows by ctid (a TID scan), which costs less
 * than probing the primary key: the rows stay locked from the candidate
 * scan to the end of the statement, so their ctid cannot change. Costs:
 * docs/decisions/postgres-claim.md.
 */
export function claim(schema: string): string {
  const { s, J } = tables(schema);
  const order = "ord, priority DESC, run_at, seq";
  return `
WITH cand AS (${candidates(s, J)}
),
pick AS (
  SELECT cand.*, floor($3::bigint::numeric / cand.rate_interval)::bigint AS cur FROM cand ORDER BY ${order} LIMIT $2::int
),
rwant AS (
  SELECT rate_key AS key, max(rate_limit) AS lim, max(rate_interval) AS iv, max(cur) AS cur, count(*)::int AS want FROM pick
  WHERE rate_key IS NOT NULL AND rate_window IS DISTINCT FROM cur GROUP BY rate_key
),
rgrant AS (
  INSERT INTO ${s}.rate_starts AS k (key, next, base, lim, iv)
  SELECT key, cur * lim + want, cur * lim, lim, iv FROM rwant ORDER BY key
  ON CONFLICT (key) DO UPDATE SET
    base = greatest(k.next, EXCLUDED.base),
    next = greatest(k.next, EXCLUDED.base) + (EXCLUDED.next - EXCLUDED.base),
    lim = EXCLUDED.lim,
    iv = EXCLUDED.iv
  RETURNING k.key, k.base, k.lim
),
placed AS (
  SELECT p.*,
    CASE WHEN p.rate_key IS NULL OR p.rate_window IS NOT DISTINCT FROM p.cur THEN p.cur
         ELSE floor((g.base + row_number() OVER (PARTITION BY p.rate_key, p.rate_window IS NOT DISTINCT FROM p.cur ORDER BY ${order}) - 1)::numeric / g.lim)::bigint
    END AS win
  FROM pick p LEFT JOIN rgrant g ON g.key = p.rate_key
),
now_ok AS (
  SELECT * FROM placed WHERE rate_key IS NULL OR win = cur
),
cwant AS (
  SELECT concurrency_key AS key, max(concurrency_limit) AS lim, count(*)::int AS want FROM now_ok
  WHERE concurrency_key IS NOT NULL GROUP BY concurrency_key
),
cgrant AS (
  INSERT INTO ${s}.concurrency_slots AS k (key, active, lim, granted)
  SELECT key, least(want, lim), lim, least(want, lim) FROM cwant ORDER BY key
  ON CONFLICT (key) DO UPDATE SET
    granted = greatest(0, least(EXCLUDED.granted, EXCLUDED.lim - k.active)),
    active = k.active + greatest(0, least(EXCLUDED.granted, EXCLUDED.lim - k.active)),
    lim = EXCLUDED.lim
  RETURNING k.key, k.granted
),
go AS (
  SELECT n.ctid FROM (SELECT now_ok.*, row_number() OVER (PARTITION BY concurrency_key ORDER BY ${order}) AS crn FROM now_ok) n
  LEFT JOIN cgrant g ON g.key = n.concurrency_key
  WHERE n.concurrency_key IS NULL OR n.crn <= g.granted
),
held AS (
  UPDATE ${J} j SET rate_window = n.cur
  FROM now_ok n
  WHERE j.ctid = n.ctid AND n.rate_key IS NOT NULL AND n.rate_window IS DISTINCT FROM n.cur
    AND NOT EXISTS (SELECT 1 FROM go WHERE go.ctid = n.ctid)
),
deferred AS (
  UPDATE ${J} j SET
    state = 'scheduled',
    run_at = p.win * p.rate_interval,
    rate_window = p.win,
    updated_at = $3::bigint,
    ${appendHistory(
      s,
      entry(
        lit("scheduled"),
        "$3::bigint",
        str(
          `'rate limited (' || p.rate_key || '): starts at ' || to_char(to_timestamp((p.win * p.rate_interval) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`,
        ),
      ),
    )}
  FROM placed p
  WHERE j.ctid = p.ctid AND p.rate_key IS NOT NULL AND p.win > p.cur
),
upd AS (
  UPDATE ${J} j SET
    state = 'processing',
    attempts = j.attempts + 1,
    lease_token = j.lease_token + 1,
    lease_owner = $4::text,
    lease_until = $3::bigint + $5::bigint,
    updated_at = $3::bigint,
    rate_window = NULL,
    ${appendHistory(
      s,
      `CASE WHEN j.state = 'enqueued' THEN ''
           ELSE ${entry(lit("enqueued"), "$3::bigint", `CASE WHEN j.state = 'scheduled' THEN ${lit("due")} ELSE ${lit("retry due")} END`)} || E'\\n' END
      || ${entry(lit("processing"), "$3::bigint", `'"claimed (attempt ' || (j.attempts + 1)::text || ')"'`, str("$4::text"))}`,
      "CASE WHEN j.state = 'enqueued' THEN 1 ELSE 2 END",
    )}
  WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM go))
  RETURNING ${claimColumns("j")}
)
SELECT * FROM upd`;
}
