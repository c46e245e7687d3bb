import { WAITING, appendHistoryMany } from "./fragments.js";

/*
 * insert. The caller folds the batch with postgres/insert-plan.ts (records
 * are taken in order, driver.ts): one group per unique key (or per record
 * without one), and for each group the record rows to insert in each case,
 * since what a group does depends only on its key's holder:
 *
 *   free     no holder: insert the group's `free` record.
 *   expired  holder's unique_until <= now: it loses unique_key and
 *            unique_until, then as free.
 *   waiting  holder scheduled or enqueued: when the group debounces, the
 *            holder takes the fields of the free record (which carries
 *            the last debounce's) and d_history ("debounced").
 *   running  holder started or finished: when the group debounces, the
 *            holder loses its key and the group's `run` record is inserted
 *            with it.
 *
 * A holder loses its key only if the record taking it can be inserted (its
 * id is not taken), so a key is never left without a job.
 *
 * Group rows: {g, unique_key}. Record rows: {g, role ('free', 'run' or
 * 'both'), id, name, queue, priority, state, max_attempts, retry (JSON
 * text), timeout_ms, unique_key, unique_until, metadata (JSON text),
 * run_at, args (JSON text), history (entries' JSON joined by newlines), hn
 * (their count), flow (JSON text, or absent)}, and on the free (or both) row of a group that debounces,
 * d_history and d_n: one "debounced" entry per debounce, for a waiting
 * holder. Ids are distinct across the batch.
 *
 * A batch without unique keys is one statement (insertRows), after
 * insertEdges when it holds awaiting records. With keys: insertPlan (per
 * chunk of groups), then per chunk of records insertDebounce (when a group
 * debounces), insertFree, insertPlannedEdges (when the batch holds
 * awaiting records) and insertPlanned, and insertPlanClear. The plan is decided once, by insertPlan, on
 * the jobs as the batch found them: freeing a running holder's key makes
 * it look like no holder, which would insert the `free` record instead of
 * the `run` one. SQLite's single writer keeps anything from coming in
 * between: the batch is one transaction.
 */

/** The columns an insert writes, and their values from `r`, a record row's JSON. */
function insertColumns(r: string): { columns: string; values: string } {
  const f = (name: string) => `json_extract(${r}, '$.${name}')`;
  return {
    columns: `id, name, queue, priority, state, attempts, max_attempts, retry, timeout_ms, unique_key, unique_until,
                      concurrency_key, concurrency_limit, rate_key, rate_limit, rate_interval, metadata, flow, created_at, updated_at, run_at, lease_token, args, history, hn`,
    values: `${f("id")}, ${f("name")}, ${f("queue")}, ${f("priority")}, ${f("state")}, 0, ${f("max_attempts")}, ${f("retry")},
       ${f("timeout_ms")}, ${f("unique_key")}, ${f("unique_until")}, ${f("concurrency_key")}, ${f("concurrency_limit")},
       ${f("rate_key")}, ${f("rate_limit")}, ${f("rate_interval")}, ${f("metadata")}, ${f("flow")},
       ?2, ?2, ${f("run_at")}, 0, ${f("args")}, ${f("history")}, ${f("hn")}`,
  };
}

const plain = insertColumns("value");

/**
 * The records of a batch without unique keys, in input order (seq, the
 * claim's last tie-breaker, is FIFO within a batch).
 * Input:  ?1 json array of record rows, ?2 now.
 * Output: the ids inserted; a record not among them found its id taken.
 */
export const insertRows = `
INSERT INTO qml_jobs (${plain.columns})
SELECT ${plain.values}
FROM json_each(?1) WHERE true
ORDER BY key
ON CONFLICT DO NOTHING
RETURNING id`;

/**
 * The dependency edges of the awaiting records of a batch without unique
 * keys that the next statement (insertRows) inserts: those whose id is
 * free. Before it, because after it a record that found its id taken
 * cannot be told from one it inserted; the batch is one transaction, so an
 * id free here is inserted there. A record written again with the same
 * ids (a retried enqueueFlow) writes no edge: its waiter may have been
 * released since, and an edge of a job that does not wait would hold its
 * dependency from pruning forever.
 * Input:  ?1 json array of record rows (as insertRows).
 */
export const insertEdges = `
INSERT INTO qml_job_deps (dep, waiter)
SELECT d.value, json_extract(r.value, '$.id')
FROM json_each(?1) AS r JOIN json_each(json_extract(r.value, '$.flow'), '$.dependsOn') AS d
WHERE json_extract(r.value, '$.state') = 'awaiting'
  AND NOT EXISTS (SELECT 1 FROM qml_jobs e WHERE e.id = json_extract(r.value, '$.id'))
ON CONFLICT DO NOTHING`;

