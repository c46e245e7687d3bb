import { HISTORY_LIMIT } from "../../../../core/job.js";
import { notifyCte, tables } from "./fragments.js";

/**
 * insert: a batch of key groups, each settled against the holder of its
 * unique key as this statement sees it.
 *
 * The caller folds the batch (records are taken in order) into one group
 * per unique key (or per record without one) and, since what a group does
 * depends only on its key's holder, sends each group's plan for every case;
 * the statement picks the plan by the holder's `kind`:
 *
 *   free     no holder: insert the group's `free` record.
 *   expired  holder's unique_until <= now: it loses unique_key and
 *            unique_until (freed), then as free.
 *   waiting  holder scheduled or enqueued: when the group debounces, the
 *            holder takes the d_* fields and d_history (debounced).
 *   running  holder started or finished: when the group debounces, the
 *            holder loses its key (freed) and the group's `run` record is
 *            inserted with it.
 *
 * The old holder's key is cleared before the insert that takes it (ins
 * reads freed), or the unique index would refuse the new row. A holder is
 * freed only if the record taking its key can be inserted (its id is not
 * taken), so a key is never left without a job.
 *
 * Races: the updates re-check the holder (READ COMMITTED re-reads a row a
 * concurrent statement changed) and change nothing when it is no longer as
 * seen; an insert whose key a concurrent statement took after this one's
 * snapshot does nothing (ON CONFLICT). Either way the group comes back
 * with neither inserted, taken nor debounced, and the caller sends it
 * again: a new statement sees the new holder.
 *
 * Input:  $1 json array of groups {g, unique_key (null: no key), and for a
 *         debounce of a waiting holder (else null): d_args (JSON text),
 *         d_metadata, d_run_at, d_state, d_unique_until, d_history (the
 *         entries' JSON text joined by newlines), d_n (their count)},
 *         $2 now, $3 NOTIFY channel or null,
 *         $4 json array of records {g, role ('free', 'run' or 'both'), id,
 *         name, queue, priority, state, max_attempts, retry, timeout_ms,
 *         unique_key, unique_until, concurrency_key, concurrency_limit, rate_key,
 *         rate_limit, rate_interval, metadata, flow (FlowSpec or null), run_at, args (JSON text),
 *         history (entries' JSON text joined by newlines), hn (their count)};
 *         ids are distinct across the batch.
 * Output: per group: g, kind, hid (the holder's id), inserted (the record
 *         of its kind was inserted), taken (it was not: a job with its id
 *         existed), debounced (the holder took the d_* fields).
 *
 * Flows: an inserted record in state 'awaiting' writes an edge (dep,
 * waiter) per id of its flow's dependsOn (migration 0007) in this
 * statement, whether or not that job exists; a record not inserted writes
 * none. Awaiting jobs are not announced (no claim takes them).
 */
