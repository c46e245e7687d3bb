/**
 * Batched completion: outcomes that arrive while a write is in flight go
 * out together in the next one, so a busy processor records many jobs per
 * round trip with no added delay when it is quiet (graphile-worker's
 * `completeJobBatchDelay: 0`, in effect).
 */
import { sleep, type Clock } from "./clock.js";
import type { Emitter, JobEventMap } from "./events.js";
import type { Logger } from "./logger.js";
import type { Outcome, Storage } from "./storage.js";

export class Completer {
  private pending: Outcome[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly opts: { leaseMs: number; clock: Clock; logger: Logger; events: Emitter<JobEventMap> },
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

  private async write(batch: Outcome[]): Promise<void> {
    const { logger, events } = this.opts;
    let waited = 0;
    let backoff = 50;
    for (;;) {
      try {
        const results = await this.storage.complete(batch, this.opts.clock.now());
        for (const r of results) {
          if (r.status === "lost") {
            logger.warn("outcome fenced out: the lease was lost", { jobId: r.id });
            if (events.has("job:lost")) events.emit("job:lost", { id: r.id, reason: "lease lost before the outcome was written" });
          }
        }
        return;
      } catch (error) {
        events.emit("storage:error", { operation: "complete", error });
        if (waited >= this.opts.leaseMs) {
          logger.error("could not record outcomes within a lease; the jobs will be reclaimed", { count: batch.length, error: String(error) });
          return;
        }
        logger.warn("could not record outcomes; retrying", { count: batch.length, error: String(error), retryInMs: backoff });
        await sleep(backoff);
        waited += backoff;
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }
}
