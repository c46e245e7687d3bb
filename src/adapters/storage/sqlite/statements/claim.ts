import { CLAIM_COLUMN_LIST, DELAYED, appendHistory, entry, lit } from "./fragments.js";

/**
 * The candidates of queue `k` (0-based position in ?1): its first ready
 * jobs in index order (qml_jobs_ready) and its due delayed ones, at most ?2
 * of each, none when the queue is paused. SQLite has no LATERAL join: the
 * queues are spelled out, one pair of subqueries each, so that each one
 * walks its index and stops.
 *
 * A paused queue's name reads as NULL (one lookup in qml_paused_queues,
 * made once per statement: the subquery is not correlated), so its walk
 * finds nothing at once. Tested per job instead, the pause cost a claim
 * 11 ms over a paused backlog of 100,000 jobs; read as NULL, 0.2 ms.
 */
function candidates(k: number): string[] {
  const name = `json_extract(?1, '$[${k}]')`;
  const queue = `(SELECT ${name} WHERE NOT EXISTS (SELECT 1 FROM qml_paused_queues WHERE queue = ${name}))`;
  const cols = `seq, ${k} AS ord, priority, run_at, concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval, rate_window`;
  // A job whose concurrency key is full is passed over, so it does not hold
  // back the jobs behind it (qml_jobs_running_key: one index probe per keyed job).
  const notFull = `(c.concurrency_key IS NULL OR (SELECT count(*) FROM qml_jobs p WHERE p.state = 'processing' AND p.concurrency_key = c.concurrency_key) < c.concurrency_limit)`;
  return [
    `SELECT ${cols} FROM qml_jobs c
      WHERE state = 'enqueued' AND queue = ${queue} AND ${notFull}
      ORDER BY priority DESC, run_at, seq LIMIT ?2`,
    `SELECT ${cols} FROM qml_jobs c
      WHERE state IN ${DELAYED} AND queue = ${queue} AND run_at <= ?3 AND ${notFull}
      ORDER BY priority DESC, run_at, seq LIMIT ?2`,
  ];
}

/** D1 refuses a compound SELECT of more than 5 terms (SQLite's default is 500). */
const MAX_COMPOUND_TERMS = 5;

/**
 * `terms` (SELECTs of the same columns) as one UNION ALL, nested so that no
 * compound has more than MAX_COMPOUND_TERMS terms: 2 queues are one
 * compound of 4, 3 queues one of 2 around compounds of 5 and 1.
 */
export function unionAll(terms: string[]): string {
  if (terms.length <= MAX_COMPOUND_TERMS) return terms.map((t) => `SELECT * FROM (${t})`).join("\n    UNION ALL\n    ");
  const groups: string[] = [];
  for (let i = 0; i < terms.length; i += MAX_COMPOUND_TERMS) groups.push(unionAll(terms.slice(i, i + MAX_COMPOUND_TERMS)));
  return unionAll(groups);
}

const ORDER = "ord, priority DESC, run_at, seq";
/** Picked jobs that need a start of their rate key: keyed, and holding none for the current window. */
const NEEDS_START = "rkey IS NOT NULL AND (rwin IS NULL OR rwin <> cur)";

export interface ClaimStatements {
  /** In batch order; the claimed rows are the answer of statement `returning`. */
  texts: string[];
  /**
   * Which of the claim's parameters (0-based in now-order: queues, limit,
   * now, owner, lease ms) each statement takes, as its ?1, ?2…: a
   * statement numbers from ?1 whatever it reads (better-sqlite3 counts a
   * gap as a missing value).
   */
  params: number[][];
  returning: number;
}

/**
 * claim, for `queues` queues: one batch.
 * Input:  queue names (json array, in priority order), limit, now, owner,
 *         lease ms, handed to each statement as `params` says.
 * Output: the claimed jobs (CLAIM_COLUMN_LIST), in no particular order:
 *         the caller sorts them into claim order (queue order, priority
 *         desc, run_at, seq). A due delayed job is promoted and claimed in
 *         the same step (two history entries), as on PostgreSQL.
 *
 * Atomic under SQLite's single writer: the batch runs in a BEGIN IMMEDIATE
 * transaction (better-sqlite3) or as one D1 batch, so no other claim reads
 * between the pick and the update, and a pause committed before the claim
 * began is seen by it. The steps (driver.ts, claim's limits):
 *   1. pick the first `limit` due jobs into qml_claim_pick, passing over jobs of
 *      full concurrency keys;
 *   2. drop the picked jobs past their key's free slots (the running jobs
 *      of a key are counted, exactly: no other writer);
 *   3. give each job that needs a rate start its key's next one (win), and
 *   4. move the key's next start past them;
 *   5. schedule the jobs whose start is in a later window;
 *   6. claim the rest, and 7. empty the pick.
 * Without limits, steps 2-5 find no row to touch.
 */
