import { tables } from "./fragments.js";

/**
 * extendLeases
 * Input:  $1 json array of {i, id, token}, $2 now, $3 lease ms.
 * Output: ids whose lease was extended (still processing with that token), in input order.
 */
export function extendLeases(schema: string): string {
  const { J } = tables(schema);
  return `
WITH l AS (SELECT * FROM json_to_recordset($1::json) AS x(i int, id text, token bigint)),
upd AS (
  UPDATE ${J} j SET lease_until = $2::bigint + $3::bigint
  FROM l
  WHERE j.id = ANY (ARRAY(SELECT id FROM l)) AND j.id = l.id AND j.state = 'processing' AND j.lease_token = l.token
  RETURNING l.i, j.id
)
SELECT id FROM upd ORDER BY i`;
}
