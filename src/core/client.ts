/**
 * The client: what code that only produces jobs needs (an edge function, a
 * Lambda, a web app). No Node APIs. A Notifier, when given, wakes consumers
 * after each enqueue (a Cloudflare Queue message, an SQS message), so that
 * latency is not tied to a cron interval.
 */
import { Job, type JobOptions } from "./job.js";
import type { RecurringDefinition, RecurringOptions, Storage } from "./storage.js";

export interface WakeUp {
  id: string;
  queue: string;
  /** Epoch ms when the job is due. */
  runAt: number;
}

/** Sends wake-ups to consumers. Implemented by runtime adapters. */
export interface Notifier {
  notify(jobs: WakeUp[]): Promise<void>;
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

  /** Enqueues many jobs in one round trip. */
  async enqueueMany(jobs: Job[]): Promise<string[]> {
    const ids = await this.storage.enqueue(jobs);
    if (this.notifier) {
      // The job is durably stored before the wake-up is sent; a lost wake-up
      // only delays the job to the next tick, it never loses it.
      const wake = jobs.filter((j) => j.createdAt !== undefined).map((j) => ({ id: j.id, queue: j.queue, runAt: j.runAt?.getTime() ?? Date.now() }));
      if (wake.length > 0) {
        try {
          await this.notifier.notify(wake);
        } catch {
          // best effort, see above
        }
      }
    }
    return ids;
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

  /** Cancels a job (soft delete); a running job's worker loses its lease. */
  cancel(id: string): Promise<boolean> {
    return this.storage.delete(id);
  }

  get(id: string): Promise<Job | null> {
    return this.storage.get(id);
  }
}

export function createClient(options: ClientOptions): Client {
  return new Client(options);
}
