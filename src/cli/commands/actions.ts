/**
 * Acting on jobs: `requeue` (alias `retry`), `delete`, `cancel`, on the ids
 * given or on every job a filter matches.
 *
 * A filter is walked in pages of 500, oldest first, each page going to one
 * batched store call (`storage.requeue(ids)` …) before the next is listed:
 * memory stays bounded whatever the number of jobs, and the keyset cursor
 * (creation time, id) does not move when a job changes state, so no job is
 * visited twice and none is skipped. Jobs enqueued while it runs are
 * reached too if they match.
 */
import { Command } from "commander";
import { ALL_STATES, FINISHED_STATES, JobState, type ActionResult, type ListFilter, type Storage } from "../../index.js";
import { CliError, ExitCode, usage } from "../exit.js";
import { list } from "../parse.js";
import { note, printJson, printLine } from "../output.js";
import { progress } from "../progress.js";
import { withStorage } from "../store.js";

type Action = "requeue" | "delete" | "cancel";

/** What a filter without --state takes: the states the action applies to. */
const DEFAULT_STATES: Record<Action, JobState[]> = {
  requeue: ALL_STATES.filter((s) => s !== JobState.Enqueued && s !== JobState.Processing),
  delete: ALL_STATES.filter((s) => s !== JobState.Deleted),
  cancel: ALL_STATES.filter((s) => !FINISHED_STATES.includes(s)),
};
const PAGE = 500;
const MAX_SKIPPED_REPORTED = 100;
const PAST: Record<Action, string> = { requeue: "requeued", delete: "deleted", cancel: "cancelled" };
/** Who acted, in a cancelled job's history ("cancelled by cli"). */
const BY = "cli";

interface ActionFlags {
  state?: string[];
  queue?: string;
  name?: string;
  json?: boolean;
}

export interface ActionReport {
  action: Action;
  matched: number;
  applied: number;
  /** Jobs the action did not apply to (the first 100 by filter), and why. */
  skipped: Array<{ id: string; reason: string }>;
}

export function actionCommands(program: Command): void {
  const about: Record<Action, string> = {
    requeue: "put jobs back in enqueued, attempts reset (failed, succeeded, deleted, scheduled or awaiting_retry jobs)",
    delete: "soft-delete jobs: they end deleted, their history kept; a running job's worker loses its lease",
    cancel: "cancel jobs that have not finished: they end deleted, a running one's AbortSignal fires",
  };
  const summary: Record<Action, string> = {
    requeue: "run jobs again, by id or filter",
    delete: "delete jobs, by id or filter",
    cancel: "cancel unfinished jobs, by id or filter",
  };
  for (const action of ["requeue", "delete", "cancel"] as const) {
    const cmd = program
      .command(action)
      .summary(summary[action])
      .description(`${about[action]}; by id, or every job a filter matches`)
      .argument("[ids...]", "job ids")
      .option("-s, --state <states>", `with a filter: only these states (default: ${DEFAULT_STATES[action].join(", ")})`, list)
      .option("-q, --queue <queue>", "filter: jobs of this queue")
      .option("-n, --name <name>", "filter: jobs of this name")
      .option("--json", "print { action, matched, applied, skipped } as JSON")
      .action(async (ids: string[], flags: ActionFlags) => {
        const byFilter = flags.state !== undefined || flags.queue !== undefined || flags.name !== undefined;
        if (ids.length > 0 && byFilter) throw usage(`${action} takes ids or a filter (--state, --queue, --name), not both`);
        if (ids.length === 0 && !byFilter) throw usage(`${action} needs job ids or a filter (--state, --queue, --name)`);
        const report = await withStorage((storage) => (byFilter ? onFilter(storage, action, flags) : onIds(storage, action, ids)));
        show(report, flags.json === true);
        // By id, each id was asked for: one unknown is "not found", one refused a failure.
        // By filter, a job that changed state between the list and the action is no one's mistake.
        if (!byFilter && report.applied < report.matched) {
          const missing = report.skipped.some((s) => s.reason === "not found");
          throw new CliError(
            `${report.matched - report.applied} of ${report.matched} jobs not ${PAST[action]}`,
            missing ? ExitCode.NotFound : ExitCode.Failure,
          );
        }
      });
    if (action === "requeue") cmd.alias("retry");
  }
}

