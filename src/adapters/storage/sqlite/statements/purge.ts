/**
 * purge
 * Input:  ?1 json array of states, ?2 updated before (ms), ?3 limit.
 * Output: one row per job deleted.
 */
export const purge = `
DELETE FROM qml_jobs WHERE seq IN (
  SELECT seq FROM qml_jobs WHERE state IN (SELECT value FROM json_each(?1)) AND updated_at < ?2 LIMIT ?3)
RETURNING seq`;
