/** stats, counts. Output: queue, state, n per pair present. */
export const statsCounts = `SELECT queue, state, count(*) AS n FROM qml_jobs GROUP BY queue, state`;

/** stats, throughput. Input: ?1 first minute bucket, ?2 first hour bucket. Output: size_ms, bucket, succeeded, failed. */
export const statsBuckets = `
SELECT size_ms, bucket, succeeded, failed FROM qml_throughput
WHERE (size_ms = 60000 AND bucket >= ?1) OR (size_ms = 3600000 AND bucket >= ?2)`;
