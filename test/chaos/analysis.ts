/**
 * What a chaos run is judged on, from the store's records and the side
 * table of executions (run-log.ts):
 *
 * - lost: a job the test was told exists (enqueue acknowledged) that is
 *   missing or did not end in the expected state;
 * - duplicates: executions beyond the first, each of which must be
 *   explained by the job's own history: one "lease expired" reclaim per
 *   extra execution, and a fresh lease token for every execution;
 * - transitions: every job's history is a path of the lifecycle in which no
 *   state follows itself (a write applied twice, say by a retried request,
 *   shows up as processing → processing or succeeded → succeeded), and
 *   `attempts` matches the claims the history shows.
 *
 * No vitest import here.
 */
import { JobState, type JobRecord } from "../../src/core/job.js";
import { validateFilter, type ListFilter, type Storage } from "../../src/core/storage.js";
import type { Run } from "./run-log.js";

/** Every record matching `filter`, oldest first, page by page. */
export async function listAll(storage: Storage, filter: ListFilter = {}): Promise<JobRecord[]> {
  const out: JobRecord[] = [];
  let after: { sortValue: number; id: string } | undefined;
  do {
    const page = await storage.driver.list(validateFilter(filter), { limit: 500, sort: "createdAt", order: "asc", ...(after ? { after } : {}) });
    out.push(...page.items);
    after = page.next;
  } while (after);
  return out;
}

const NEXT: Record<JobState, readonly JobState[]> = {
  scheduled: ["enqueued", "processing", "deleted"],
  enqueued: ["processing", "deleted", "scheduled"],
  awaiting_retry: ["enqueued", "processing", "deleted"],
  processing: ["succeeded", "failed", "awaiting_retry", "enqueued", "deleted"],
  succeeded: ["enqueued"],
  failed: ["enqueued"],
  deleted: ["enqueued"],
  awaiting: ["enqueued", "failed", "deleted"],
};

/** How far apart two processes' (store-aligned) clocks may be and still order history entries. */
const CLOCK_TOLERANCE_MS = 2000;

const isReclaim = (reason: string | undefined) => reason !== undefined && reason.startsWith("lease expired");
const isRelease = (reason: string | undefined) => reason !== undefined && reason.startsWith("released");

/** Problems with one job's history; empty when it is a valid path with no transition made twice. */
export function historyProblems(r: JobRecord): string[] {
  const problems: string[] = [];
  const h = r.history;
  if (h.length === 0) return [`${r.id}: empty history`];
  if (h[0]!.state !== JobState.Enqueued && h[0]!.state !== JobState.Scheduled && h[0]!.state !== JobState.Awaiting)
    problems.push(`${r.id}: starts in ${h[0]!.state}`);
  let claims = 0;
  let released = 0;
  for (let i = 0; i < h.length; i++) {
    const e = h[i]!;
    if (e.state === JobState.Processing) claims++;
    if (i === 0) continue;
    const prev = h[i - 1]!;
    if (!NEXT[prev.state].includes(e.state)) {
      problems.push(`${r.id}: ${prev.state} → ${e.state} (${e.reason ?? ""}) at entry ${i}`);
    }
    if (prev.state === JobState.Processing && e.state === JobState.Enqueued && isRelease(e.reason)) released++;
    // Entries come from different processes' clocks (aligned with the store's to within a round trip).
    if (e.at < prev.at - CLOCK_TOLERANCE_MS) problems.push(`${r.id}: entry ${i} is ${prev.at - e.at} ms before the one it follows`);
  }
  if (h[h.length - 1]!.state !== r.state) problems.push(`${r.id}: state ${r.state} but history ends in ${h[h.length - 1]!.state}`);
  // A released attempt is given back (attempts - 1); every other claim counts.
  if (h.length < 50 && r.attempts !== claims - released)
    problems.push(`${r.id}: attempts ${r.attempts} but the history shows ${claims} claims, ${released} released`);
  return problems;
}

export interface Analysis {
  /** Jobs the test expected. */
  jobs: number;
  executions: number;
  lost: string[];
  /** Executions beyond the first, summed over jobs. */
  duplicates: number;
  /** Extra executions with no lease expiry to explain them. */
  unexplained: string[];
  /** History paths that are not valid (see historyProblems). */
  badHistories: string[];
  /** Jobs by final state. */
  states: Partial<Record<JobState, number>>;
  /** Lease expiries the histories show, summed over jobs. */
  reclaims: number;
}

export interface AnalyseOptions {
  /** The state every expected job must end in (default succeeded). */
  finalState?: JobState;
}

export function analyse(expected: Iterable<string>, records: JobRecord[], runs: Run[], options: AnalyseOptions = {}): Analysis {
  const finalState = options.finalState ?? JobState.Succeeded;
  const byId = new Map(records.map((r) => [r.id, r]));
  const runsById = new Map<string, Run[]>();
  for (const run of runs) {
    let list = runsById.get(run.id);
    if (!list) runsById.set(run.id, (list = []));
    list.push(run);
  }
  const ids = [...new Set(expected)];
  const lost: string[] = [];
  const unexplained: string[] = [];
  const badHistories: string[] = [];
  const states: Partial<Record<JobState, number>> = {};
  let duplicates = 0;
  let executions = 0;
  let reclaimed = 0;
  for (const id of ids) {
    const r = byId.get(id);
    if (!r) {
      lost.push(`${id}: not in the store`);
      continue;
    }
    states[r.state] = (states[r.state] ?? 0) + 1;
    if (r.state !== finalState) lost.push(`${id}: ${r.state}, expected ${finalState}`);
    badHistories.push(...historyProblems(r));
    reclaimed += r.history.filter((e) => isReclaim(e.reason)).length;
    const mine = runsById.get(id) ?? [];
    executions += mine.length;
    if (mine.length <= 1) continue;
    duplicates += mine.length - 1;
    const tokens = new Set(mine.map((m) => m.token));
    if (tokens.size < mine.length) unexplained.push(`${id}: ${mine.length} executions but only ${tokens.size} lease tokens (one lease ran twice)`);
    const reclaims = r.history.filter((e) => isReclaim(e.reason)).length;
    const releases = r.history.filter((e) => e.state === JobState.Enqueued && isRelease(e.reason)).length;
    if (mine.length - 1 > reclaims + releases && r.history.length < 50) {
      unexplained.push(`${id}: ${mine.length} executions, ${reclaims} lease expiries, ${releases} releases`);
    }
  }
  return { jobs: ids.length, executions, lost, duplicates, unexplained, badHistories, states, reclaims: reclaimed };
}

/** Per-key counts of a field, for "exactly one job per unique key". */
export function countBy<T>(items: T[], key: (t: T) => string | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of items) {
    const k = key(t);
    if (k === undefined) continue;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}
