import type { SortField } from "../../../../core/driver.js";
import { JOB_COLUMN_LIST } from "./fragments.js";

export type ListStatements = Record<`${SortField}:${"asc" | "desc"}`, string>;

const COLUMN_OF: Record<SortField, string> = { createdAt: "created_at", updatedAt: "updated_at", runAt: "run_at" };

/**
 * list: one text per sort column and direction, both from fixed lists.
 * Input:  ?1 json array of states or null, ?2 queue or null, ?3 name or
 *         null, ?4 text or null (a substring of id, name or arguments,
 *         matched with instr, so % and _ are plain characters; case folded
 *         by SQLite's lower(), which folds ASCII letters only), ?5/?6
 *         keyset position (sort value, id) or null, ?7 page size + 1.
 * Output: JOB_COLUMN_LIST, in the page's order; ties broken by id in byte
 *         order (SQLite's BINARY collation compares UTF-8 bytes).
 */
function listStatement(sort: SortField, order: "asc" | "desc", awaiting = false): string {
  const col = COLUMN_OF[sort];
  const cmp = order === "asc" ? ">" : "<";
  const dir = order === "asc" ? "ASC" : "DESC";
  return `
SELECT ${JOB_COLUMN_LIST} FROM qml_jobs
WHERE ${awaiting ? "state = 'awaiting' AND ?1 IS NOT NULL" : "(?1 IS NULL OR state IN (SELECT value FROM json_each(?1)))"}
  AND (?2 IS NULL OR queue = ?2)
  AND (?3 IS NULL OR name = ?3)
  AND (?4 IS NULL OR instr(lower(id), lower(?4)) > 0 OR instr(lower(name), lower(?4)) > 0 OR instr(lower(args), lower(?4)) > 0)
  AND (?5 IS NULL OR ${col} ${cmp} ?5 OR (${col} = ?5 AND id ${cmp} ?6))
ORDER BY ${col} ${dir}, id ${dir}
LIMIT ?7`;
}

export const list: ListStatements = {
  "createdAt:asc": listStatement("createdAt", "asc"),
  "createdAt:desc": listStatement("createdAt", "desc"),
  "updatedAt:asc": listStatement("updatedAt", "asc"),
  "updatedAt:desc": listStatement("updatedAt", "desc"),
  "runAt:asc": listStatement("runAt", "asc"),
  "runAt:desc": listStatement("runAt", "desc"),
};

/**
 * As `list`, for the filter state = awaiting alone: the maintenance sweep's
 * page (Storage.sweepAwaiting, every beat), which the literal state lets
 * SQLite read from qml_jobs_awaiting (created_at, id) instead of the whole
 * table. Same parameters (?1 is the states, unread but bound).
 */
export const listAwaiting: ListStatements = {
  "createdAt:asc": listStatement("createdAt", "asc", true),
  "createdAt:desc": listStatement("createdAt", "desc", true),
  "updatedAt:asc": listStatement("updatedAt", "asc", true),
  "updatedAt:desc": listStatement("updatedAt", "desc", true),
  "runAt:asc": listStatement("runAt", "asc", true),
  "runAt:desc": listStatement("runAt", "desc", true),
};
