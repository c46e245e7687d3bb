/*
 * Paused queues (qml_paused_queues, migration 0002): a paused queue accepts
 * jobs and gives none to a claim, which reads this table in its own
 * statement (claim.ts).
 */

/** Pauses ?1 as of ?2 (now); a queue already paused keeps the time it was paused at. */
export const pauseQueue = `INSERT INTO qml_paused_queues (queue, paused_at) VALUES (?1, ?2) ON CONFLICT (queue) DO NOTHING`;

/** Resumes ?1; nothing when it is not paused. */
export const resumeQueue = `DELETE FROM qml_paused_queues WHERE queue = ?1`;

/** Output: queue, one row per paused queue (the caller sorts them). */
export const pausedQueues = `SELECT queue FROM qml_paused_queues`;
