/**
 * extendLeases
 * Input:  ?1 json array of {id, token}, ?2 now, ?3 lease ms.
 * Output: ids whose lease was extended (still processing with that token),
 *         in no particular order (the caller keeps its input order).
 */
export const extendLeases = `
UPDATE qml_jobs SET lease_until = ?2 + ?3
FROM (SELECT json_extract(value, '$.id') AS l_id, json_extract(value, '$.token') AS l_token FROM json_each(?1)) AS l
WHERE qml_jobs.id = l.l_id AND qml_jobs.state = 'processing' AND qml_jobs.lease_token = l.l_token
RETURNING id`;
