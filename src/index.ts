/** qml: background jobs for serverless and edge runtimes. The engine; Web Standards only. */
export * from "./core/errors.js";
export * from "./core/clock.js";
export * from "./core/job.js";
export * from "./core/retry.js";
export * from "./core/storage.js";
export * from "./core/registry.js";
export * from "./core/logger.js";
export * from "./core/events.js";
export * from "./core/config.js";
export * from "./core/processor.js";
export * from "./core/completer.js";
export * from "./core/scheduler.js";
export * from "./core/tick.js";
export * from "./core/server.js";
export * from "./core/client.js";
export { MemoryStorage, type MemoryStorageOptions } from "./adapters/storage/memory/index.js";
export { StorageInstance } from "./storage-instance.js";
