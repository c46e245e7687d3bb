/**
 * Configuration from the environment, for `npm start` and container
 * deployments, read through the repository-wide table
 * (src/core/config/env.ts). Every variable is checked at start-up; a bad
 * value stops the process with a message naming the variable and what it
 * accepts.
 */
import { ConfigError } from "../../../core/errors.js";
import type { Keyring } from "../../../core/encryption.js";
import type { QueueLimits } from "../../../core/storage.js";
import type { LogLevel } from "../../../core/logger.js";
import { ENV_TABLE, readEnv } from "../../../core/config/env.js";

export type StorageKind = "sqlite" | "memory" | "redis" | "postgres";
export type DemoMode = "off" | "seed" | "producer";

export interface NodeEnvConfig {
  storage: StorageKind;
  /** The SQLite database file (QML_STORAGE=sqlite, the default). */
  sqlitePath: string;
  redisUrl: string | undefined;
  redisToken: string | undefined;
  databaseUrl: string | undefined;
  workers: number;
  queues: string[];
  pollMs: number;
  /** QML_PREFETCH: "auto" (adaptive) or a count. */
  prefetch: number | "auto";
  /** Admin tokens (QML_DASHBOARD_TOKEN, comma-separated). */
  dashboardTokens: string[];
  /** Read-only tokens (QML_DASHBOARD_READ_TOKEN, comma-separated). */
  dashboardReadTokens: string[];
  /** Key of the session cookies (QML_SESSION_SECRET). */
  sessionSecret: string | undefined;
  /** A bearer token for GET /metrics only (QML_METRICS_TOKEN). */
  metricsToken?: string | undefined;
  /** Failed logins and bearer tokens per address and minute (QML_LOGIN_THROTTLE; 0: none). */
  loginThrottle: number | undefined;
  host: string;
  port: number;
  logLevel: LogLevel;
  serverId: string | undefined;
  shutdownTimeoutMs: number;
  demo: DemoMode;
  /**
   * Which names POST /api/jobs accepts (QML_ENQUEUE_NAMES): those the
   * server has workers for, or any. Unset: `registered` when the server
   * runs workers, `any` when it runs none (a producer).
   */
  enqueueNames?: "registered" | "any" | undefined;
  /** A module exporting `register(registry, context)`: the user's workers for the stock server. */
  workersModule: string | undefined;
  /** Redis key prefix, so that several apps (or test runs) share one Redis. */
  redisPrefix: string | undefined;
  /** Postgres schema holding qml's tables. */
  postgresSchema: string | undefined;
  postgresDriver: "pg" | "neon-ws" | "neon-http" | undefined;
  postgresMaxConnections: number | undefined;
  leaseMs: number;
  jobTimeoutMs: number | undefined;
  finishedJobTtlMs: number | undefined;
  maxFinishedJobs: number | undefined;
  /** Keys of encrypted job arguments (QML_ENCRYPTION_KEYS), handed to the storage. */
  encryptionKeys?: Keyring | undefined;
  /** Redis Cluster (QML_REDIS_CLUSTER) and the instance's hash tag (QML_REDIS_HASH_TAG). */
  redisCluster?: boolean | undefined;
  redisHashTag?: string | undefined;
  /** Limits for whole queues (QML_QUEUE_LIMITS), handed to the storage. */
  queueLimits?: Record<string, QueueLimits> | undefined;
  /** The dashboard's live connection limits (QML_LIVE_MAX_CONNECTIONS, QML_LIVE_MAX_PER_SESSION; unset: the app's defaults). */
  liveMaxConnections?: number | undefined;
  liveMaxPerSession?: number | undefined;
  /** Trust a TLS-terminating proxy's X-Forwarded-Proto (QML_TRUST_FORWARDED_PROTO). */
  trustForwardedProto?: boolean;
}

/** The variables the Node server reads: its rows of the repository-wide table (core/config/env.ts). */
export const ENV_VARS: readonly string[] = ENV_TABLE.filter((v) => v.runtimes.includes("node")).map((v) => v.name);

export function loadEnvConfig(env: Record<string, string | undefined> = process.env, argv: string[] = []): NodeEnvConfig {
  const e = readEnv(env, "node");
  const redisUrl = e.redisUrl ?? e.upstashUrl;
  const redisToken = e.upstashToken;
  if (e.storage === "redis" && !redisUrl)
    throw new ConfigError("QML_STORAGE=redis needs REDIS_URL (redis://host:6379, or an Upstash https:// URL with UPSTASH_REDIS_REST_TOKEN)");
  if (e.storage === "redis" && redisUrl?.startsWith("http") && !redisToken)
    throw new ConfigError("REDIS_URL is an Upstash REST URL: UPSTASH_REDIS_REST_TOKEN is required");
  if (e.storage === "postgres" && !e.databaseUrl) throw new ConfigError("QML_STORAGE=postgres needs DATABASE_URL (postgres://user:pass@host:5432/db)");
  const tokens = (e.dashboardTokens ?? []).length + (e.dashboardReadTokens ?? []).length;
  // The demo jobs are for a first look (the embedded stores: the default SQLite file, or memory);
  // a server given its own workers, or pointed at a shared store, does not want them.
  let demo = e.demo ?? ((e.storage === "sqlite" || e.storage === "memory") && !e.workersModule ? "seed" : "off");
  if (argv.includes("--demo")) demo = "producer";
  return {
    storage: e.storage,
    sqlitePath: e.sqlitePath,
    redisUrl,
    redisToken,
    databaseUrl: e.databaseUrl,
    workers: e.workers,
    queues: e.queues,
    pollMs: e.pollMs,
    prefetch: e.prefetch,
    dashboardTokens: e.dashboardTokens ?? [],
    dashboardReadTokens: e.dashboardReadTokens ?? [],
    sessionSecret: e.sessionSecret,
    metricsToken: e.metricsToken,
    loginThrottle: e.loginThrottle,
    // Any token means the dashboard is meant to be reached from elsewhere.
    host: e.host ?? (tokens > 0 ? "0.0.0.0" : "127.0.0.1"),
    port: e.port,
    logLevel: e.logLevel,
    serverId: e.serverId,
    shutdownTimeoutMs: e.shutdownTimeoutMs,
    demo,
    enqueueNames: e.enqueueNames,
    workersModule: e.workersModule,
    redisPrefix: e.redisPrefix,
    postgresSchema: e.postgresSchema,
    postgresDriver: e.postgresDriver,
    postgresMaxConnections: e.postgresMaxConnections,
    leaseMs: e.leaseMs,
    jobTimeoutMs: e.jobTimeoutMs,
    finishedJobTtlMs: e.finishedJobTtlMs,
    maxFinishedJobs: e.maxFinishedJobs,
    encryptionKeys: e.encryptionKeys,
    queueLimits: e.queueLimits,
    redisCluster: e.redisCluster,
    redisHashTag: e.redisHashTag,
    liveMaxConnections: e.liveMaxConnections,
    liveMaxPerSession: e.liveMaxPerSession,
    trustForwardedProto: e.trustForwardedProto,
  };
}