export function insert(schema: string): string {
  const { s, J } = tables(schema);
  const columns = `seq, id, name, queue, priority, state, attempts, max_attempts, retry, timeout_ms, unique_key, unique_until,
                    concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval, metadata, flow, created_at, updated_at, run_at, lease_token, args, history, hn`;
  const values = `seq, id, name, queue, priority, state, 0, max_attempts, retry, timeout_ms, unique_key, unique_until,
         concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval, metadata, flow, $2::bigint, $2::bigint, run_at, 0, args::json, history, hn`;
  return `
WITH grp AS (
  SELECT * FROM json_to_recordset($1::json) AS x(g int, unique_key text, d_history text, d_n int)
),
rec AS (
  SELECT * FROM json_to_recordset($4::json) AS x(
    g int, role text, id text, name text, queue text, priority int, state text, max_attempts int, retry jsonb,
    timeout_ms int, unique_key text, unique_until bigint,
    concurrency_key text, concurrency_limit int, rate_key text, rate_limit int, rate_interval bigint, metadata jsonb, flow json, run_at bigint, args text, history text, hn int)
),
held AS (
  -- LIMIT keeps each lookup a probe of the unique index per group.
  SELECT grp.g, h.id, h.state, h.unique_until FROM grp LEFT JOIN LATERAL (
    SELECT u.id, u.state, u.unique_until FROM ${J} u WHERE u.unique_key = grp.unique_key LIMIT 1
  ) h ON true
  WHERE grp.d_n IS NULL
  UNION ALL
  -- A debouncing group locks its holder as it reads it (in key order, so
  -- that two batches lock their common keys in one order) and so reads its
  -- latest version, which no claim can take (SKIP LOCKED passes it over)
  -- before this statement writes it.
  SELECT grp.g, h.id, h.state, h.unique_until FROM (SELECT * FROM grp WHERE d_n IS NOT NULL ORDER BY unique_key COLLATE "C") grp
  LEFT JOIN LATERAL (
    SELECT u.id, u.state, u.unique_until FROM ${J} u WHERE u.unique_key = grp.unique_key LIMIT 1 FOR UPDATE
  ) h ON true
),
seen AS (
  SELECT grp.*, h.id AS hid,
         CASE WHEN h.id IS NULL THEN 'free'
              WHEN h.unique_until <= $2::bigint THEN 'expired'
              WHEN h.state IN ('scheduled', 'enqueued') THEN 'waiting'
              ELSE 'running' END AS kind
  FROM grp JOIN held h ON h.g = grp.g
),
pick AS (
  -- Numbered in batch order from the table's own sequence: the two
  -- inserts below then keep the batch's order (seq breaks claim-order ties).
  SELECT p.*, nextval((SELECT pg_get_serial_sequence('${J}', 'seq'))::regclass) AS seq FROM (
    SELECT rec.*, seen.kind, seen.hid, seen.d_n FROM seen JOIN rec ON rec.g = seen.g
    WHERE CASE WHEN seen.kind = 'running' THEN rec.role <> 'free'
               WHEN seen.kind = 'waiting' AND seen.d_n IS NULL THEN false
               ELSE rec.role <> 'run' END
    ORDER BY rec.g
  ) p
),
freed AS (
  -- An UPDATE tests its conditions on the version its snapshot sees first
  -- (the one held read may be newer): a locked holder (a debouncing group's)
  -- is matched by id and key alone, as held saw it; another (an expired
  -- key of a first-mode group) is re-checked, and left as it is when a
  -- debounce moved its window since.
  UPDATE ${J} j SET unique_key = NULL, unique_until = NULL
  FROM pick p
  WHERE p.kind IN ('expired', 'running') AND j.id = p.hid AND j.unique_key = p.unique_key
    AND (p.d_n IS NOT NULL OR j.unique_until <= $2::bigint)
    AND NOT EXISTS (SELECT 1 FROM ${J} e WHERE e.id = p.id)
  RETURNING p.g
),
ins AS (
  INSERT INTO ${J} (${columns}) OVERRIDING SYSTEM VALUE
  SELECT ${values} FROM pick
  WHERE (kind = 'free' AND d_n IS NULL) OR g IN (SELECT g FROM freed)
  ON CONFLICT DO NOTHING
  RETURNING id, queue, run_at, state, flow
),
upserted AS (
  INSERT INTO ${J} AS j (${columns}) OVERRIDING SYSTEM VALUE
  SELECT ${values} FROM pick p
  WHERE p.d_n IS NOT NULL AND (p.kind = 'waiting' OR (p.kind = 'free' AND NOT EXISTS (SELECT 1 FROM ${J} e WHERE e.id = p.id)))
  ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO UPDATE SET
    args = EXCLUDED.args,
    metadata = EXCLUDED.metadata,
    run_at = EXCLUDED.run_at,
    state = EXCLUDED.state,
    unique_until = EXCLUDED.unique_until,
    updated_at = EXCLUDED.updated_at,
    (history, hn) = (
      SELECT ${s}.append_history(j.history, j.hn, d.d_history, d.d_n), least(j.hn + d.d_n, ${HISTORY_LIMIT})
      FROM grp d WHERE d.unique_key = EXCLUDED.unique_key
    )
  WHERE j.state IN ('scheduled', 'enqueued') AND (j.unique_until IS NULL OR j.unique_until > $2::bigint)
  RETURNING j.id, j.queue, j.run_at, j.unique_key, j.state, j.flow
),
made AS (
  -- The rows this statement created (an upserted row is the group's own
  -- record only when its key was free; otherwise it is the holder, debounced).
  SELECT id, queue, run_at, state, flow FROM ins
  UNION ALL
  SELECT u.id, u.queue, u.run_at, u.state, u.flow FROM upserted u JOIN pick p ON p.id = u.id AND p.kind = 'free'
),
linked AS (
  -- An awaiting job's dependency edges, written with it (and only if it
  -- was created: a record whose id or key was taken writes none).
  INSERT INTO ${s}.edges (dep, waiter)
  SELECT d.dep, m.id FROM made m CROSS JOIN LATERAL json_array_elements_text(m.flow -> 'dependsOn') AS d(dep)
  WHERE m.state = 'awaiting' AND m.flow IS NOT NULL
  ON CONFLICT DO NOTHING
),
woken AS (
  -- Awaiting jobs wake no one: no claim takes them.
  SELECT id, queue, run_at FROM ins WHERE state <> 'awaiting' UNION ALL SELECT id, queue, run_at FROM upserted WHERE state <> 'awaiting'
),
${notifyCte("woken", "$3")}
SELECT g, CASE WHEN debounced THEN 'waiting' ELSE kind END AS kind, CASE WHEN debounced THEN uid ELSE hid END AS hid, inserted, taken, debounced
FROM (
  SELECT s.g, s.kind, s.hid, u.id AS uid,
         coalesce(u.id IS NOT NULL AND (s.kind = 'waiting' OR u.id <> p.id), false) AS debounced,
         (i.id IS NOT NULL OR coalesce(s.kind = 'free' AND u.id = p.id, false)) AS inserted,
         (p.id IS NOT NULL AND i.id IS NULL AND u.id IS NULL AND EXISTS (SELECT 1 FROM ${J} e WHERE e.id = p.id)) AS taken
  FROM seen s
  LEFT JOIN pick p ON p.g = s.g
  LEFT JOIN ins i ON i.id = p.id
  LEFT JOIN upserted u ON u.unique_key = s.unique_key
  CROSS JOIN woke
) r`;
}
