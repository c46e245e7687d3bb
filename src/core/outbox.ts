/**
 * The outbox: wake-ups for the jobs this process enqueues through one
 * Storage, sent through one Notifier (a Cloudflare Queue, SQS).
 *
 * One per Storage (`Outbox.for(storage)`), so that every path that enqueues
 * through it (the API, a Client, a job enqueuing a follow-up, a recurring
 * firing) announces each job exactly once, whoever set the notifier: a
 * runtime (createWorker, createLambdaHandlers) and a Client on the same
 * storage share this one listener instead of each sending their own.
 *
 * Which notifier: one storage, one wake-up channel. A runtime's own
 * notifier takes over (`use(n, { replace: true })`); a Client's is used
 * only while none is set. Only this process's enqueues are forwarded (the
 * listener asks for `remote: false`): other processes send their own, and
 * no LISTEN or SUBSCRIBE connection is opened for it.
 *
 * Sends start inside the enqueuing call, so they belong to that request;
 * `settled()` is what a short-lived invocation waits for before it ends
 * (`ctx.waitUntil(outbox.settled())` on Workers, awaited before a Lambda
 * handler returns: a frozen container sends nothing). A wake-up is an
 * optimisation, never the record: the job is stored before it is sent, and
 * a lost one only waits for the next scheduled tick.
 */
import type { Notifier, WakeUp } from "./client.js";
import type { Logger } from "./logger.js";
import type { Storage } from "./storage.js";

const outboxes = new WeakMap<Storage, Outbox>();

export class Outbox {
  /** The outbox of `storage`, made (and its listener registered) on first call. */
  static for(storage: Storage): Outbox {
    let o = outboxes.get(storage);
    if (!o) outboxes.set(storage, (o = new Outbox(storage)));
    return o;
  }

  /** The outbox of `storage` if something made one, without making it. */
  static of(storage: Storage): Outbox | undefined {
    return outboxes.get(storage);
  }

  private current: Notifier | undefined;
  private logger: Logger;
  private readonly inFlight = new Set<Promise<void>>();

  private constructor(storage: Storage) {
    this.logger = storage.logger;
    storage.onEnqueue((jobs) => this.send(jobs.map((j) => ({ id: j.id, queue: j.queue, runAt: j.runAt }))), { remote: false });
  }

  get notifier(): Notifier | undefined {
    return this.current;
  }

  /**
   * Sets where wake-ups go. With `replace` (a runtime's own notifier, or
   * undefined for none) it takes over; without (a Client's), it is used
   * only while no notifier is set.
   */
  use(notifier: Notifier | undefined, options: { replace?: boolean; logger?: Logger } = {}): this {
    if (options.replace || this.current === undefined) this.current = notifier;
    if (options.logger) this.logger = options.logger;
    return this;
  }

  /** Resolves once every send in flight has ended (sent or failed), or after `withinMs`. */
  async settled(withinMs?: number): Promise<void> {
    if (this.inFlight.size === 0) return;
    const all = Promise.allSettled([...this.inFlight]).then(() => undefined);
    if (withinMs === undefined) return all;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, withinMs))))]);
    if (timer !== undefined) clearTimeout(timer);
  }

  private send(jobs: WakeUp[]): void {
    const notifier = this.current;
    if (!notifier || jobs.length === 0) return;
    const p = Promise.resolve()
      .then(() => notifier.notify(jobs))
      .catch((error: unknown) => {
        this.logger.warn("could not send wake-ups; the next scheduled tick runs the jobs", { count: jobs.length, error });
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }
}
