/**
 * The SQL of PostgresBackend: one statement per driver method, one module
 * per statement (or per few closely related ones), each a builder
 * `(schema) => text`. This module assembles them for one schema.
 *
 * Each is a single statement (CTEs where several steps must be atomic) so
 * that it runs unchanged over Neon's HTTP endpoint, which has no interactive
 * transactions. The only text spliced in is the quoted schema name (strict
 * configuration) and constants chosen from fixed lists (sort column and
 * direction); everything else is a parameter. Batches travel as one JSON
 * parameter unpacked with json_to_recordset: one round trip, any driver.
 *
 * Times are bigint epoch ms passed in by the caller; the database's now()
 * is never used, so leases follow the core's clock.
 *
 * Writes reach their rows as `id = ANY (ARRAY(SELECT id FROM <cte>))`: the
 * array is computed first and probed on the primary key. Joining the CTE
 * instead lets the planner hash-join against a scan of every ready (or
 * finished) job, a cost that grows with the backlog. Rows selected
 * `FOR UPDATE SKIP LOCKED` in a CTE were re-checked when locked and stay
 * locked until the statement ends, so the UPDATE does not test their state
 * again.
 */
import { claim } from "./claim.js";
import { complete, completeAndDelete } from "./complete.js";
import { dependents } from "./dependents.js";
import { readEstimates, writeEstimates } from "./estimates.js";
import { extendLeases } from "./extend-leases.js";
import { get } from "./get.js";
import { insert } from "./insert.js";
import { list, listAwaiting, type ListStatements } from "./list.js";
import { promoteDue } from "./promote-due.js";
import { purge } from "./purge.js";
import { reclaimExpired } from "./reclaim-expired.js";
import { pausedQueues, setPaused } from "./paused.js";
import { listRecurring, markRecurringFired, removeRecurring, upsertRecurring } from "./recurring.js";
import { schemaVersion } from "./schema-version.js";
import { serverTime } from "./server-time.js";
import { setProgress } from "./set-progress.js";
import { addWaiter, removeWaiters, saveSteps, waiters } from "./steps.js";
import { stats } from "./stats.js";
import { transition } from "./transition.js";

export type { ListStatements } from "./list.js";

export interface Statements {
  insert: string;
  claim: string;
  setPaused: string;
  pausedQueues: string;
  extendLeases: string;
  complete: string;
  /** complete for a backend that keeps no finished jobs (maxFinishedJobs 0): finished jobs are deleted. */
  completeAndDelete: string;
  promoteDue: string;
  reclaimExpired: string;
  get: string;
  list: ListStatements;
  /** list of awaiting jobs by creation (the maintenance sweep's page), on their partial index. */
  listAwaiting: Record<"asc" | "desc", string>;
  stats: string;
  transition: string;
  dependents: string;
  purge: string;
  setProgress: string;
  saveSteps: string;
  addWaiter: string;
  waiters: string;
  removeWaiters: string;
  upsertRecurring: string;
  listRecurring: string;
  removeRecurring: string;
  markRecurringFired: string;
  readEstimates: string;
  writeEstimates: string;
  schemaVersion: string;
  serverTime: string;
}

/** Every statement for `schema` (validated, unquoted). */
export function buildStatements(schema: string): Statements {
  return {
    insert: insert(schema),
    claim: claim(schema),
    setPaused: setPaused(schema),
    pausedQueues: pausedQueues(schema),
    extendLeases: extendLeases(schema),
    complete: complete(schema),
    completeAndDelete: completeAndDelete(schema),
    promoteDue: promoteDue(schema),
    reclaimExpired: reclaimExpired(schema),
    get: get(schema),
    list: list(schema),
    listAwaiting: listAwaiting(schema),
    stats: stats(schema),
    transition: transition(schema),
    dependents: dependents(schema),
    purge: purge(schema),
    setProgress: setProgress(schema),
    saveSteps: saveSteps(schema),
    addWaiter: addWaiter(schema),
    waiters: waiters(schema),
    removeWaiters: removeWaiters(schema),
    upsertRecurring: upsertRecurring(schema),
    listRecurring: listRecurring(schema),
    removeRecurring: removeRecurring(schema),
    markRecurringFired: markRecurringFired(schema),
    readEstimates: readEstimates(schema),
    writeEstimates: writeEstimates(schema),
    schemaVersion: schemaVersion(schema),
    serverTime: serverTime(),
  };
}