/**
 * The plan of each group: its holder's kind and id, kept in
 * qml_insert_plan for the statements after it.
 * Input:  ?1 json array of group rows, ?2 now.
 * Output: g, kind, hid (null when free).
 */
export const insertPlan = `
INSERT INTO qml_insert_plan (g, kind, hid)
SELECT x.g,
       CASE WHEN h.id IS NULL THEN 'free'
            WHEN h.unique_until <= ?2 THEN 'expired'
            WHEN h.state IN ${WAITING} THEN 'waiting'
            ELSE 'running' END,
       h.id
FROM (SELECT json_extract(value, '$.g') AS g, json_extract(value, '$.unique_key') AS k FROM json_each(?1)) AS x
LEFT JOIN qml_jobs h ON h.unique_key = x.k
RETURNING g, kind, hid`;

/**
 * Waiting holders of groups that debounce take the fields of their group's
 * free record (folded with the last debounce's) and one history entry per
 * debounce (d_history, d_n: carried by the free record's row, the only
 * one that has them).
 * Input:  ?1 json array of record rows, ?2 now.
 * Output: the ids of the holders changed.
 */
export const insertDebounce = `
UPDATE qml_jobs SET
  args = d.args,
  metadata = d.metadata,
  run_at = d.run_at,
  state = d.state,
  unique_until = d.unique_until,
  updated_at = ?2,
  ${appendHistoryMany("qml_jobs", "d.history", "d.n")}
FROM (
  SELECT p.hid, json_extract(value, '$.args') AS args, json_extract(value, '$.metadata') AS metadata,
         json_extract(value, '$.run_at') AS run_at, json_extract(value, '$.state') AS state,
         json_extract(value, '$.unique_until') AS unique_until, json_extract(value, '$.d_history') AS history,
         json_extract(value, '$.d_n') AS n
  FROM json_each(?1) JOIN qml_insert_plan p ON p.g = json_extract(value, '$.g')
  WHERE p.kind = 'waiting' AND json_extract(value, '$.d_n') IS NOT NULL
) AS d
WHERE qml_jobs.id = d.hid
RETURNING id`;

/** Whether record row `r` is the one its group inserts under plan `p` (none when waiting). */
const PICKED = (r: string, p: string) =>
  `CASE ${p}.kind WHEN 'waiting' THEN false
     WHEN 'running' THEN json_extract(${r}, '$.role') <> 'free'
     ELSE json_extract(${r}, '$.role') <> 'run' END`;

/**
 * Expired holders, and running ones whose group inserts a record, lose
 * their key, unless that record's id is taken (it will not be inserted).
 * Before insertPlanned, whose rows take the keys.
 * Input:  ?1 json array of record rows.
 */
export const insertFree = `
UPDATE qml_jobs SET unique_key = NULL, unique_until = NULL
WHERE id IN (
  SELECT p.hid FROM json_each(?1) AS r JOIN qml_insert_plan p ON p.g = json_extract(r.value, '$.g')
  WHERE p.kind IN ('expired', 'running') AND ${PICKED("r.value", "p")}
    AND NOT EXISTS (SELECT 1 FROM qml_jobs e WHERE e.id = json_extract(r.value, '$.id'))
)`;

/**
 * As insertEdges, for the records insertPlanned inserts: picked by their
 * group's plan, their id free. After insertFree (which inserts nothing),
 * before insertPlanned.
 * Input:  ?1 json array of record rows.
 */
export const insertPlannedEdges = `
INSERT INTO qml_job_deps (dep, waiter)
SELECT d.value, json_extract(r.value, '$.id')
FROM json_each(?1) AS r
JOIN qml_insert_plan p ON p.g = json_extract(r.value, '$.g')
JOIN json_each(json_extract(r.value, '$.flow'), '$.dependsOn') AS d
WHERE ${PICKED("r.value", "p")}
  AND json_extract(r.value, '$.state') = 'awaiting'
  AND NOT EXISTS (SELECT 1 FROM qml_jobs e WHERE e.id = json_extract(r.value, '$.id'))
ON CONFLICT DO NOTHING`;

const planned = insertColumns("r.value");

/**
 * The record each group inserts under its plan, in input order.
 * Input:  ?1 json array of record rows, ?2 now.
 * Output: the ids inserted; a picked record not among them found its id taken.
 */
export const insertPlanned = `
INSERT INTO qml_jobs (${planned.columns})
SELECT ${planned.values}
FROM json_each(?1) AS r JOIN qml_insert_plan p ON p.g = json_extract(r.value, '$.g')
WHERE ${PICKED("r.value", "p")}
ORDER BY r.key
ON CONFLICT DO NOTHING
RETURNING id`;

/** Empties the plan: the last statement of a batch that made one. */
export const insertPlanClear = `DELETE FROM qml_insert_plan`;
