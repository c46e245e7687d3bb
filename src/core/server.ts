/**
 * BackgroundJobServer: the long-running loop over the processor and the
 * scheduler, for Node (or any process that lives).
 *
 * Polling: after a full batch it claims again at once; after a partial one
 * it waits `pollingInterval`; when a poll finds nothing, the wait doubles up
 * to `maxPollingInterval` (±10% jitter), so an idle server costs at most one
 * store request per polling interval. An enqueue through the same Storage
 * object wakes it at once; so does a backend notification (Postgres
 * LISTEN/NOTIFY) through `wake()`.
 */
import { backoffMs } from "./backoff.js";
import { StoreAlignedClock, sleep, type Clock } from "./clock.js";
import type { ResolvedServerConfig } from "./config/index.js";
import { ServerConfig } from "./config/index.js";
import { ShutdownError } from "./errors.js";
import { Emitter, type JobEventMap, type Listener } from "./events.js";
import type { Logger } from "./logger.js";
import { Processor } from "./processor.js";
import type { WorkerRegistry } from "./registry.js";
import { Scheduler, nextSlot } from "./scheduler.js";
import type { RecurringDefinition } from "./driver.js";
import type { Storage } from "./storage.js";

/**
 * Claims a server with a prefetch buffer keeps in flight at once while a
 * backlog lasts: the store works on the next batches while this process
 * starts the last one, so the claim round trip does not bound throughput.
 * Two, not more: on Postgres each claim in flight makes the next one step
 * over the rows it has locked (SKIP LOCKED still visits them), so claims
 * get smaller and cost more per job. See docs/decisions/claims-in-flight.md.
 */
export const MAX_CLAIMS_IN_FLIGHT = 2;

export class BackgroundJobServer {
  readonly config: ResolvedServerConfig;
  readonly events = new Emitter<JobEventMap>();
  private readonly processor: Processor;
  private readonly scheduler: Scheduler;
  private readonly logger: Logger;
  private running = false;
  private stopping: AbortController | null = null;
  private loopDone: Promise<void> | null = null;
  private wakeWait: (() => void) | null = null;
  private wakePending = false;
  private maintenanceTimer: ReturnType<typeof setTimeout> | null = null;
  private recurringTimer: ReturnType<typeof setTimeout> | null = null;
  private defs: RecurringDefinition[] = [];
  private unsubscribe: (() => void) | null = null;
  private unsubscribeCancel: (() => void) | null = null;
  private maintaining: Promise<void> | null = null;
  private wakeAtTimer: ReturnType<typeof setTimeout> | null = null;
  private wakeAtTime = Infinity;

  private readonly aligned: StoreAlignedClock | null;
  private lastSync = -Infinity;

  constructor(
    readonly storage: Storage,
    readonly registry: WorkerRegistry,
    config: ServerConfig = new ServerConfig(),
  ) {
    const resolved = config.resolve();
    this.aligned = resolved.clockSync ? new StoreAlignedClock(resolved.clock) : null;
    const clock: Clock = this.aligned ?? resolved.clock;
    this.config = { ...resolved, clock };
    this.logger = this.config.logger.child({ server: this.config.serverId });
    this.processor = new Processor(storage, registry, {
      serverId: this.config.serverId,
      concurrency: this.config.workerCount,
      queues: this.config.queues,
      leaseMs: this.config.leaseMs,
      fetchBatchSize: this.config.fetchBatchSize,
      prefetch: this.config.prefetch,
      jobTimeoutMs: this.config.jobTimeoutMs,
      retryPolicy: this.config.retryPolicy,
      clock: this.config.clock,
      logger: this.logger,
      events: this.events,
    });
    this.scheduler = new Scheduler(storage, this.events, this.logger);
  }

