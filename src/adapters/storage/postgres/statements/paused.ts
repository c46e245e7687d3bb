import { tables } from "./fragments.js";

/**
 * setPaused: lists a queue in paused_queues (migration 0004), or takes it
 * off. Idempotent: pausing a paused queue keeps its first paused_at.
 * Input:  $1 queue, $2 paused (boolean), $3 now.
 * Output: nothing.
 */
export function setPaused(schema: string): string {
  const { s } = tables(schema);
  return `
WITH resumed AS (
  DELETE FROM ${s}.paused_queues WHERE queue = $1::text AND NOT $2::boolean
)
INSERT INTO ${s}.paused_queues (queue, paused_at)
SELECT $1::text, $3::bigint WHERE $2::boolean
ON CONFLICT (queue) DO NOTHING`;
}

/** pausedQueues. Output: queue of every paused queue, sorted by its bytes (as the other backends sort). */
export function pausedQueues(schema: string): string {
  const { s } = tables(schema);
  return `SELECT queue FROM ${s}.paused_queues ORDER BY queue COLLATE "C"`;
}
