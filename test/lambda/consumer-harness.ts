/**
 * The Lambda runtime as a harness of the shared consumer suite
 * (test/serverless/consumer-suite.ts): `createLambdaHandlers` driven with
 * SQS and EventBridge events shaped as AWS sends them, its notifier a real
 * SqsNotifier over a sender that records the SendMessageBatch entries
 * (test/lambda/sqs-notifier.test.ts sends them to the signing stand-in).
 */
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { SqsNotifier, type SqsBatchEntry } from "../../src/adapters/runtime/lambda/sqs-notifier.js";
import { decodeWakeUp } from "../../src/adapters/runtime/serverless/wake-up.js";
import type { Clock } from "../../src/core/clock.js";
import type { Storage } from "../../src/core/storage.js";
import { decisionsIn, recordingLogger, type Answer, type ConsumerHarness, type LogLine, type SentWakeUp } from "../serverless/consumer-suite.js";
import { lambdaContext, scheduledEvent, sqsEvent } from "./aws-events.js";

/** SQS holds a message back at most 900 s. */
const SQS_MAX_DELAY_MS = 900_000;

export function lambdaHarness(makeStorage: (clock: Clock) => Promise<Storage>): ConsumerHarness {
  const open: Storage[] = [];
  const freshStorage = async (clock: Clock) => {
    const s = await makeStorage(clock);
    open.push(s);
    return s;
  };
  return {
    horizonMs: SQS_MAX_DELAY_MS,
    retryDelays: false,
    freshStorage,
    cleanup: async () => void (await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})))),
    async start(o) {
      const storage = await freshStorage(o.clock);
      const logs: LogLine[] = [];
      const sent: SentWakeUp[] = [];
      const sender = {
        sendMessageBatch: async (entries: SqsBatchEntry[]) => {
          for (const e of entries) sent.push({ message: decodeWakeUp(e.MessageBody)!, delaySeconds: e.DelaySeconds ?? 0 });
          return { Successful: entries.map((e) => ({ Id: e.Id, MessageId: crypto.randomUUID() })), Failed: [] };
        },
      };
      const handlers = createLambdaHandlers({
        ...o.config,
        storage: o.open ?? (() => storage),
        registry: o.registry,
        notifier: new SqsNotifier({ sender, clock: o.clock }),
        clock: o.clock,
        safetyMs: o.config?.safetyMs ?? 100,
        logger: recordingLogger(logs),
      });
      return {
        storage,
        sent,
        logs,
        async deliver(bodies, d = {}) {
          const from = logs.length;
          const event = sqsEvent(
            bodies.map((b) => ({
              body: typeof b === "string" ? b : JSON.stringify(b),
              receiveCount: d.attempts ?? 1,
              sentAt: d.sentAt ?? o.clock.now() - 60_000,
            })),
          );
          const res = await handlers.sqsHandler(event, lambdaContext(10_000, o.clock));
          const back = new Set(res.batchItemFailures.map((f) => f.itemIdentifier));
          const decisions = decisionsIn(logs.slice(from));
          return event.Records.map((r): Answer => ({ settled: back.has(r.messageId) ? "back" : "ack", decision: decisions.get(r.messageId) }));
        },
        async schedule() {
          await handlers.scheduleHandler(scheduledEvent(new Date(o.clock.now())), lambdaContext(10_000, o.clock));
        },
      };
    },
  };
}
