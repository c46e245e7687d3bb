/**
 * Adaptive prefetch, a server's default (`ServerConfig.prefetch("auto")`):
 * how many jobs it holds ahead of its free workers, decided from what it
 * observes rather than set by hand.
 *
 * Rules:
 * - Hold only what this server's workers will start within
 *   HOLD_ROUND_TRIPS claim round trips. With W workers, a mean run time R
 *   and a claim round trip T, the workers start W·T/R jobs per round trip
 *   (or fewer: the rate jobs are seen to finish here, which counts the
 *   engine's own time per job too, caps it where runs are near zero);
 *   a job held longer than a couple of round trips is one another server
 *   with a free worker could claim and start sooner. So long jobs get no
 *   prefetch at all (a 50 ms job with a 1 ms round trip: one held job per
 *   twenty workers), and short ones as many as keep two claims in flight
 *   busy, up to AUTO_PREFETCH_MAX.
 * - Grow only while claims come back full (a backlog). A claim that comes
 *   back short means the queue ran dry: the target drops to 0 at once, so
 *   an idle server holds nothing and jobs enqueued into an idle fleet go
 *   to whichever servers have free workers.
 * - Never with a deadline: a short-lived invocation claims only what it
 *   can run before its deadline (Processor.fill), whatever this says.
 */

/** Claim round trips a held job may wait for a worker here. */
export const HOLD_ROUND_TRIPS = 2;

/** The most jobs an adaptive buffer holds (graphile-worker's fast `localQueue` size). */
export const AUTO_PREFETCH_MAX = 500;

/** Smoothing of the run-time mean: many samples, so a slow weight (about the last 50 runs). */
const RUN_WEIGHT = 0.04;
/** Smoothing of the claim round trip: few samples, so a faster one. */
const CLAIM_WEIGHT = 0.2;
/** Below timer resolution a no-op run reads as 0 ms: counted as this. */
const MIN_RUN_MS = 0.001;
/** The finishing rate is measured over windows of at least this long (ms). */
const RATE_WINDOW_MS = 50;

export class AdaptivePrefetch {
  private runMs: number | undefined;
  private claimMs: number | undefined;
  private backlog = false;
  private current = 0;
  /** Jobs finished per ms while a backlog lasted, over the last full window. */
  private rate: number | undefined;
  private windowStart = -1;
  private windowCount = 0;

  constructor(
    private readonly workers: number,
    private readonly max: number = AUTO_PREFETCH_MAX,
  ) {}

  /** Jobs to hold ahead of free workers now. */
  get target(): number {
    return this.current;
  }

  /** A run's wall time (ms), of every job that ran to an outcome here; `now` (performance.now()) when it finished. */
  observeRun(ms: number, now?: number): void {
    const v = Math.max(MIN_RUN_MS, ms);
    this.runMs = this.runMs === undefined ? v : this.runMs + RUN_WEIGHT * (v - this.runMs);
    if (now !== undefined && this.backlog) {
      if (this.windowStart < 0) this.windowStart = now;
      this.windowCount++;
      if (now - this.windowStart >= RATE_WINDOW_MS) {
        this.rate = this.windowCount / (now - this.windowStart);
        this.windowStart = now;
        this.windowCount = 0;
      }
    }
    this.update();
  }

  /** A claim's round trip (ms), with how many jobs it asked for and got. */
  observeClaim(ms: number, asked: number, got: number): void {
    if (asked <= 0) return;
    this.claimMs = this.claimMs === undefined ? ms : this.claimMs + CLAIM_WEIGHT * (ms - this.claimMs);
    this.backlog = got >= asked;
    // A rate is measured only over a backlog: the window starts again with the next one.
    if (!this.backlog) {
      this.windowStart = -1;
      this.windowCount = 0;
    }
    this.update();
  }

  private update(): void {
    if (!this.backlog || this.runMs === undefined || this.claimMs === undefined) {
      this.current = 0;
      return;
    }
    let startedPerRoundTrip = (this.workers * this.claimMs) / this.runMs;
    if (this.rate !== undefined) startedPerRoundTrip = Math.min(startedPerRoundTrip, this.rate * this.claimMs);
    this.current = Math.min(this.max, Math.floor(HOLD_ROUND_TRIPS * startedPerRoundTrip));
  }
}
