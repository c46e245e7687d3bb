/**
 * setProgress
 * Input:  ?1 id, ?2 token, ?3 progress (JSON text), ?4 now.
 * Output: one row when the lease is still held.
 */
export const setProgress = `
UPDATE qml_jobs SET progress = ?3, updated_at = ?4
WHERE id = ?1 AND state = 'processing' AND lease_token = ?2
RETURNING 1 AS ok`;
