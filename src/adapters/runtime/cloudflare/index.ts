/**
 * qml/cloudflare: the Workers runtime.
 *
 *   export default createWorker({ storage: (env) => …, registry }) satisfies ExportedHandler<Env>;
 *
 * and, from any edge function that only produces jobs:
 *
 *   const client = createClient({ storage, notifier: createQueueNotifier(env.QML_QUEUE) });
 */
export { createWorker, resolveConfig, authFromEnv, type CloudflareConfig, type ResolvedCloudflareConfig, type CreateWorkerOptions } from "./worker.js";
export { QueueNotifier, createQueueNotifier, MAX_DELAY_SECONDS, MAX_BATCH_MESSAGES, type QueueNotifierOptions } from "./queue-notifier.js";
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
export { configFromEnv, SERVERLESS_ENV_VARS, type ServerlessConfig, type ServerlessEnvConfig } from "../serverless/index.js";
export { decodeWakeUp, delaySecondsUntil } from "../serverless/wake-up.js";
