import type { SortField } from "../../../../core/driver.js";
import { jobColumns, tables } from "./fragments.js";

export type ListStatements = Record<`${SortField}:${"asc" | "desc"}`, string>;

const COLUMN_OF: Record<SortField, string> = { createdAt: "created_at", updatedAt: "updated_at", runAt: "run_at" };

/**
 * list: one text per sort column and direction, both from fixed lists.
 * Input:  $1 json array of states or null, $2 queue or null, $3 name or
 *         null, $4 text or null (case-insensitive substring of id, name or
 *         arguments; matched with strpos, so % and _ are plain characters),
 *         $5/$6 keyset position (sort value, id) or null, $7 page size + 1.
 * Output: jobColumns, in the page's order; ties broken by id in byte order.
 */
export function list(schema: string): ListStatements {
  const { J } = tables(schema);
  const cols = jobColumns("j");
  const out = {} as ListStatements;
  for (const sort of ["createdAt", "updatedAt", "runAt"] as const) {
    for (const order of ["asc", "desc"] as const) {
      const col = `j.${COLUMN_OF[sort]}`;
      const cmp = order === "asc" ? ">" : "<";
      const dir = order === "asc" ? "ASC" : "DESC";
      out[`${sort}:${order}`] = `
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
  return out;
}

/**
 * listAwaiting: list for the filter the maintenance sweep sends every beat
 * (state awaiting alone, by creation: Storage.sweepAwaiting), one text per
 * direction. The generic list takes its states as a parameter, so it cannot
 * use a partial index and reads the whole table; this one walks
 * jobs_awaiting_idx (migration 0007), which holds only awaiting jobs, in
 * the index's order (created_at, id in byte order), as list orders them.
 * Input:  $1 queue or null, $2 name or null, $3 text or null, $4/$5
 *         keyset position (created_at, id) or null, $6 page size + 1.
 * Output: as list.
 */
export function listAwaiting(schema: string): Record<"asc" | "desc", string> {
  const { J } = tables(schema);
  const cols = jobColumns("j");
  const text = (order: "asc" | "desc") => {
    const cmp = order === "asc" ? ">" : "<";
    const dir = order === "asc" ? "ASC" : "DESC";
    return `
SELECT ${cols} FROM ${J} j
WHERE j.state = 'awaiting'
  AND ($1::text IS NULL OR j.queue = $1::text)
  AND ($2::text IS NULL OR j.name = $2::text)
  AND ($3::text IS NULL OR strpos(lower(j.id), lower($3::text)) > 0 OR strpos(lower(j.name), lower($3::text)) > 0
       OR strpos(lower(j.args::text), lower($3::text)) > 0)
  AND ($4::bigint IS NULL OR (j.created_at, j.id COLLATE "C") ${cmp} ($4::bigint, $5::text COLLATE "C"))
ORDER BY j.created_at ${dir}, j.id COLLATE "C" ${dir}
LIMIT $6::int`;
  };
  return { asc: text("asc"), desc: text("desc") };
}
