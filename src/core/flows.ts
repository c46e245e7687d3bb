/**
 * Flows and continuations: jobs that wait for other jobs.
 *
 * A waiting job is stored `awaiting` with a FlowSpec (what it waits for,
 * which outcome releases it, what happens otherwise) and one dependency
 * edge per job it waits for, written by the same insert. Nothing here is
 * decided inside a store: the core settles waiters, as it decides every
 * other target state, and the store applies the decision with a fenced
 * transition (`from: ["awaiting"]`), so two processes settling the same
 * waiter apply it once.
 *
 * When a waiter is settled:
 * - right after a completion or transition that finished a job with
 *   dependents (the driver flags it in the same step), by the process
 *   that wrote it;
 * - right after a continuation is inserted (its parent may have finished);
 * - by every server's and invocation's maintenance beat, one page of
 *   awaiting jobs at a time: what a process killed between the two steps
 *   left behind (and a dependency failed by a lease expiry) is settled
 *   there, so no waiter waits forever.
 *
 * Decision for one waiter, given its dependencies' states (a dependency
 * that no longer exists counts as deleted):
 * - a finished dependency whose outcome is not `on`, with `otherwise`
 *   "fail" or "delete": the waiter ends failed (DependencyError) or deleted
 *   at once, without waiting for the others;
 * - every dependency finished (and each matched, or `otherwise` is
 *   "ignore"/"remove"): the waiter is released to `enqueued`;
 * - else it keeps waiting.
 * A waiter that ends failed or deleted may have waiters of its own: they
 * are settled next, down the tree.
 */
import type { JobRecord } from "./job.js";
import { FINISHED_STATES, JobState, type DependencyOutcome, type FlowSpec, type UnmetDependency } from "./job.js";
import { DependencyError, ValidationError, toErrorInfo } from "./errors.js";
import type { StorageDriver, TransitionRequest } from "./driver.js";

/** Most jobs one flow (a parent and all its descendants) may hold: it is inserted in one atomic call. */
export const MAX_FLOW_JOBS = 1000;
/** Deepest nesting of children in one flow. */
export const MAX_FLOW_DEPTH = 32;
/** Most jobs one job may wait for. */
export const MAX_DEPENDENCIES = 1000;

const OUTCOMES: readonly DependencyOutcome[] = ["success", "failure", "any"];
const UNMET: readonly UnmetDependency[] = ["fail", "delete", "ignore", "remove"];

export function validateFlowSpec(spec: FlowSpec): FlowSpec {
  if (!OUTCOMES.includes(spec.on)) throw new ValidationError(`on must be one of ${OUTCOMES.join(", ")}; got ${JSON.stringify(spec.on)}`, "on");
  if (!UNMET.includes(spec.otherwise))
    throw new ValidationError(`the rule for an unmet dependency must be one of ${UNMET.join(", ")}; got ${JSON.stringify(spec.otherwise)}`, "otherwise");
  if (spec.dependsOn.length === 0) throw new ValidationError("a waiting job needs at least one job to wait for", "dependsOn");
  if (spec.dependsOn.length > MAX_DEPENDENCIES) throw new ValidationError(`a job waits for at most ${MAX_DEPENDENCIES} jobs`, "dependsOn");
  if (new Set(spec.dependsOn).size !== spec.dependsOn.length) throw new ValidationError("a job waits for each job once", "dependsOn");
  return spec;
}

/** Whether a finished dependency's state is the outcome `on` asks for. */
function matches(state: JobState, on: DependencyOutcome): boolean {
  return on === "any" || (on === "success" ? state === JobState.Succeeded : state === JobState.Failed);
}

export type Decision =
  | { kind: "wait" }
  | { kind: "release"; reason: string }
  | { kind: "fail"; reason: string; dependencyId: string; how: string }
  | { kind: "delete"; reason: string };

