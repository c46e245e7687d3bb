import { jobColumns, tables } from "./fragments.js";

/**
 * get
 * Input:  $1 json array of ids.
 * Output: jobColumns of the jobs that exist, in no particular order (the
 *         caller puts them in the order asked). The array is computed
 *         first and probed on the primary key.
 */
export function get(schema: string): string {
  const { J } = tables(schema);
  return `SELECT ${jobColumns("j")} FROM ${J} j WHERE j.id = ANY (ARRAY(SELECT json_array_elements_text($1::json)))`;
}
