/**
 * The client: what code that only produces jobs needs (an edge function, a
 * Lambda, a web app). No Node APIs. A Notifier, when given, wakes consumers
 * after each enqueue (a Cloudflare Queue message, an SQS message), so that
 * latency is not tied to a cron interval.
 *
 * Wake-ups go through the storage's one Outbox (outbox.ts), never straight
 * from here: on a storage a runtime handed out (createWorker,
 * createLambdaHandlers), whose outbox already announces every enqueue, a
 * Client adds no second message.
 */
import { Job, type JobOptions } from "./job.js";
import { Outbox } from "./outbox.js";
import type { ContinueOptions, FlowIds, FlowNode, RecurringDefinition, RecurringOptions, Storage } from "./storage.js";
import type { SendEventResult } from "./steps.js";

export interface WakeUp {
  id: string;
  queue: string;
  /** Epoch ms when the job is due. */
  runAt: number;
}

/** Sends wake-ups to consumers. Implemented by runtime adapters. */
export interface Notifier {
  notify(jobs: WakeUp[]): Promise<void>;
  /**
   * The longest delay this notifier can put on a wake-up, in ms (Cloudflare
   * Queues 12 h, SQS 15 min). A job due later gets no wake-up: the
   * scheduled tick promotes it. Absent: no delay limit.
   */
  readonly maxDelayMs?: number;
}

export interface ClientOptions {
  storage: Storage;
  notifier?: Notifier;
}

export class Client {
  readonly storage: Storage;
  private readonly notifier: Notifier | undefined;

  constructor(options: ClientOptions) {
    this.storage = options.storage;
    this.notifier = options.notifier;
  }

  /** Enqueues a job now (or at `options.runAt` / after `options.delay`). Returns its id. */
  async enqueue(name: string, args: unknown[] = [], options: JobOptions = {}): Promise<string> {
    return (await this.enqueueMany([new Job(name, args, options)]))[0]!;
  }

  /**
   * Enqueues many jobs in one round trip. Returns once their wake-ups are
   * sent (or failed: the jobs are stored either way, and a lost wake-up
   * only waits for the next tick), so a caller that ends its request right
   * after has not cut them off.
   */
  async enqueueMany(jobs: Job[]): Promise<string[]> {
    const outbox = this.notifier ? Outbox.for(this.storage).use(this.notifier) : Outbox.of(this.storage);
    const ids = await this.storage.enqueue(jobs);
    await outbox?.settled();
    return ids;
  }

  /**
   * Enqueues a tree of jobs in one atomic call: a parent runs once all its
   * children have finished (see Storage.enqueueFlow). Returns the ids.
   */
  async enqueueFlow(root: FlowNode): Promise<FlowIds> {
    const outbox = this.notifier ? Outbox.for(this.storage).use(this.notifier) : Outbox.of(this.storage);
    const ids = await this.storage.enqueueFlow(root);
    await outbox?.settled();
    return ids;
  }

  /** Enqueues `name(args)` to run after job `parentId` (on its success, or `on`; see Storage.continueWith). */
  async continueWith(parentId: string, name: string, args: unknown[] = [], options: JobOptions & ContinueOptions = {}): Promise<string> {
    const { on, ...jobOptions } = options;
    const outbox = this.notifier ? Outbox.for(this.storage).use(this.notifier) : Outbox.of(this.storage);
    const id = await this.storage.continueWith(parentId, new Job(name, args, jobOptions), on !== undefined ? { on } : {});
    await outbox?.settled();
    return id;
  }

  /** Enqueues a job to run at `at` (a Date) or after `at` milliseconds. */
  schedule(name: string, args: unknown[], at: Date | number, options: Omit<JobOptions, "runAt" | "delay"> = {}): Promise<string> {
    return this.enqueue(name, args, typeof at === "number" ? { ...options, delay: at } : { ...options, runAt: at });
  }

  recurring(id: string, cron: string, name: string, args: unknown[] = [], options: RecurringOptions = {}): Promise<RecurringDefinition> {
    return this.storage.addOrUpdateRecurring(id, cron, name, args, options);
  }

  removeRecurring(id: string): Promise<boolean> {
    return this.storage.deleteRecurring(id);
  }

  /** Sends an event to the jobs waiting for it (ctx.step.waitForEvent), which wake at once (see Storage.sendEvent). */
  async sendEvent(name: string, data?: unknown): Promise<SendEventResult> {
    const outbox = this.notifier ? Outbox.for(this.storage).use(this.notifier) : Outbox.of(this.storage);
    const result = await this.storage.sendEvent(name, data);
    await outbox?.settled();
    return result;
  }

  /** Cancels a job that has not finished; a running one's AbortSignal fires (see Storage.cancel). */
  cancel(id: string, options: { by?: string } = {}): Promise<boolean> {
    return this.storage.cancel(id, { by: options.by ?? "client" });
  }

  get(id: string): Promise<Job | null> {
    return this.storage.get(id);
  }
}

export function createClient(options: ClientOptions): Client {
  return new Client(options);
}
