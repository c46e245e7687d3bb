/**
 * The serverless consumer both short-lived runtimes share (Cloudflare
 * Workers in ../cloudflare, AWS Lambda in ../lambda): the wake-up format,
 * the settings and their environment variables, the store cache, and the
 * consumer with its one decision table. The runtime folders keep only the
 * translation of their platform's events and their notifier.
 */
export { consumeWakeUps, drainDeadLetters, outboxFor, runScheduled, type Decision, type Delivery, type Invocation, type Settlement } from "./consumer.js";
export { resolveServerlessConfig, type ResolvedServerlessConfig, type RuntimeDefaults, type ServerlessConfig } from "./config.js";
export { SERVERLESS_ENV_VARS, configFromEnv, type ServerlessEnvConfig } from "./env.js";
export { StoreCache, type StoreCacheOptions } from "./store-cache.js";
export {
  MAX_IDS_PER_MESSAGE,
  decodeWakeUp,
  delaySecondsUntil,
  encodeWakeUp,
  groupWakeUps,
  wakeUpMessage,
  type GroupOptions,
  type OutgoingWakeUp,
  type WakeUpMessage,
} from "./wake-up.js";
