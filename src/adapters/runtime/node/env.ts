/**
 * Configuration from the environment, for `npm start` and container
 * deployments. Every variable is checked at start-up; a bad value stops the
 * process with a message naming the variable and what it accepts.
 */
import { ConfigError, LOG_LEVELS, QUEUE_NAME, type LogLevel } from "../../../index.js";

export type StorageKind = "memory" | "redis" | "postgres";
export type DemoMode = "off" | "seed" | "producer";

export interface NodeEnvConfig {
  storage: StorageKind;
  redisUrl: string | undefined;
  redisToken: string | undefined;
  databaseUrl: string | undefined;
  workers: number;
  queues: string[];
  pollMs: number;
  dashboardToken: string | undefined;
  dashboardReadToken: string | undefined;
  host: string;
  port: number;
  logLevel: LogLevel;
  serverId: string | undefined;
  shutdownTimeoutMs: number;
  demo: DemoMode;
  /** A module exporting `register(registry, context)`: the user's workers for the stock server. */
  workersModule: string | undefined;
  /** Redis key prefix, so that several apps (or test runs) share one Redis. */
  redisPrefix: string | undefined;
  /** Postgres schema holding qml's tables. */
  postgresSchema: string | undefined;
}

/** Documented in the README's configuration table; keep the two in step. */
export const ENV_VARS = [
  "QML_STORAGE",
  "REDIS_URL",
  "UPSTASH_REDIS_REST_URL",
  "UPSTASH_REDIS_REST_TOKEN",
  "DATABASE_URL",
  "QML_WORKERS",
  "QML_QUEUES",
  "QML_POLL_MS",
  "QML_DASHBOARD_TOKEN",
  "QML_DASHBOARD_READ_TOKEN",
  "QML_HOST",
  "PORT",
  "QML_LOG_LEVEL",
  "QML_SERVER_ID",
  "QML_SHUTDOWN_TIMEOUT_MS",
  "QML_DEMO",
  "QML_WORKERS_MODULE",
  "QML_REDIS_PREFIX",
  "QML_POSTGRES_SCHEMA",
] as const;

function int(env: Record<string, string | undefined>, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected an integer from ${min} to ${max}`);
  }
  return n;
}

function oneOf<T extends string>(env: Record<string, string | undefined>, name: string, allowed: readonly T[], def: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const v = raw.trim().toLowerCase() as T;
  if (!allowed.includes(v)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected one of ${allowed.join(", ")}`);
  return v;
}

function url(env: Record<string, string | undefined>, name: string, schemes: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL: expected ${schemes.map((s) => `${s}//…`).join(" or ")}`);
  }
  if (!schemes.includes(u.protocol)) throw new ConfigError(`${name} has scheme ${u.protocol}: expected ${schemes.map((s) => `${s}//…`).join(" or ")}`);
  return raw;
}

export function loadEnvConfig(env: Record<string, string | undefined> = process.env, argv: string[] = []): NodeEnvConfig {
  const storage = oneOf(env, "QML_STORAGE", ["memory", "redis", "postgres"] as const, "memory");
  const redisUrl = url(env, "REDIS_URL", ["redis:", "rediss:", "https:", "http:"]) ?? url(env, "UPSTASH_REDIS_REST_URL", ["https:", "http:"]);
  const redisToken = env.UPSTASH_REDIS_REST_TOKEN || undefined;
  const databaseUrl = url(env, "DATABASE_URL", ["postgres:", "postgresql:"]);
  if (storage === "redis" && !redisUrl) throw new ConfigError("QML_STORAGE=redis needs REDIS_URL (redis://host:6379, or an Upstash https:// URL with UPSTASH_REDIS_REST_TOKEN)");
  if (storage === "redis" && redisUrl?.startsWith("http") && !redisToken) throw new ConfigError("REDIS_URL is an Upstash REST URL: UPSTASH_REDIS_REST_TOKEN is required");
  if (storage === "postgres" && !databaseUrl) throw new ConfigError("QML_STORAGE=postgres needs DATABASE_URL (postgres://user:pass@host:5432/db)");

  const queuesRaw = env.QML_QUEUES;
  let queues = ["default"];
  if (queuesRaw !== undefined && queuesRaw.trim() !== "") {
    queues = queuesRaw.split(",").map((q) => q.trim());
    const bad = queues.find((q) => !QUEUE_NAME.test(q));
    if (bad !== undefined) throw new ConfigError(`QML_QUEUES has an invalid queue name ${JSON.stringify(bad)}: expected a comma-separated list, in priority order, of names made of letters, digits, "_", "-", "."`);
  }
  const dashboardToken = env.QML_DASHBOARD_TOKEN || undefined;
  if (dashboardToken !== undefined && dashboardToken.length < 16) throw new ConfigError("QML_DASHBOARD_TOKEN is too short: expected at least 16 characters");
  const dashboardReadToken = env.QML_DASHBOARD_READ_TOKEN || undefined;
  if (dashboardReadToken !== undefined && dashboardReadToken.length < 16) throw new ConfigError("QML_DASHBOARD_READ_TOKEN is too short: expected at least 16 characters");
  const host = env.QML_HOST || (dashboardToken ? "0.0.0.0" : "127.0.0.1");
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new ConfigError(`QML_HOST=${JSON.stringify(host)} is invalid: expected a host name or IP address`);
  const serverId = env.QML_SERVER_ID || undefined;
  if (serverId !== undefined && !/^[A-Za-z0-9_.:/-]{1,128}$/.test(serverId)) throw new ConfigError("QML_SERVER_ID is invalid: expected 1-128 letters, digits or _ . : / -");

  const workersModule = env.QML_WORKERS_MODULE?.trim() || undefined;
  if (workersModule !== undefined && (workersModule.length > 1024 || /[\0\r\n]/.test(workersModule))) {
    throw new ConfigError("QML_WORKERS_MODULE is invalid: expected a file path or package name of a module exporting register(registry)");
  }
  const redisPrefix = env.QML_REDIS_PREFIX || undefined;
  if (redisPrefix !== undefined && !/^[A-Za-z0-9_.:-]{1,64}$/.test(redisPrefix)) {
    throw new ConfigError(`QML_REDIS_PREFIX=${JSON.stringify(redisPrefix)} is invalid: expected 1-64 letters, digits or _ . : -`);
  }
  const postgresSchema = env.QML_POSTGRES_SCHEMA || undefined;
  if (postgresSchema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(postgresSchema)) {
    throw new ConfigError(`QML_POSTGRES_SCHEMA=${JSON.stringify(postgresSchema)} is invalid: expected a lowercase identifier (letters, digits, "_"; up to 63 characters)`);
  }

  // The demo jobs are for a first look; a server given its own workers does not want them.
  let demo = oneOf(env, "QML_DEMO", ["off", "seed", "producer"] as const, storage === "memory" && !workersModule ? "seed" : "off");
  if (argv.includes("--demo")) demo = "producer";

  return {
    storage,
    redisUrl,
    redisToken,
    databaseUrl,
    workers: int(env, "QML_WORKERS", 10, 1, 10_000),
    queues,
    pollMs: int(env, "QML_POLL_MS", 1000, 10, 3_600_000),
    dashboardToken,
    dashboardReadToken,
    host,
    port: int(env, "PORT", 8080, 0, 65535),
    logLevel: oneOf(env, "QML_LOG_LEVEL", LOG_LEVELS, "info"),
    serverId,
    shutdownTimeoutMs: int(env, "QML_SHUTDOWN_TIMEOUT_MS", 10_000, 0, 3_600_000),
    demo,
    workersModule,
    redisPrefix,
    postgresSchema,
  };
}
