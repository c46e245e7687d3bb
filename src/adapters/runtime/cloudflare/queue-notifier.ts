/**
 * A Notifier over a Cloudflare Queue producer binding: every enqueue sends
 * a wake-up (serverless/wake-up.ts), so a consumer runs the job within
 * seconds instead of at the next cron tick.
 *
 * A job due later is sent with `delaySeconds`, so its wake-up arrives when
 * it is due. Queues caps a delay at 12 hours: a job due later gets no
 * message, and the cron tick promotes it.
 */
import { systemClock, type Clock } from "../../../core/clock.js";
import type { Notifier, WakeUp } from "../../../core/client.js";
import { groupWakeUps, type WakeUpMessage } from "../serverless/wake-up.js";
import type { CfMessageSendRequest, CfQueue } from "./types.js";

/** Longest delay Cloudflare Queues accepts on a message (12 hours). */
export const MAX_DELAY_SECONDS = 43_200;
/** Most messages `sendBatch` takes in one call. */
export const MAX_BATCH_MESSAGES = 100;

export interface QueueNotifierOptions {
  clock?: Clock;
  /** Job ids per message (default 50). */
  maxIdsPerMessage?: number;
}

export class QueueNotifier implements Notifier {
  readonly maxDelayMs = MAX_DELAY_SECONDS * 1000;
  private readonly clock: Clock;

  constructor(
    private readonly queue: CfQueue<WakeUpMessage>,
    private readonly options: QueueNotifierOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  async notify(jobs: WakeUp[]): Promise<void> {
    const messages: CfMessageSendRequest<WakeUpMessage>[] = groupWakeUps(jobs, {
      now: this.clock.now(),
      maxDelaySeconds: MAX_DELAY_SECONDS,
      ...(this.options.maxIdsPerMessage !== undefined ? { perMessage: this.options.maxIdsPerMessage } : {}),
    }).map((w) => ({ body: w.message, contentType: "json", delaySeconds: w.delaySeconds }));
    // Chunks go out together: 10,000 wake-ups are 2 sends in parallel, not 2 round trips in a row.
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < messages.length; i += MAX_BATCH_MESSAGES) sends.push(this.queue.sendBatch(messages.slice(i, i + MAX_BATCH_MESSAGES)));
    await Promise.all(sends);
  }
}

/** `createClient({ storage, notifier: createQueueNotifier(env.QML_QUEUE) })`. */
export function createQueueNotifier(queue: CfQueue<WakeUpMessage>, options: QueueNotifierOptions = {}): QueueNotifier {
  return new QueueNotifier(queue, options);
}