  get serverId(): string {
    return this.config.serverId;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Jobs running right now. */
  get activeJobs(): number {
    return this.processor.runningCount;
  }

  on<K extends keyof JobEventMap>(event: K, fn: Listener<JobEventMap[K]>): () => void {
    return this.events.on(event, fn);
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.storage.migrate();
    await this.syncClock();
    this.running = true;
    this.stopping = new AbortController();
    const queues = new Set(this.config.queues);
    // early: where the store keeps call order (Redis over one connection), the claim goes right behind the insert.
    this.unsubscribe = this.storage.onEnqueue(
      (jobs) => {
        const now = this.config.clock.now();
        let soonest = Infinity;
        for (const j of jobs) if (queues.has(j.queue)) soonest = Math.min(soonest, j.runAt);
        if (soonest <= now) this.wake();
        else if (soonest !== Infinity) this.wakeAt(soonest);
      },
      { early: true },
    );
    // A job cancelled or deleted through this storage stops here at once.
    this.unsubscribeCancel = this.storage.onCancel((ids, reason) => this.processor.cancel(ids, reason));
    this.logger.info("server started", { workers: this.config.workerCount, queues: this.config.queues, storage: this.storage.kind });
    if (this.config.enableScheduler) this.scheduleMaintenance(0);
    this.loopDone = this.loop();
  }

  /**
   * Stops gracefully: claims nothing more, gives running jobs up to
   * `shutdownTimeout` (or `graceMs`) to finish, then aborts the rest and puts
   * them back in `enqueued` at once (their attempt not counted).
   */
  async stop(graceMs: number = this.config.shutdownTimeoutMs): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopping?.abort();
    this.wake();
    if (this.maintenanceTimer) clearTimeout(this.maintenanceTimer);
    if (this.recurringTimer) clearTimeout(this.recurringTimer);
    if (this.wakeAtTimer) clearTimeout(this.wakeAtTimer);
    this.wakeAtTime = Infinity;
    this.unsubscribe?.();
    this.unsubscribeCancel?.();
    await this.loopDone;
    await this.maintaining;
    await this.processor.drain(graceMs, new ShutdownError());
    this.logger.info("server stopped", {});
  }

  /** Polls now instead of at the next interval. */
  wake(): void {
    this.wakePending = true;
    const w = this.wakeWait;
    this.wakeWait = null;
    w?.();
  }

  /** One timer for the soonest scheduled job enqueued here, if it comes before the next poll would. */
  private wakeAt(at: number): void {
    if (at >= this.wakeAtTime) return;
    const delay = at - this.config.clock.now();
    if (delay > this.config.maxPollingIntervalMs) return;
    if (this.wakeAtTimer) clearTimeout(this.wakeAtTimer);
    this.wakeAtTime = at;
    this.wakeAtTimer = setTimeout(
      () => {
        this.wakeAtTimer = null;
        this.wakeAtTime = Infinity;
        this.wake();
      },
      Math.max(0, delay),
    );
  }

