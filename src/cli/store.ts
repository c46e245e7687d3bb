/**
 * The store a command works on: the one `qml-server` would open in the same
 * environment (QML_STORAGE, QML_SQLITE_PATH, REDIS_URL, DATABASE_URL …),
 * read through the same table (node/env.ts) and opened by the same code
 * (node/storage-from-env.ts). Opening connects nothing, so input the core
 * refuses never costs a round trip.
 */
import type { Storage } from "../index.js";
import { loadEnvConfig, type NodeEnvConfig } from "../adapters/runtime/node/env.js";
import { storageFromEnv } from "../adapters/runtime/node/storage-from-env.js";
import { configProblem } from "./exit.js";

export function cliEnvConfig(): NodeEnvConfig {
  try {
    return loadEnvConfig(process.env);
  } catch (e) {
    throw configProblem(e);
  }
}

/** Runs `fn` on the environment's store and closes it, whatever happens. */
export async function withStorage<T>(fn: (storage: Storage, config: NodeEnvConfig) => Promise<T>): Promise<T> {
  const config = cliEnvConfig();
  const storage = await storageFromEnv(config).catch((e: unknown) => {
    throw configProblem(e);
  });
  try {
    return await fn(storage, config);
  } finally {
    await storage.close().catch(() => {});
  }
}

/** Where the store is, for messages: "sqlite ./data/qml.db", "postgres (schema qml)", "redis (prefix qml:)". */
export function describeStore(config: NodeEnvConfig): string {
  switch (config.storage) {
    case "sqlite":
      return `sqlite ${config.sqlitePath}`;
    case "postgres":
      return `postgres (schema ${config.postgresSchema ?? "qml"})`;
    case "redis":
      return `redis (prefix ${config.redisPrefix ?? "qml:"})`;
    case "memory":
      return "memory (this process only: nothing is kept)";
  }
}
