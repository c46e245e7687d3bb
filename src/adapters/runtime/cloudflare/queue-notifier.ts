/**
 * A Notifier over a Cloudflare Queue producer binding: every enqueue sends a
 * small wake-up message (`{ id, queue, runAt }`), so a consumer runs the job
 * within seconds instead of at the next cron tick.
 *
 * A job due later is sent with `delaySeconds` so that its wake-up arrives
 * when it is due. Queues caps a delay at 12 hours; a job due later than that
 * is looked at after 12 hours and its wake-up is sent again from there (see
 * the consumer in worker.ts).
 *
 * The wake-up is an optimisation, never the record: the job is stored
 * before its message is sent, and a lost message only delays the job to the
 * next cron tick.
 */
import { systemClock, type Clock } from "../../../core/clock.js";
import type { Notifier, WakeUp } from "../../../core/client.js";
import type { CfMessageSendRequest, CfQueue, WakeUpMessage } from "./types.js";

/** Longest delay Cloudflare Queues accepts on a message (12 hours). */
export const MAX_DELAY_SECONDS = 43_200;
/** Most messages `sendBatch` takes in one call. */
export const MAX_BATCH_MESSAGES = 100;

export interface QueueNotifierOptions {
  clock?: Clock;
}

/** Seconds from `now` until `at`, rounded up, within what Queues accepts. */
export function delaySecondsUntil(at: number, now: number): number {
  if (!Number.isFinite(at) || at <= now) return 0;
  return Math.min(MAX_DELAY_SECONDS, Math.ceil((at - now) / 1000));
}

export class QueueNotifier implements Notifier {
  private readonly clock: Clock;

  constructor(
    private readonly queue: CfQueue<WakeUpMessage>,
    options: QueueNotifierOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  async notify(jobs: WakeUp[]): Promise<void> {
    if (jobs.length === 0) return;
    const now = this.clock.now();
    const messages: CfMessageSendRequest<WakeUpMessage>[] = jobs.map((j) => ({
      body: { id: j.id, queue: j.queue, runAt: j.runAt },
      contentType: "json",
      delaySeconds: delaySecondsUntil(j.runAt, now),
    }));
    // Chunks go out together: one enqueue of 1,000 jobs is 10 sends in parallel, not 10 round trips in a row.
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < messages.length; i += MAX_BATCH_MESSAGES) {
      sends.push(this.queue.sendBatch(messages.slice(i, i + MAX_BATCH_MESSAGES)));
    }
    await Promise.all(sends);
  }
}

/** `createClient({ storage, notifier: createQueueNotifier(env.QML_QUEUE) })`. */
export function createQueueNotifier(queue: CfQueue<WakeUpMessage>, options: QueueNotifierOptions = {}): QueueNotifier {
  return new QueueNotifier(queue, options);
}
