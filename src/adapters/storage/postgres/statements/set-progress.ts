import { tables } from "./fragments.js";

/**
 * setProgress
 * Input:  $1 id, $2 token, $3 progress (JSON text), $4 now.
 * Output: one row when the lease is still held.
 */
export function setProgress(schema: string): string {
  const { J } = tables(schema);
  return `
UPDATE ${J} SET progress = $3::json, updated_at = $4::bigint
WHERE id = $1::text AND state = 'processing' AND lease_token = $2::bigint
RETURNING 1 AS ok`;
}
