/**
 * The SQL of SqliteBackend: each driver method is one batch of one or a few
 * statements, one module per statement or per few closely related ones.
 * SQLite has no schemas: the tables are named qml_* (migrations/).
 *
 * Each batch runs as one transaction (better-sqlite3: BEGIN IMMEDIATE;
 * D1: one `batch`), so a method's statements see each other's writes and
 * no other writer in between: SQLite has one writer at a time, which is
 * what makes a claim atomic without row locks. Batches of rows travel as
 * one JSON parameter unpacked with json_each.
 *
 * Times are integer epoch ms passed in by the caller; SQLite's own clock is
 * read by serverTime only.
 */
export { claim, type ClaimStatements } from "./claim.js";
export { completeDelete, completeTally, completeUpdate } from "./complete.js";
export { dependents } from "./dependents.js";
export { readEstimates, writeEstimates } from "./estimates.js";
export { extendLeases } from "./extend-leases.js";
export { CLAIM_COLUMN_LIST, JOB_COLUMN_LIST } from "./fragments.js";
export { get } from "./get.js";
export { insertDebounce, insertEdges, insertFree, insertPlan, insertPlanClear, insertPlanned, insertPlannedEdges, insertRows } from "./insert.js";
export { list, listAwaiting, type ListStatements } from "./list.js";
export { pauseQueue, pausedQueues, resumeQueue } from "./paused.js";
export { promoteDue } from "./promote-due.js";
export { pruneBuckets, pruneByAge, pruneByCount, pruneRateStarts } from "./prune.js";
export { purge } from "./purge.js";
export { reclaimExpired, reclaimTally } from "./reclaim-expired.js";
export { listRecurring, markRecurringFired, removeRecurring, upsertRecurring } from "./recurring.js";
export { migrationsTable, recordMigration, schemaVersion } from "./schema.js";
export { serverTime } from "./server-time.js";
export { setProgress } from "./set-progress.js";
export { statsBuckets, statsCounts } from "./stats.js";
export { addWaiter, removeWaiters, saveSteps, waiters, waitersPurge } from "./steps.js";
export { transition, transitionEdges, transitionRetain, transitionTally } from "./transition.js";
