import { tables } from "./fragments.js";

/**
 * dependents: the jobs waiting for any of a batch of jobs
 * Input:  $1 json array of dependency ids.
 * Output: waiter, each once, in no particular order: the waiters of the
 *         dependency edges (migration 0007) of those ids, found on the
 *         edges' primary key (dep, waiter).
 */
export function dependents(schema: string): string {
  const { s } = tables(schema);
  return `SELECT DISTINCT e.waiter FROM ${s}.edges e WHERE e.dep = ANY (ARRAY(SELECT json_array_elements_text($1::json)))`;
}
