import { tables } from "./fragments.js";

/**
 * stats
 * Input:  $1 first minute bucket, $2 first hour bucket.
 * Output: counts (JSON [[queue, state, n]…]) and buckets (JSON [[size_ms, bucket, succeeded, failed]…]).
 */
export function stats(schema: string): string {
  const { s, J } = tables(schema);
  return `
SELECT
  (SELECT coalesce(json_agg(json_build_array(queue, state, n)), '[]'::json)
     FROM (SELECT queue, state, count(*) AS n FROM ${J} GROUP BY queue, state) c)::text AS counts,
  (SELECT coalesce(json_agg(json_build_array(size_ms, bucket, succeeded, failed)), '[]'::json)
     FROM ${s}.throughput
     WHERE (size_ms = 60000 AND bucket >= $1::bigint) OR (size_ms = 3600000 AND bucket >= $2::bigint))::text AS buckets`;
}