/** What becomes of `waiter` (awaiting), given the records of the jobs it waits for (null where gone). */
export function decide(waiter: JobRecord, deps: ReadonlyMap<string, JobRecord | null>): Decision {
  const flow = waiter.flow;
  if (!flow) return { kind: "release", reason: "released: it waits for nothing" };
  let open = 0;
  let unmet = 0;
  for (const id of flow.dependsOn) {
    const dep = deps.get(id);
    const state = dep ? dep.state : JobState.Deleted;
    if (!FINISHED_STATES.includes(state)) {
      open++;
      continue;
    }
    if (matches(state, flow.on)) continue;
    unmet++;
    const how = dep ? `ended ${state}` : "no longer exists";
    if (flow.otherwise === "fail") return { kind: "fail", reason: `dependency ${id} ${how}`, dependencyId: id, how };
    if (flow.otherwise === "delete") return { kind: "delete", reason: `deleted: dependency ${id} ${how} (it waited for ${flow.on})` };
  }
  if (open > 0) return { kind: "wait" };
  const n = flow.dependsOn.length;
  return {
    kind: "release",
    reason:
      unmet === 0
        ? `released: ${n === 1 ? "its dependency" : `all ${n} dependencies`} finished`
        : `released: dependencies finished, ${unmet} ${flow.otherwise}d`,
  };
}

export interface SettleReport {
  released: Array<{ id: string; queue: string; runAt: number }>;
  failed: number;
  deleted: number;
}

/**
 * Settles the awaiting jobs among `waiterIds` (and, down the tree, the
 * waiters of those that end failed or deleted). Stateless and idempotent:
 * any process may call it at any time.
 */
export async function settleWaiters(driver: StorageDriver, waiterIds: string[], now: number): Promise<SettleReport> {
  const report: SettleReport = { released: [], failed: 0, deleted: 0 };
  let ids = [...new Set(waiterIds)];
  for (let depth = 0; ids.length > 0 && depth <= MAX_FLOW_DEPTH; depth++) {
    const waiters = (await driver.get(ids)).filter((r): r is JobRecord => r !== null && r.state === JobState.Awaiting);
    if (waiters.length === 0) break;
    const depIds = [...new Set(waiters.flatMap((w) => w.flow?.dependsOn ?? []))];
    const depRecords = depIds.length > 0 ? await driver.get(depIds) : [];
    const deps = new Map(depIds.map((id, i) => [id, depRecords[i] ?? null]));
    const groups = new Map<string, TransitionRequest>();
    for (const w of waiters) {
      const d = decide(w, deps);
      if (d.kind === "wait") continue;
      const to = d.kind === "release" ? JobState.Enqueued : d.kind === "fail" ? JobState.Failed : JobState.Deleted;
      const error = d.kind === "fail" ? toErrorInfo(new DependencyError(w.id, d.dependencyId, d.how)) : undefined;
      const key = `${to}\u0000${d.reason}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { ids: [], from: [JobState.Awaiting], to, reason: d.reason, now, ...(error ? { error } : {}) }));
      // One error per group: a failed waiter's error names the dependency of its own reason.
      g.ids.push(w.id);
    }
    const next: string[] = [];
    for (const g of groups.values()) {
      const results = await driver.transition(g);
      for (const t of results) {
        if (!t?.applied) continue;
        if (g.to === JobState.Enqueued) report.released.push({ id: t.record.id, queue: t.record.queue, runAt: t.record.runAt });
        else if (g.to === JobState.Failed) report.failed++;
        else report.deleted++;
        if (t.dependents) next.push(t.record.id);
      }
    }
    ids = next.length > 0 ? await driver.dependents(next) : [];
  }
  return report;
}

/** Settles the waiters of jobs that just finished (ids flagged `dependents` by the store). */
export async function settleDependentsOf(driver: StorageDriver, finishedIds: string[], now: number): Promise<SettleReport> {
  if (finishedIds.length === 0) return { released: [], failed: 0, deleted: 0 };
  const waiters = await driver.dependents(finishedIds);
  return settleWaiters(driver, waiters, now);
}
