/**
 * qml/cloudflare: the Workers runtime.
 *
 *   export default createWorker({ storage: (env) => …, registry }) satisfies ExportedHandler<Env>;
 *
 * and, from any edge function that only produces jobs:
 *
 *   const client = createClient({ storage, notifier: createQueueNotifier(env.QML_QUEUE) });
 */
export { createWorker, resolveConfig, authFromEnv, parseWakeUp, backoffSeconds, type CloudflareConfig, type CreateWorkerOptions } from "./worker.js";
export { QueueNotifier, createQueueNotifier, delaySecondsUntil, MAX_DELAY_SECONDS, MAX_BATCH_MESSAGES, type QueueNotifierOptions } from "./queue-notifier.js";
export type {
  CfExecutionContext,
  CfMessage,
  CfMessageBatch,
  CfMessageSendRequest,
  CfQueue,
  CfRetryOptions,
  CfScheduledController,
  WakeUpMessage,
  WorkerHandlers,
} from "./types.js";
export { createClient, Client, type ClientOptions, type Notifier, type WakeUp } from "../../../core/client.js";
export { configFromEnv, CLOUDFLARE_ENV_VARS } from "./env.js";
