/**
 * The Workers runtime as a harness of the shared consumer suite
 * (test/serverless/consumer-suite.ts): the fixture Worker's Queue handler,
 * driven with message batches as the platform builds them, its notifier a
 * real QueueNotifier over a producer that records what it is asked to send
 * (a re-armed wake-up for tomorrow must not reach later tests through the
 * real local Queue; queue-flow.worker.test.ts covers that path).
 */
import type { CfMessageSendRequest, CfQueue, WakeUpMessage } from "../../src/adapters/runtime/cloudflare/index.js";
import { MAX_DELAY_SECONDS, QueueNotifier } from "../../src/adapters/runtime/cloudflare/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/config.js";
import { redisBackend } from "../../src/adapters/storage/redis/redis-backend.js";
import { Storage } from "../../src/core/storage.js";
import { decisionsIn, recordingLogger, type Answer, type ConsumerHarness, type LogLine, type SentWakeUp } from "../serverless/consumer-suite.js";
import { makeStorage, type BackendName } from "./backends.js";
import { harness } from "./fixtures/worker.js";
import { deliver, runCron } from "./helpers.js";

export function workersHarness(backend: BackendName): ConsumerHarness {
  return {
    horizonMs: MAX_DELAY_SECONDS * 1000,
    retryDelays: true,
    freshStorage: (clock) => makeStorage(backend, clock),
    // A real Upstash client pointed at a port nobody listens on, without retries of its own.
    unreachableStorage: () =>
      new Storage(redisBackend(new RedisConfig("http://127.0.0.1:9").withToken("unused-token").withRetries(0).withCommandTimeout(2000))),
    async start(o) {
      const storage = await makeStorage(backend, o.clock);
      const logs: LogLine[] = [];
      const sent: SentWakeUp[] = [];
      const producer: CfQueue<WakeUpMessage> = {
        send: () => Promise.reject(new Error("the notifier sends in batches")),
        sendBatch: async (messages: Iterable<CfMessageSendRequest<WakeUpMessage>>) => {
          for (const m of messages) sent.push({ message: m.body, delaySeconds: m.delaySeconds ?? 0 });
        },
      };
      harness.reset(storage, { ...o.config, clock: o.clock, logger: recordingLogger(logs) });
      harness.registry = o.registry;
      harness.notifier = new QueueNotifier(producer, { clock: o.clock });
      if (o.open) harness.openStore = o.open;
      return {
        storage,
        sent,
        logs,
        async deliver(bodies, d = {}) {
          const from = logs.length;
          const { ids, result } = await deliver(bodies, { attempts: d.attempts ?? 1, timestamp: new Date(d.sentAt ?? o.clock.now() - 60_000) });
          const decisions = decisionsIn(logs.slice(from));
          return ids.map((id): Answer => {
            // getQueueResult does not report delays; the fixture records what each retry() was given.
            const retried = harness.deliveries.find((x) => x.messageId === id && x.action === "retry");
            return {
              settled: result.explicitAcks.includes(id) ? "ack" : "back",
              decision: decisions.get(id),
              ...(retried?.delaySeconds !== undefined ? { delaySeconds: retried.delaySeconds } : {}),
            };
          });
        },
        schedule: () => runCron(o.clock),
      };
    },
  };
}
