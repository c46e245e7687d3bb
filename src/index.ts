/**
 * qml: background jobs for serverless and edge runtimes. The engine and the
 * memory backend; Web Standards only.
 *
 * This list is the package's surface: test/api/public-api.test.ts writes it
 * (with every signature) to test/api/public-api.txt, so any change to it
 * shows in review. Engine internals (the processor, the completer, the
 * scheduler, cursors) are not exported; backends are written against
 * `qml/driver`.
 */

// Storage: the public API over a backend
export {
  Storage,
  type ActionResult,
  type CancelListener,
  type ContinueOptions,
  type FlowIds,
  type FlowNode,
  type QueueLimits,
  type EnqueueListener,
  type EnqueueListenerOptions,
  type EnqueueOptions,
  type StatsOptions,
  type StorageOptions,
  type ListFilter,
  type Page,
  type PageRequest,
  type QueueStats,
  type RecurringDefinition,
  type RecurringOptions,
  type SortField,
  type StateCounts,
  type Stats,
  type ThroughputBucket,
} from "./core/storage.js";
export type { Retention } from "./core/driver.js";
export type { KeyValue, KvHit, KvSetOptions } from "./core/kv.js";
export { memoryBackend, type MemoryBackendOptions } from "./adapters/storage/memory/index.js";

// Jobs
export {
  ALL_STATES,
  FINISHED_STATES,
  Job,
  JobState,
  type DependencyOutcome,
  type FlowSpec,
  type HistoryEntry,
  type JobHistory,
  type JobOptions,
  type JobRecord,
  type StepRecord,
  type UnmetDependency,
} from "./core/job.js";
export { MAX_DEPENDENCIES, MAX_FLOW_DEPTH, MAX_FLOW_JOBS } from "./core/flows.js";
export {
  MAX_STEP_RESULT_BYTES,
  MAX_STEPS,
  MAX_STEPS_BYTES,
  type ReceivedEvent,
  type SendEventResult,
  type StepRunOptions,
  type StepTools,
  type WaitForEventOptions,
} from "./core/steps.js";
export { RetryPolicy, type RetrySpec } from "./core/retry.js";
export {
  WorkerRegistry,
  WorkerResult,
  type RegisterOptions,
  type Worker,
  type WorkerContext,
  type WorkerFunction,
  type WorkerResultKind,
} from "./core/registry.js";

// Running jobs
export { BackgroundJobServer } from "./core/server.js";
export { ServerConfig, type ResolvedServerConfig } from "./core/config/server-config.js";
export { tick, type TickOptions, type TickReport } from "./core/tick.js";
export { Client, createClient, type ClientOptions, type Notifier, type WakeUp } from "./core/client.js";
export type { JobEventMap } from "./core/events.js";
export type { RunOutcome, RunTrace, Tracer } from "./core/tracing.js";
export {
  DEFAULT_BUCKETS,
  JobMetrics,
  OVERFLOW_LABEL,
  escapeLabelValue,
  processMetrics,
  type EventSource,
  type JobMetricsOptions,
  type QueueDepths,
} from "./core/metrics.js";
export { Keyring, type EncryptionKey, type EncryptSpec } from "./core/encryption.js";
export { defineJob, type InferInput, type InferOutput, type JobDefinition, type JobTarget, type StandardSchemaV1, type TypedHandler } from "./core/typed.js";

// Configuration from the environment
export { ENV_TABLE, keyringFromEnv, readEnv, type EnvSettings, type EnvVar, type Runtime } from "./core/config/env.js";

// Errors
export {
  BudgetExceededError,
  CancelledError,
  ConfigError,
  DeadlineError,
  DecryptionError,
  DependencyError,
  DuplicateStepIdError,
  EncryptionKeyMissingError,
  ErrorCode,
  InvalidStateError,
  LeaseLostError,
  NotFoundError,
  QmlError,
  ShutdownError,
  StepError,
  StepResultTooLargeError,
  StorageUnavailableError,
  TimeoutError,
  UnknownJobNameError,
  ValidationError,
  isQmlError,
  type ErrorInfo,
  type QmlErrorOptions,
} from "./core/errors.js";

// Time and logs
export { ManualClock, systemClock, type Clock } from "./core/clock.js";
export { JsonLogger, LOG_LEVELS, silentLogger, type LogLevel, type Logger } from "./core/logger.js";