export function claim(queues: number): ClaimStatements {
  const parts = unionAll(Array.from({ length: queues }, (_, k) => candidates(k)).flat());
  const pick = `
INSERT INTO qml_claim_pick (seq, ord, priority, run_at, ckey, clim, rkey, rlim, riv, rwin, cur)
SELECT seq, ord, priority, run_at, concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval, rate_window,
       CASE WHEN rate_interval IS NULL THEN NULL ELSE CAST(?3 AS INTEGER) / rate_interval END
FROM (
    ${parts}
) ORDER BY ${ORDER} LIMIT ?2`;
  const trim = `
DELETE FROM qml_claim_pick WHERE seq IN (
  SELECT seq FROM (
    SELECT seq, ckey, clim, row_number() OVER (PARTITION BY ckey ORDER BY ${ORDER}) AS rn FROM qml_claim_pick WHERE ckey IS NOT NULL
  ) r
  WHERE r.rn > r.clim - (SELECT count(*) FROM qml_jobs p WHERE p.state = 'processing' AND p.concurrency_key = r.ckey)
)`;
  const nextOf = "coalesce((SELECT s.next FROM qml_rate_starts s WHERE s.key = rkey), 0)";
  const windows = `
UPDATE qml_claim_pick SET win = x.win FROM (
  SELECT seq, (max(${nextOf}, cur * rlim) + row_number() OVER (PARTITION BY rkey ORDER BY ${ORDER}) - 1) / rlim AS win
  FROM qml_claim_pick WHERE ${NEEDS_START}
) x WHERE qml_claim_pick.seq = x.seq`;
  const advance = `
INSERT INTO qml_rate_starts (key, next, lim, iv)
SELECT * FROM (
  SELECT rkey, max(${nextOf}, max(cur) * max(rlim)) + count(*), max(rlim), max(riv)
  FROM qml_claim_pick WHERE ${NEEDS_START} GROUP BY rkey
) WHERE true
ON CONFLICT (key) DO UPDATE SET next = excluded.next, lim = excluded.lim, iv = excluded.iv`;
  const starts = `strftime('%Y-%m-%dT%H:%M:%fZ', p.win * p.riv / 1000.0, 'unixepoch')`;
  const defer = `
UPDATE qml_jobs SET
  state = 'scheduled',
  run_at = p.win * p.riv,
  rate_window = p.win,
  updated_at = ?1,
  ${appendHistory(entry(lit("scheduled"), "?1", `'rate limited (' || p.rkey || '): starts at ' || ${starts}`))}
FROM qml_claim_pick p
WHERE qml_jobs.seq = p.seq AND p.win > p.cur`;
  const update = `
UPDATE qml_jobs SET
  state = 'processing',
  attempts = attempts + 1,
  lease_token = lease_token + 1,
  lease_owner = ?2,
  lease_until = ?1 + ?3,
  updated_at = ?1,
  rate_window = NULL,
  ${appendHistory(
    `CASE WHEN state = 'enqueued' THEN ''
       ELSE ${entry(lit("enqueued"), "?1", `CASE WHEN state = 'scheduled' THEN ${lit("due")} ELSE ${lit("retry due")} END`)} || char(10) END
     || ${entry(lit("processing"), "?1", `'claimed (attempt ' || (attempts + 1) || ')'`, "?2")}`,
    "CASE WHEN state = 'enqueued' THEN 1 ELSE 2 END",
  )}
WHERE seq IN (SELECT seq FROM qml_claim_pick WHERE rkey IS NULL OR rwin = cur OR win = cur)
RETURNING ${CLAIM_COLUMN_LIST}`;
  const clear = `DELETE FROM qml_claim_pick`;
  return { texts: [pick, trim, windows, advance, defer, update, clear], params: [[0, 1, 2], [], [], [], [2], [2, 3, 4], []], returning: 5 };
}
