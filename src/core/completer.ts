/**
 * Batched completion: outcomes that arrive while a write is in flight go
 * out together in the next one, so a busy processor records many jobs per
 * round trip. No timer holds an outcome back: when no write is in flight,
 * the next outcome goes out at once.
 */
import { backoffMs } from "./backoff.js";
import { sleep, type Clock } from "./clock.js";
import type { Emitter, JobEventMap } from "./events.js";
import type { Logger } from "./logger.js";
import type { CompletionResult, Outcome, StorageDriver } from "./driver.js";
import { cleanText } from "./rules.js";

export class Completer {
  private pending: Outcome[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly driver: StorageDriver,
    private readonly opts: {
      leaseMs: number;
      clock: Clock;
      logger: Logger;
      events: Emitter<JobEventMap>;
      /** Settles the jobs waiting for jobs these outcomes finished (flows.ts). */
      settle?: (finishedIds: string[], now: number) => Promise<unknown>;
      /** Told of every written batch and its results (the processor's event-wait rechecks, steps.ts). */
      applied?: (batch: Outcome[], results: CompletionResult[]) => Promise<void>;
    },
  ) {}

  /** Queues outcomes; a write starts at once unless one is in flight. */
  submit(...outcomes: Outcome[]): void {
    this.pending.push(...outcomes);
    if (!this.flushing) void this.flush();
  }

  /** Resolves when nothing is pending and nothing is in flight. */
  async flushAll(): Promise<void> {
    while (this.flushing || this.pending.length > 0) {
      if (this.flushing) await this.flushing;
      else await this.flush();
    }
  }

  /**
   * Writes pending outcomes in one call. On a store error it retries with
   * backoff for up to one lease: past that the job's lease has run out and
   * the job will be reclaimed and run again (at-least-once), so the outcome
   * is dropped rather than held forever.
   */
  private flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.length === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.write(batch).finally(() => {
      this.flushing = null;
      if (this.pending.length > 0) void this.flush();
    });
    return this.flushing;
  }

  /**
   * Says why outcomes were refused: the lease is someone else's (the job
   * was reclaimed), or the job is gone (deleted, pruned, or lost with the
   * store's data, as when a Redis without persistence restarts). One read,
   * only when something was refused.
   */
  private async reportLost(ids: string[]): Promise<void> {
    const { logger, events } = this.opts;
    const records = await this.driver.get(ids).catch(() => undefined);
    ids.forEach((id, i) => {
      const gone = records !== undefined && records[i] === null;
      if (gone) logger.warn("outcome dropped: the job no longer exists in the store (deleted, or lost with the store's data)", { jobId: id });
      else logger.warn("outcome fenced out: the lease was lost", { jobId: id });
      if (events.has("job:lost"))
        events.emit("job:lost", { id, reason: gone ? "the job no longer exists in the store" : "lease lost before the outcome was written" });
    });
  }

  private async write(batch: Outcome[]): Promise<void> {
    const { logger, events } = this.opts;
    let waited = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const now = this.opts.clock.now();
        const results = await this.driver.complete(batch.map(clean), now);
        const lost = results.filter((r) => r.status === "lost").map((r) => r.id);
        if (lost.length > 0) await this.reportLost(lost);
        if (this.opts.applied)
          await this.opts.applied(batch, results).catch((error: unknown) => {
            logger.warn("could not check suspended jobs for events that arrived while they ran", { error });
          });
        const finished = results.filter((r) => r.dependents).map((r) => r.id);
        // The outcomes are recorded: a failure here leaves their waiters to the maintenance sweep.
        if (finished.length > 0 && this.opts.settle)
          await this.opts.settle(finished, now).catch((error: unknown) => {
            events.emit("storage:error", { operation: "settle", error });
            logger.warn("could not settle the jobs waiting for finished jobs; the maintenance sweep will", { count: finished.length, error });
          });
        return;
      } catch (error) {
        events.emit("storage:error", { operation: "complete", error });
        if (waited >= this.opts.leaseMs) {
          logger.error("could not record outcomes within a lease; the jobs will be reclaimed", { count: batch.length, error });
          return;
        }
        const delay = backoffMs(attempt, { baseMs: 50, maxMs: 2000 });
        logger.warn("could not record outcomes; retrying", { count: batch.length, error, retryInMs: delay });
        await sleep(delay);
        waited += delay;
      }
    }
  }
}

/** Error text and reasons come from workers' errors: made well-formed here, so every backend stores the same characters. */
function clean(o: Outcome): Outcome {
  const reason = cleanText(o.reason);
  const worker = cleanText(o.worker);
  if (o.error === undefined) return reason === o.reason && worker === o.worker ? o : { ...o, reason, worker };
  const e = o.error;
  const error = {
    ...e,
    name: cleanText(e.name),
    message: cleanText(e.message),
    ...(e.stack !== undefined ? { stack: cleanText(e.stack) } : {}),
    ...(e.code !== undefined ? { code: cleanText(e.code) } : {}),
  };
  return { ...o, reason, worker, error };
}