/** `from`: the states a filter named; a requeue checks them (the core refuses a state it cannot requeue from). */
function apply(storage: Storage, action: Action, ids: string[], from?: JobState[]): Promise<ActionResult[]> {
  if (action === "delete") return storage.delete(ids);
  if (action === "cancel") return storage.cancel(ids, { by: BY });
  return from ? storage.requeue(ids, { from }) : storage.requeue(ids);
}

function reason(r: ActionResult): string {
  return r.status === "not_found" ? "not found" : `is ${r.state ?? "in another state"}`;
}

async function onIds(storage: Storage, action: Action, ids: string[]): Promise<ActionReport> {
  const results = await apply(storage, action, ids);
  return {
    action,
    matched: results.length,
    applied: results.filter((r) => r.status === "applied").length,
    skipped: results.filter((r) => r.status !== "applied").map((r) => ({ id: r.id, reason: reason(r) })),
  };
}

async function onFilter(storage: Storage, action: Action, flags: ActionFlags): Promise<ActionReport> {
  const filter: ListFilter = { state: (flags.state as JobState[] | undefined) ?? DEFAULT_STATES[action] };
  if (flags.queue !== undefined) filter.queue = flags.queue;
  if (flags.name !== undefined) filter.name = flags.name;
  const report: ActionReport = { action, matched: 0, applied: 0, skipped: [] };
  const from = action === "requeue" ? (filter.state as JobState[]) : undefined;
  // No ids: the core checks `from` without a round trip, before anything is listed.
  if (from) await apply(storage, action, [], from);
  const bar = progress(PAST[action]);
  let total: number | undefined;
  let cursor: string | undefined;
  try {
    for (;;) {
      // The first page is listed before anything else: the core checks the filter there.
      const page = await storage.list(filter, { limit: PAGE, sort: "createdAt", order: "asc", ...(cursor ? { cursor } : {}) });
      // A second page means long work: worth a total for the bar (one more round trip).
      if (cursor === undefined && page.nextCursor && process.stderr.isTTY) total = await estimate(storage, filter);
      const ids = page.items.map((j) => j.id);
      if (ids.length > 0) {
        for (const r of await apply(storage, action, ids, from)) {
          report.matched++;
          if (r.status === "applied") report.applied++;
          else if (report.skipped.length < MAX_SKIPPED_REPORTED) report.skipped.push({ id: r.id, reason: reason(r) });
        }
      }
      bar.update(report.matched, total === undefined ? undefined : Math.max(total, report.matched));
      if (!page.nextCursor) return report;
      cursor = page.nextCursor;
    }
  } finally {
    bar.end();
  }
}

/** How many jobs the filter matches, from the counts by state and queue; unknown with a name. */
async function estimate(storage: Storage, filter: ListFilter): Promise<number | undefined> {
  if (filter.name !== undefined) return undefined;
  const stats = await storage.stats({ minutes: 1, hours: 1 });
  const states = filter.state as JobState[];
  const counts = filter.queue === undefined ? stats.states : stats.queues.find((q) => q.name === filter.queue)?.counts;
  if (!counts) return undefined;
  return states.reduce((n, s) => n + (counts[s] ?? 0), 0);
}

function show(report: ActionReport, json: boolean): void {
  if (json) {
    printJson(report);
    return;
  }
  for (const s of report.skipped) note(`${s.id}: ${s.reason}`);
  const skipped = report.matched - report.applied;
  printLine(`${PAST[report.action]} ${report.applied} of ${report.matched} jobs${skipped > 0 ? ` (${skipped} skipped)` : ""}`);
}
