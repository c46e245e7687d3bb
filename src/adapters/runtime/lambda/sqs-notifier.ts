/**
 * Wake-ups over SQS: after an enqueue, the client sends a message to the
 * queue a Lambda consumes (`sqsHandler`), so a job starts within about a
 * second instead of at the next EventBridge tick.
 *
 *   const client = createClient({ storage, notifier: createSqsNotifier({ queueUrl }) });
 *
 * - Delayed jobs: a message can be delayed up to 900 s (`DelaySeconds`), so
 *   a job due within 15 minutes gets a wake-up at its due time; a job due
 *   later gets none (the scheduled tick promotes it).
 * - Messages (serverless/wake-up.ts) go out with `SendMessageBatch` (10 per
 *   call), each naming up to 50 job ids of one queue and one delay.
 * - Entries SQS refuses for its own reasons are retried once; the rest is
 *   reported by throwing. The client treats wake-ups as best effort: the job
 *   is already stored, a lost wake-up only waits for the next tick.
 */
import { ConfigError } from "../../../core/errors.js";
import type { Notifier, WakeUp } from "../../../core/client.js";
import { systemClock, type Clock } from "../../../core/clock.js";
import { encodeWakeUp, groupWakeUps } from "../serverless/wake-up.js";
import { AwsRequestError, awsJsonRequest, envEndpoint, envRegion, type CredentialsSource } from "./aws.js";

export interface SqsBatchEntry {
  Id: string;
  MessageBody: string;
  DelaySeconds?: number;
}

export interface SqsBatchResult {
  Successful: Array<{ Id: string; MessageId: string; MD5OfMessageBody?: string }>;
  Failed: Array<{ Id: string; SenderFault: boolean; Code: string; Message?: string }>;
}

/** The one SQS call the notifier needs. Implemented over fetch by `createSqsSender`; tests may pass their own. */
export interface SqsSender {
  sendMessageBatch(entries: SqsBatchEntry[]): Promise<SqsBatchResult>;
}

export interface SqsSenderOptions {
  /** `https://sqs.<region>.amazonaws.com/<account>/<name>` */
  queueUrl: string;
  /** Default: from the queue URL, else AWS_REGION. */
  region?: string;
  /** Where to POST (default: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, else the queue URL's origin). For a VPC endpoint or a local stand-in. */
  endpoint?: string;
  /** Default: the Lambda environment's (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). */
  credentials?: CredentialsSource;
  timeoutMs?: number;
}

const SQS_HOST = /^sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/;

export function regionOfQueueUrl(queueUrl: string): string | undefined {
  try {
    return SQS_HOST.exec(new URL(queueUrl).hostname)?.[1];
  } catch {
    return undefined;
  }
}

/** SendMessageBatch over the AWS JSON protocol, signed with SigV4. */
export function createSqsSender(o: SqsSenderOptions): SqsSender {
  let url: URL;
  try {
    url = new URL(o.queueUrl);
  } catch {
    throw new ConfigError(`queueUrl is not a URL: ${JSON.stringify(o.queueUrl)}`, { scope: "sqs" });
  }
  const region = o.region ?? regionOfQueueUrl(o.queueUrl) ?? envRegion();
  if (!region) throw new ConfigError("no region: pass region, use a sqs.<region>.amazonaws.com queue URL, or set AWS_REGION", { scope: "sqs" });
  const endpoint = o.endpoint ?? envEndpoint("SQS") ?? `${url.origin}/`;
  return {
    sendMessageBatch: (entries) =>
      awsJsonRequest<SqsBatchResult>({
        endpoint,
        region,
        service: "sqs",
        target: "AmazonSQS.SendMessageBatch",
        jsonVersion: "1.0",
        body: { QueueUrl: o.queueUrl, Entries: entries },
        ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      }).then((r) => ({ Successful: r.Successful ?? [], Failed: r.Failed ?? [] })),
  };
}

export interface SqsNotifierOptions {
  sender: SqsSender;
  clock?: Clock;
  /** Job ids per message (default 50). */
  maxIdsPerMessage?: number;
  /** SendMessageBatch calls in flight at once (default 4). */
  concurrency?: number;
}

/** SQS allows 900 s of delivery delay. */
const MAX_DELAY_SECONDS = 900;
const MAX_BATCH = 10;

export class SqsNotifier implements Notifier {
  readonly maxDelayMs = MAX_DELAY_SECONDS * 1000;
  private readonly sender: SqsSender;
  private readonly clock: Clock;
  private readonly perMessage: number | undefined;
  private readonly concurrency: number;

  constructor(o: SqsNotifierOptions) {
    this.sender = o.sender;
    this.clock = o.clock ?? systemClock;
    this.perMessage = o.maxIdsPerMessage;
    this.concurrency = Math.max(1, o.concurrency ?? 4);
  }

  /** The entries `notify` sends for these wake-ups, in order. Exposed for tests and for callers that batch themselves. */
  entriesFor(jobs: WakeUp[]): SqsBatchEntry[] {
    const messages = groupWakeUps(jobs, {
      now: this.clock.now(),
      maxDelaySeconds: MAX_DELAY_SECONDS,
      ...(this.perMessage !== undefined ? { perMessage: this.perMessage } : {}),
    });
    return messages.map((w, i) => ({ Id: String(i), MessageBody: encodeWakeUp(w.message), ...(w.delaySeconds > 0 ? { DelaySeconds: w.delaySeconds } : {}) }));
  }

  async notify(jobs: WakeUp[]): Promise<void> {
    const entries = this.entriesFor(jobs);
    if (entries.length === 0) return;
    const batches: SqsBatchEntry[][] = [];
    for (let i = 0; i < entries.length; i += MAX_BATCH) batches.push(entries.slice(i, i + MAX_BATCH));
    const failures: Array<{ Id: string; Code: string; Message?: string }> = [];
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        failures.push(...(await this.sendWithRetry(batch)));
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, batches.length) }, worker));
    if (failures.length > 0) {
      const f = failures[0]!;
      throw new AwsRequestError(
        "sqs",
        f.Code,
        `${failures.length} of ${entries.length} wake-up messages were not sent (first: ${f.Message ?? f.Code})`,
        undefined,
        true,
      );
    }
  }

  /** Sends one batch; entries that failed on SQS's side are sent once more. Returns what still failed. */
  private async sendWithRetry(batch: SqsBatchEntry[]): Promise<Array<{ Id: string; Code: string; Message?: string }>> {
    const first = await this.sender.sendMessageBatch(batch);
    if (first.Failed.length === 0) return [];
    const retry = first.Failed.filter((f) => !f.SenderFault)
      .map((f) => batch.find((e) => e.Id === f.Id)!)
      .filter(Boolean);
    const final = first.Failed.filter((f) => f.SenderFault);
    if (retry.length > 0) {
      const second = await this.sender.sendMessageBatch(retry);
      final.push(...second.Failed);
    }
    return final;
  }
}

/** `createSqsNotifier({ queueUrl })`: a notifier over SigV4-signed fetch, credentials from the Lambda environment. */
export function createSqsNotifier(o: SqsSenderOptions & Omit<SqsNotifierOptions, "sender">): SqsNotifier {
  return new SqsNotifier({
    sender: createSqsSender(o),
    ...(o.clock !== undefined ? { clock: o.clock } : {}),
    ...(o.maxIdsPerMessage !== undefined ? { maxIdsPerMessage: o.maxIdsPerMessage } : {}),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
  });
}
