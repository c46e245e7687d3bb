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
 * - Messages go out with `SendMessageBatch` (10 per call), each naming up to
 *   50 job ids of one queue and one delay.
 * - Entries SQS refuses for its own reasons are retried once; the rest is
 *   reported by throwing. The client treats wake-ups as best effort: the job
 *   is already stored, a lost wake-up only waits for the next tick.
 */
import { ConfigError } from "../../../core/errors.js";
import type { Notifier, WakeUp } from "../../../core/client.js";
import { systemClock, type Clock } from "../../../core/clock.js";
import { AwsRequestError, awsJsonRequest, envEndpoint, envRegion, type CredentialsSource, type FetchLike } from "./aws-json.js";
import { MAX_IDS_PER_MESSAGE, encodeWakeUp } from "./wake-up.js";

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
  fetch?: FetchLike;
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
    throw new ConfigError(`[qml] [sqs] queueUrl is not a URL: ${JSON.stringify(o.queueUrl)}`);
  }
  const region = o.region ?? regionOfQueueUrl(o.queueUrl) ?? envRegion();
  if (!region) throw new ConfigError("[qml] [sqs] no region: pass region, use a sqs.<region>.amazonaws.com queue URL, or set AWS_REGION");
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
        ...(o.fetch !== undefined ? { fetch: o.fetch } : {}),
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
  private readonly sender: SqsSender;
  private readonly clock: Clock;
  private readonly perMessage: number;
  private readonly concurrency: number;

  constructor(o: SqsNotifierOptions) {
    this.sender = o.sender;
    this.clock = o.clock ?? systemClock;
    this.perMessage = Math.max(1, Math.min(o.maxIdsPerMessage ?? MAX_IDS_PER_MESSAGE, 1000));
    this.concurrency = Math.max(1, o.concurrency ?? 4);
  }

  /** The entries `notify` sends for these wake-ups, in order. Exposed for tests and for callers that batch themselves. */
  entriesFor(jobs: WakeUp[]): SqsBatchEntry[] {
    const now = this.clock.now();
    const groups = new Map<string, { queue: string; delay: number; ids: string[]; runAt: number }>();
    for (const j of jobs) {
      const delayMs = j.runAt - now;
      if (delayMs > MAX_DELAY_SECONDS * 1000) continue;
      const delay = Math.max(0, Math.ceil(delayMs / 1000));
      const key = `${j.queue}\0${delay}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { queue: j.queue, delay, ids: [], runAt: j.runAt }));
      g.ids.push(j.id);
      g.runAt = Math.max(g.runAt, j.runAt);
    }
    const entries: SqsBatchEntry[] = [];
    for (const g of groups.values()) {
      for (let i = 0; i < g.ids.length; i += this.perMessage) {
        const entry: SqsBatchEntry = { Id: String(entries.length), MessageBody: encodeWakeUp({ queue: g.queue, ids: g.ids.slice(i, i + this.perMessage), runAt: g.runAt }) };
        if (g.delay > 0) entry.DelaySeconds = g.delay;
        entries.push(entry);
      }
    }
    return entries;
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
      throw new AwsRequestError("sqs", f.Code, `${failures.length} of ${entries.length} wake-up messages were not sent (first: ${f.Message ?? f.Code})`, undefined, true);
    }
  }

  /** Sends one batch; entries that failed on SQS's side are sent once more. Returns what still failed. */
  private async sendWithRetry(batch: SqsBatchEntry[]): Promise<Array<{ Id: string; Code: string; Message?: string }>> {
    const first = await this.sender.sendMessageBatch(batch);
    if (first.Failed.length === 0) return [];
    const retry = first.Failed.filter((f) => !f.SenderFault).map((f) => batch.find((e) => e.Id === f.Id)!).filter(Boolean);
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
