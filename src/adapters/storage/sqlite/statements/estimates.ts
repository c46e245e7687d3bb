/** readEstimates. Output: name, ms of every estimate. */
export const readEstimates = `SELECT name, ms FROM qml_estimates`;

/**
 * writeEstimates: upserts the names it carries, keeps the others.
 * Input:  ?1 json object {name: ms (integer)}, ?2 now.
 */
export const writeEstimates = `
INSERT INTO qml_estimates AS e (name, ms, updated_at)
SELECT key, value, ?2 FROM json_each(?1) WHERE true
ON CONFLICT (name) DO UPDATE SET ms = excluded.ms, updated_at = excluded.updated_at`;