  private waitForWake(ms: number): Promise<void> {
    if (this.wakePending) {
      this.wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        if (this.wakeWait === done) this.wakeWait = null;
        this.wakePending = false;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeWait = done;
    });
  }

  /**
   * Claims while the server runs. One claim at a time, backing off while
   * claims come back short; with a prefetch buffer and while claims come
   * back full (a backlog), up to MAX_CLAIMS_IN_FLIGHT overlap, each holding
   * its share of the room (see Processor.fill). Without prefetch claims stay
   * one at a time: they are for idle workers, and overlapping ones would
   * split a batch into more round trips. An idle server still sends one
   * claim per polling interval.
   */
  private async loop(): Promise<void> {
    const { pollingIntervalMs: base, maxPollingIntervalMs: max } = this.config;
    let idle = 0;
    let errors = 0;
    let backlog = false;
    const inFlight = new Set<Promise<void>>();
    const claim = async (): Promise<number | Error> => {
      const asked = Math.min(this.processor.claimCapacity(), this.config.fetchBatchSize);
      try {
        const { claimed } = await this.processor.fill();
        errors = 0;
        backlog = claimed > 0 && claimed === asked;
        if (claimed > 0) idle = 0;
        return claimed;
      } catch (error) {
        errors++;
        backlog = false;
        this.events.emit("storage:error", { operation: "claim", error });
        this.logger.warn("claim failed; backing off", { error });
        return error instanceof Error ? error : new Error(String(error));
      }
    };
    while (this.running) {
      // Overlap only with a prefetch buffer (adaptive: one the backlog has grown).
      const overlap = backlog && this.processor.prefetch > 0;
      if (inFlight.size >= (overlap ? MAX_CLAIMS_IN_FLIGHT : 1) || !this.processor.wantsClaim()) {
        const waits: Array<Promise<unknown>> = [...inFlight];
        if (this.processor.runningCount > 0 || waits.length === 0) waits.push(this.processor.waitForCompletion(this.stopping!.signal));
        await Promise.race(waits);
        continue;
      }
      this.wakePending = false;
      if (overlap) {
        // Overlap: the loop goes on to the next claim (or waits for room).
        const p: Promise<void> = claim().then(() => {
          inFlight.delete(p);
        });
        inFlight.add(p);
        continue;
      }
      const result = await claim();
      if (!this.running) break;
      if (result instanceof Error) {
        await sleep(backoffMs(errors + 1, { baseMs: base, maxMs: max }), this.stopping!.signal);
        continue;
      }
      if (backlog) continue;
      // claim() has set idle to 0 if it took jobs.
      if (result === 0) idle++;
      await this.waitForWake(backoffMs(idle, { baseMs: base, maxMs: max, jitter: 0.2 }));
    }
    // Jobs claimed after the stop go back with the held ones when the processor drains.
    await Promise.all(inFlight);
  }

  private scheduleMaintenance(delay: number): void {
    if (!this.running) return;
    this.maintenanceTimer = setTimeout(() => {
      this.maintaining = this.maintain().finally(() => {
        this.maintaining = null;
        this.scheduleMaintenance(this.config.schedulerIntervalMs);
      });
    }, delay);
  }

  /** Re-measures the offset to the store's clock (at start, then at most once a minute). */
  private async syncClock(): Promise<void> {
    if (!this.aligned || performance.now() - this.lastSync < 60_000) return;
    this.lastSync = performance.now();
    const offset = await this.aligned.sync(() => this.storage.serverTime());
    if (Math.abs(offset) > 2000) this.logger.warn("this machine's clock differs from the store's; using the store's time", { offsetMs: offset });
  }

  private async maintain(): Promise<void> {
    try {
      await this.syncClock();
      this.defs = await this.storage.listRecurring();
      const report = await this.scheduler.maintain(this.config.clock.now(), this.defs, { promote: false });
      if (report.promoted > 0 || report.reclaimed > 0 || report.fired > 0) this.wake();
      this.armRecurringTimer();
    } catch (error) {
      this.events.emit("storage:error", { operation: "maintenance", error });
      this.logger.warn("maintenance failed; will retry", { error });
    }
  }

  /** Fires the next recurring slot on time instead of at the next maintenance pass. */
  private armRecurringTimer(): void {
    if (this.recurringTimer) clearTimeout(this.recurringTimer);
    this.recurringTimer = null;
    if (!this.running || this.defs.length === 0) return;
    const now = this.config.clock.now();
    let soonest = Infinity;
    for (const d of this.defs) {
      try {
        soonest = Math.min(soonest, nextSlot(d, now) ?? Infinity);
      } catch {
        // invalid definitions are reported by the scheduler
      }
    }
    const delay = soonest - now;
    if (!Number.isFinite(delay) || delay >= this.config.schedulerIntervalMs) return;
    this.recurringTimer = setTimeout(
      () => {
        this.recurringTimer = null;
        if (!this.running) return;
        this.scheduler
          .fireRecurring(this.config.clock.now(), this.defs)
          .then((n) => {
            if (n > 0) this.wake();
          })
          .catch((error) => this.events.emit("storage:error", { operation: "recurring", error }))
          .finally(() => this.armRecurringTimer());
      },
      Math.max(0, delay) + 5,
    );
  }
}
