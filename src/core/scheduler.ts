/**
 * Scheduler: the housekeeping every runtime does on its beat.
 *
 * - promote due `scheduled`/`awaiting_retry` jobs to `enqueued`;
 * - reclaim jobs whose lease expired (their worker died or hung);
 * - fire recurring jobs: each slot of a cron expression is enqueued with the
 *   unique key `recurring:<id>:<slot ISO time>`, so any number of servers or
 *   overlapping cron invocations enqueue it once, with no lock. `lastSlot`
 *   on the definition keeps a clock that jumps backwards from firing an old
 *   slot again after its job was pruned.
 *
 * Only the latest missed slot fires after downtime (no catch-up storm), and
 * never a slot from before the definition existed.
 */
import { Cron } from "croner";
import type { Emitter, JobEventMap } from "./events.js";
import { Job } from "./job.js";
import type { Logger } from "./logger.js";
import type { RecurringDefinition } from "./driver.js";
import type { Storage } from "./storage.js";

/** The metadata key naming the recurring definition a job came from (fired by the scheduler or by hand). */
export const RECURRING_ORIGIN = "recurringId";

export interface MaintenanceReport {
  promoted: number;
  reclaimed: number;
  fired: number;
}

const cronCache = new Map<string, Cron>();
function cronFor(def: Pick<RecurringDefinition, "cron" | "timezone">): Cron {
  const key = `${def.timezone ?? "UTC"}|${def.cron}`;
  let c = cronCache.get(key);
  if (!c) {
    c = new Cron(def.cron, { timezone: def.timezone ?? "UTC", paused: true });
    if (cronCache.size > 1000) cronCache.clear();
    cronCache.set(key, c);
  }
  return c;
}

/** The latest slot at or before `now` that should fire, if any. */
export function dueSlot(def: RecurringDefinition, now: number): number | undefined {
  const prev = cronFor(def).previousRuns(1, new Date(now + 1))[0];
  if (!prev) return undefined;
  const slot = prev.getTime();
  if (slot < def.createdAt - 1000) return undefined;
  if (def.lastSlot !== undefined && slot <= def.lastSlot) return undefined;
  return slot;
}

/** When the next slot after `now` comes, for timers. */
export function nextSlot(def: RecurringDefinition, now: number): number | undefined {
  return cronFor(def).nextRun(new Date(now))?.getTime();
}

export function recurringUniqueKey(id: string, slot: number): string {
  return `recurring:${id}:${new Date(slot).toISOString()}`;
}

export class Scheduler {
  constructor(
    private readonly storage: Storage,
    private readonly events: Emitter<JobEventMap>,
    private readonly logger: Logger,
    private readonly batch = 1000,
  ) {}

  /** Enqueues the due slot of every definition (one enqueue call for all). Returns how many were new. */
  async fireRecurring(now: number, defs?: RecurringDefinition[]): Promise<number> {
    const list = defs ?? (await this.storage.listRecurring());
    const due: Array<{ def: RecurringDefinition; slot: number; job: Job }> = [];
    for (const def of list) {
      let slot: number | undefined;
      try {
        slot = dueSlot(def, now);
      } catch (e) {
        this.logger.error("recurring definition has an invalid cron", { id: def.id, error: e });
        continue;
      }
      if (slot === undefined) continue;
      const job = new Job(def.name, def.args, {
        ...def.options,
        uniqueKey: recurringUniqueKey(def.id, slot),
        metadata: { ...(def.options.metadata ?? {}), [RECURRING_ORIGIN]: def.id, slot: new Date(slot).toISOString() },
      });
      due.push({ def, slot, job });
    }
    if (due.length === 0) return 0;
    const jobs = due.map((d) => d.job);
    await this.storage.enqueue(jobs);
    let fired = 0;
    for (const d of due) {
      // The unique key already made the enqueue once-only; lastSlot just
      // records progress so that an old slot is not fired again later.
      const first = await this.storage.driver.markRecurringFired(d.def.id, d.slot);
      d.def.lastSlot = d.slot;
      if (first) {
        fired++;
        this.events.emit("recurring:fired", { id: d.def.id, slot: d.slot, jobId: d.job.id });
      }
    }
    return fired;
  }

  /**
   * promote + reclaim + recurring, each bounded. A long-running server skips
   * `promote`: its claims already take due jobs, and every skipped call is
   * one request less on a metered store.
   */
  async maintain(now: number, defs?: RecurringDefinition[], options: { promote?: boolean } = {}): Promise<MaintenanceReport> {
    const promoted = options.promote === false ? 0 : await this.storage.driver.promoteDue(now, this.batch);
    const reclaimed = await this.storage.driver.reclaimExpired(now, this.batch);
    if (reclaimed > 0) {
      this.logger.warn("reclaimed jobs whose lease expired", { count: reclaimed });
      this.events.emit("jobs:reclaimed", { count: reclaimed });
    }
    // Waiters a killed process did not settle (flows.ts): one page per beat.
    await this.storage.sweepAwaiting(now);
    const fired = await this.fireRecurring(now, defs);
    return { promoted, reclaimed, fired };
  }
}
