/**
 * The environment variables qml reads, in one table: name, type, default
 * and meaning, and the runtimes that read each. The Node server, the
 * dashboard server, the Workers and the Lambda runtimes all read their
 * settings through `readEnv`, and the README's configuration table is
 * checked against this one (test/config/env-table.test.ts), so a variable
 * has one name and one meaning everywhere.
 *
 * Web Standards only: the environment is passed in (`process.env` on Node
 * and Lambda, a Worker's `env`), never read from a global here.
 */
import { z } from "zod";
import { Keyring } from "../encryption.js";
import { ConfigError } from "../errors.js";
import { LOG_LEVELS, type LogLevel } from "../logger.js";
import { bounds, check, type BoundName } from "./bounds.js";

export type Runtime = "node" | "workers" | "lambda";
const ALL: readonly Runtime[] = ["node", "workers", "lambda"];
const SERVERLESS: readonly Runtime[] = ["workers", "lambda"];
const NODE: readonly Runtime[] = ["node"];

export interface EnvVar<T> {
  name: string;
  runtimes: readonly Runtime[];
  /** What it accepts, as the README shows it. */
  type: string;
  /** The default as the README shows it ("—": none). */
  shownDefault: string;
  meaning: string;
  /** Turns the raw text into a value; throws ConfigError naming the variable. */
  parse(raw: string, name: string): T;
  /** The value when unset (undefined: none, or decided by the reader from other settings). */
  fallback?: T;
}

/** A row of the table; keeps its literal shape (whether it has a fallback) for the types below. */
function v<E extends EnvVar<any>>(e: E): E {
  return e;
}

// ------------------------------------------------------------- parsers

const integer =
  (bound: BoundName) =>
  (raw: string, name: string): number => {
    const schema = bounds[bound];
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !schema.safeParse(n).success) {
      const range = schema instanceof z.ZodNumber ? ` from ${schema.minValue} to ${schema.maxValue}` : "";
      throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected an integer${range}`);
    }
    return n;
  };

const oneOf =
  <T extends string>(allowed: readonly T[]) =>
  (raw: string, name: string): T => {
    const value = raw.toLowerCase() as T;
    if (!allowed.includes(value)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected one of ${allowed.join(", ")}`);
    return value;
  };

const url =
  (schemes: readonly string[]) =>
  (raw: string, name: string): string => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new ConfigError(`${name} is not a valid URL: expected ${schemes.map((s) => `${s}//…`).join(" or ")}`);
    }
    if (!schemes.includes(u.protocol)) throw new ConfigError(`${name} has scheme ${u.protocol}: expected ${schemes.map((s) => `${s}//…`).join(" or ")}`);
    return raw;
  };

const pattern =
  (re: RegExp, expected: string) =>
  (raw: string, name: string): string => {
    if (!re.test(raw)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected ${expected}`);
    return raw;
  };

const text = (raw: string): string => raw;

/** A comma-separated list; empty items dropped. */
const list =
  <T>(item: (raw: string, name: string) => T) =>
  (raw: string, name: string): T[] =>
    raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map((s) => item(s, name));

const queueName = (raw: string, name: string): string => {
  const r = bounds.queueName.safeParse(raw);
  if (!r.success)
    throw new ConfigError(
      `${name} has an invalid queue name ${JSON.stringify(raw)}: expected a comma-separated list, in priority order, of names made of letters, digits, "_", "-", "."`,
    );
  return raw;
};

const token = (raw: string, name: string): string => {
  if (raw.length < 16) throw new ConfigError(`${name} has a token that is too short: expected at least 16 characters`);
  return check("token", raw, name);
};

// --------------------------------------------------------------- table

export const ENV = {
  // Storage
  storage: v({
    name: "QML_STORAGE",
    runtimes: ALL,
    type: "`sqlite`, `memory`, `redis` or `postgres`",
    shownDefault: "`sqlite` (the Workers and Lambda deployments set their own)",
    meaning: "where jobs are kept",
    parse: oneOf(["sqlite", "memory", "redis", "postgres"] as const),
    fallback: "sqlite" as "sqlite" | "memory" | "redis" | "postgres",
  }),
  sqlitePath: v({
    name: "QML_SQLITE_PATH",
    runtimes: NODE,
    type: "file path",
    shownDefault: "`./data/qml.db`",
    meaning: "the SQLite database file (its folder is created); one machine's processes may share it",
    parse: (raw: string, name: string) => {
      if (raw.length > 4096 || /[\u0000-\u001f]/.test(raw)) throw new ConfigError(`${name} is invalid: expected a file path (no control characters)`);
      return raw;
    },
    fallback: "./data/qml.db",
  }),
  redisUrl: v({
    name: "REDIS_URL",
    runtimes: ALL,
    type: "URL",
    shownDefault: "—",
    meaning: "`redis://…` (TCP) or an Upstash `https://…` REST URL",
    parse: url(["redis:", "rediss:", "https:", "http:"]),
  }),
  upstashUrl: v({
    name: "UPSTASH_REDIS_REST_URL",
    runtimes: ALL,
    type: "URL",
    shownDefault: "—",
    meaning: "Upstash REST endpoint (instead of `REDIS_URL`)",
    parse: url(["https:", "http:"]),
  }),
  upstashToken: v({
    name: "UPSTASH_REDIS_REST_TOKEN",
    runtimes: ALL,
    type: "secret",
    shownDefault: "—",
    meaning: "Upstash REST token",
    parse: text,
  }),
  redisPrefix: v({
    name: "QML_REDIS_PREFIX",
    runtimes: ALL,
    type: "letters, digits, `_ . : -`",
    shownDefault: "`qml:`",
    meaning: "prefix of every Redis key (several apps on one Redis)",
    parse: pattern(/^[A-Za-z0-9_.:-]{1,64}$/, "1-64 letters, digits or _ . : -"),
  }),
  redisHashTag: v({
    name: "QML_REDIS_HASH_TAG",
    runtimes: ALL,
    type: "letters, digits, `_ . -`",
    shownDefault: "`q`",
    meaning: "the Redis Cluster hash tag of every key (`npm start`, `RedisConfig.fromEnv`): one slot per qml; give each qml on a cluster its own",
    parse: pattern(/^[A-Za-z0-9_.-]{1,32}$/, "1-32 letters, digits or _ . -"),
  }),
  redisCluster: v({
    name: "QML_REDIS_CLUSTER",
    runtimes: ["node", "lambda"],
    type: "`true` or `false`",
    shownDefault: "`false`",
    meaning: "`REDIS_URL` is a node of a Redis Cluster (TCP; `npm start`, `RedisConfig.fromEnv`)",
    parse: (raw: string, name: string) => oneOf(["true", "false"] as const)(raw, name) === "true",
    fallback: false,
  }),
  databaseUrl: v({
    name: "DATABASE_URL",
    runtimes: ALL,
    type: "URL",
    shownDefault: "—",
    meaning: "`postgres://user:pass@host:5432/db`",
    parse: url(["postgres:", "postgresql:"]),
  }),
  postgresSchema: v({
    name: "QML_POSTGRES_SCHEMA",
    runtimes: ALL,
    type: "lowercase identifier",
    shownDefault: "`qml`",
    meaning: "schema of qml's tables (created by `migrate`)",
    parse: pattern(/^[a-z_][a-z0-9_]{0,62}$/, 'a lowercase identifier (letters, digits, "_"; up to 63 characters)'),
  }),
  postgresDriver: v({
    name: "QML_POSTGRES_DRIVER",
    runtimes: ALL,
    type: "`pg`, `neon-ws` or `neon-http`",
    shownDefault: "`pg` on Node, `neon-http` on Workers",
    meaning: "PostgreSQL client: TCP, Neon over WebSocket, Neon over HTTP",
    parse: oneOf(["pg", "neon-ws", "neon-http"] as const),
  }),
  postgresMaxConnections: v({
    name: "QML_POSTGRES_MAX_CONNECTIONS",
    runtimes: ["node", "lambda"],
    type: "count",
    shownDefault: "10 on Node, 2 on Lambda",
    meaning: "PostgreSQL pool size (keep it at 1-2 per Lambda: many run at once)",
    parse: integer("poolSize"),
  }),
  finishedJobTtlMs: v({
    name: "QML_FINISHED_JOB_TTL_MS",
    runtimes: ALL,
    type: "ms",
    shownDefault: "86400000 (24 h)",
    meaning: "finished jobs (succeeded, failed, deleted) older than this are pruned; 0: no age limit",
    parse: integer("finishedJobTtlMs"),
  }),
  maxFinishedJobs: v({
    name: "QML_MAX_FINISHED_JOBS",
    runtimes: ALL,
    type: "count",
    shownDefault: "10000",
    meaning: "at most this many finished jobs are kept, the oldest pruned first",
    parse: integer("maxFinishedJobs"),
  }),
  encryptionKeys: v({
    name: "QML_ENCRYPTION_KEYS",
    runtimes: ALL,
    type: "secret: comma-separated `id:base64` keys of 32 bytes",
    shownDefault: "—",
    meaning: "keys of encrypted job arguments (`encrypt` option), newest first: the first encrypts, all decrypt (see Encrypted arguments)",
    parse: (raw: string, name: string) => Keyring.parse(raw, name),
  }),

  queueLimits: v({
    name: "QML_QUEUE_LIMITS",
    runtimes: ALL,
    type: "`queue:concurrency=N,rate=N/ms` entries separated by `;`",
    shownDefault: "—",
    meaning: "limits for whole queues, held by the store across every server (see Concurrency and rate limits)",
    parse: parseQueueLimits,
  }),

  // Processing
  queues: v({
    name: "QML_QUEUES",
    runtimes: ALL,
    type: "comma-separated queue names",
    shownDefault: "`default`",
    meaning: "queues taken, in priority order",
    parse: list(queueName),
    fallback: ["default"] as string[],
  }),
  workers: v({
    name: "QML_WORKERS",
    runtimes: ALL,
    type: "count",
    shownDefault: "10",
    meaning: "jobs run at once (by a server, or by one invocation)",
    parse: integer("workerCount"),
    fallback: 10,
  }),
  pollMs: v({
    name: "QML_POLL_MS",
    runtimes: NODE,
    type: "ms",
    shownDefault: "1000",
    meaning: "polling interval; idle polls back off to 5 times it",
    parse: integer("pollingIntervalMs"),
    fallback: 1000,
  }),
  prefetch: v({
    name: "QML_PREFETCH",
    runtimes: NODE,
    type: "`auto` or count",
    shownDefault: "`auto`",
    meaning: "jobs claimed ahead of busy workers: `auto` adapts to the backlog and run times, a count holds that many, `0` claims only for free workers",
    parse: (raw: string, name: string): number | "auto" => (raw.trim().toLowerCase() === "auto" ? "auto" : integer("prefetch")(raw.trim(), name)),
    fallback: "auto" as number | "auto",
  }),
  leaseMs: v({
    name: "QML_LEASE_MS",
    runtimes: ALL,
    type: "ms",
    shownDefault: "30000",
    meaning: "lease on a claimed job, renewed by heartbeats every third of it",
    parse: integer("leaseMs"),
    fallback: 30_000,
  }),
  jobTimeoutMs: v({
    name: "QML_JOB_TIMEOUT_MS",
    runtimes: ALL,
    type: "ms",
    shownDefault: "none",
    meaning: "timeout of jobs that set none",
    parse: integer("timeoutMs"),
  }),
  budgetMs: v({
    name: "QML_BUDGET_MS",
    runtimes: SERVERLESS,
    type: "ms",
    shownDefault: "25000 on Workers, the function's remaining time on Lambda",
    meaning: "wall time one invocation spends on jobs",
    parse: integer("budgetMs"),
  }),
  safetyMs: v({
    name: "QML_SAFETY_MS",
    runtimes: SERVERLESS,
    type: "ms",
    shownDefault: "2000 on Workers, 3000 on Lambda",
    meaning: "kept back from the budget for the final writes",
    parse: integer("safetyMs"),
  }),
  maxJobs: v({
    name: "QML_MAX_JOBS",
    runtimes: SERVERLESS,
    type: "count",
    shownDefault: "no limit",
    meaning: "most jobs one invocation starts (keeps a tick under a plan's subrequest limit)",
    parse: integer("maxJobs"),
  }),
  deadLetterQueue: v({
    name: "QML_DEAD_LETTER_QUEUE",
    runtimes: ["workers"],
    type: "queue name",
    shownDefault: "—",
    meaning: "the wake-up dead-letter queue this Worker also consumes (its messages are logged and acknowledged)",
    parse: pattern(/^[A-Za-z0-9_-]{1,63}$/, "a Cloudflare Queue name"),
  }),
  logLevel: v({
    name: "QML_LOG_LEVEL",
    runtimes: ALL,
    type: "`debug`, `info`, `warn`, `error`",
    shownDefault: "`info`",
    meaning: "least severe level logged (JSON lines)",
    parse: oneOf(LOG_LEVELS) as (raw: string, name: string) => LogLevel,
    fallback: "info" as LogLevel,
  }),

  // Dashboard and API
  dashboardTokens: v({
    name: "QML_DASHBOARD_TOKEN",
    runtimes: ALL,
    type: "comma-separated tokens, 16+ characters each",
    shownDefault: "—",
    meaning: "admin tokens for the API and dashboard",
    parse: list(token),
  }),
  dashboardReadTokens: v({
    name: "QML_DASHBOARD_READ_TOKEN",
    runtimes: ALL,
    type: "comma-separated tokens, 16+ characters each",
    shownDefault: "—",
    meaning: "read-only tokens",
    parse: list(token),
  }),
  sessionSecret: v({
    name: "QML_SESSION_SECRET",
    runtimes: ALL,
    type: "secret, 32+ characters",
    shownDefault: "generated once, kept in the store",
    meaning: "key of the dashboard's session cookies",
    parse: (raw: string, name: string) => {
      if (raw.length < 32) throw new ConfigError(`${name} is too short: expected at least 32 characters`);
      return raw;
    },
  }),
  metricsToken: v({
    name: "QML_METRICS_TOKEN",
    runtimes: ALL,
    type: "token, 16+ characters",
    shownDefault: "—",
    meaning: "a bearer token that may read `/metrics` and nothing else (the API's tokens and sessions may read it too)",
    parse: token,
  }),
  loginThrottle: v({
    name: "QML_LOGIN_THROTTLE",
    runtimes: ALL,
    type: "integer, `0` turns it off",
    shownDefault: "10",
    meaning: "failed logins and bearer tokens per client address and minute before the dashboard answers 429",
    parse: (raw: string, name: string) => {
      if (!/^\d{1,7}$/.test(raw) || Number(raw) > 1_000_000)
        throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected an integer from 0 to 1000000`);
      return Number(raw);
    },
  }),
  host: v({
    name: "QML_HOST",
    runtimes: NODE,
    type: "host name or IP address",
    shownDefault: "`127.0.0.1` (`0.0.0.0` when an admin or read token is set)",
    meaning: "address the HTTP server binds",
    parse: pattern(/^[A-Za-z0-9.:[\]-]+$/, "a host name or IP address"),
  }),
  port: v({
    name: "PORT",
    runtimes: NODE,
    type: "port",
    shownDefault: "8080",
    meaning: "HTTP port",
    parse: integer("port"),
    fallback: 8080,
  }),
  trustForwardedProto: v({
    name: "QML_TRUST_FORWARDED_PROTO",
    runtimes: NODE,
    type: "`true` or `false`",
    shownDefault: "`false`",
    meaning: "trust the `X-Forwarded-Proto` header of a TLS-terminating proxy in front: the scheme of the dashboard's Origin check and HSTS",
    parse: (raw: string, name: string) => oneOf(["true", "false"] as const)(raw, name) === "true",
    fallback: false,
  }),
  liveMaxConnections: v({
    name: "QML_LIVE_MAX_CONNECTIONS",
    runtimes: ["node", "workers"],
    type: "count",
    shownDefault: "200",
    meaning: "dashboard live updates (WebSocket and SSE) open at once, per process (per isolate on Workers); more are answered 429",
    parse: integer("liveConnections"),
  }),
  liveMaxPerSession: v({
    name: "QML_LIVE_MAX_PER_SESSION",
    runtimes: ["node", "workers"],
    type: "count",
    shownDefault: "8",
    meaning: "of those, per login session or bearer token",
    parse: integer("livePerSession"),
  }),

  // The Node server
  serverId: v({
    name: "QML_SERVER_ID",
    runtimes: NODE,
    type: "letters, digits, `_ . : / -`",
    shownDefault: "random",
    meaning: "server id shown in job history (Kubernetes: the pod name)",
    parse: (raw: string, name: string) => check("serverId", raw, name),
  }),
  shutdownTimeoutMs: v({
    name: "QML_SHUTDOWN_TIMEOUT_MS",
    runtimes: NODE,
    type: "ms",
    shownDefault: "10000",
    meaning: "grace period on SIGTERM/SIGINT",
    parse: integer("shutdownTimeoutMs"),
    fallback: 10_000,
  }),
  demo: v({
    name: "QML_DEMO",
    runtimes: NODE,
    type: "`off`, `seed`, `producer`",
    shownDefault: "`seed` on SQLite and memory without `QML_WORKERS_MODULE`, else `off`",
    meaning: "`seed` enqueues demo jobs at start, `producer` keeps enqueuing (also `npm start -- --demo`)",
    parse: oneOf(["off", "seed", "producer"] as const),
  }),
  enqueueNames: v({
    name: "QML_ENQUEUE_NAMES",
    runtimes: NODE,
    type: "`registered`, `any`",
    shownDefault: "`registered` when the server runs workers (`QML_WORKERS_MODULE`, the demo's), `any` when it runs none",
    meaning: "which job names `POST /api/jobs` accepts: those this server has workers for, or any (a producer for other processes' workers)",
    parse: oneOf(["registered", "any"] as const),
  }),
  workersModule: v({
    name: "QML_WORKERS_MODULE",
    runtimes: NODE,
    type: "file path or package name",
    shownDefault: "—",
    meaning: "your workers: a module exporting `register(registry)`",
    parse: (raw: string, name: string) => {
      if (raw.length > 1024 || /[\0\r\n]/.test(raw))
        throw new ConfigError(`${name} is invalid: expected a file path or package name of a module exporting register(registry)`);
      return raw;
    },
  }),
} as const;

export type EnvKey = keyof typeof ENV;
type ValueOf<K extends EnvKey> = ReturnType<(typeof ENV)[K]["parse"]>;
/** Settings read from an environment: a variable's value, its fallback, or undefined. */
export type EnvSettings = { [K in EnvKey]: "fallback" extends keyof (typeof ENV)[K] ? ValueOf<K> : ValueOf<K> | undefined };

/**
 * `mail:concurrency=5,rate=100/60000;reports:concurrency=2` → the
 * StorageOptions.queueLimits it names. Only the form is checked here; the
 * numbers are checked by the Storage as a job's own limits are.
 */
export function parseQueueLimits(raw: string, name: string): Record<string, { concurrency?: number; rateLimit?: { limit: number; interval: number } }> {
  const out: Record<string, { concurrency?: number; rateLimit?: { limit: number; interval: number } }> = {};
  const bad = (why: string) => new ConfigError(`${name} is invalid: ${why} (expected e.g. "mail:concurrency=5,rate=100/60000;reports:concurrency=2")`);
  for (const entry of raw
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)) {
    const colon = entry.indexOf(":");
    if (colon <= 0) throw bad(`"${entry.slice(0, 80)}" has no queue name`);
    const queue = entry.slice(0, colon).trim();
    if (Object.hasOwn(out, queue)) throw bad(`queue "${queue.slice(0, 80)}" is named twice`);
    const limits: { concurrency?: number; rateLimit?: { limit: number; interval: number } } = {};
    for (const part of entry
      .slice(colon + 1)
      .split(",")
      .map((s) => s.trim())) {
      const m = /^(concurrency)=(\d{1,9})$/.exec(part) ?? /^(rate)=(\d{1,9})\/(\d{1,12})$/.exec(part);
      if (!m) throw bad(`"${part.slice(0, 80)}" is not concurrency=N or rate=N/ms`);
      if (m[1] === "concurrency") limits.concurrency = Number(m[2]);
      else limits.rateLimit = { limit: Number(m[2]), interval: Number(m[3]) };
    }
    out[queue] = limits;
  }
  return out;
}

/** The table as rows, in order: for the README check and for tools. */
export const ENV_TABLE: ReadonlyArray<EnvVar<unknown>> = Object.values(ENV) as ReadonlyArray<EnvVar<unknown>>;

/** The raw text of a variable: strings trimmed, numbers (Workers vars may be numbers) as text; empty means unset. */
export function rawEnv(env: Record<string, unknown>, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value !== "string") throw new ConfigError(`${name} must be a string`);
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

/**
 * The keyring QML_ENCRYPTION_KEYS names, or undefined when it is unset:
 * `new Storage(backend, { encryption: keyringFromEnv(env) })` on any
 * runtime. A bad key throws a ConfigError naming the variable (never the key).
 */
export function keyringFromEnv(env: Record<string, unknown> = {}): Keyring | undefined {
  const raw = rawEnv(env, ENV.encryptionKeys.name);
  return raw === undefined ? undefined : ENV.encryptionKeys.parse(raw, ENV.encryptionKeys.name);
}

/**
 * Reads every variable of the table that `runtime` reads (all of them when
 * no runtime is named). A bad value throws a ConfigError naming the
 * variable and what it accepts.
 */
export function readEnv(env: Record<string, unknown> = {}, runtime?: Runtime): EnvSettings {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(ENV) as Array<[EnvKey, EnvVar<unknown>]>) {
    if (runtime !== undefined && !spec.runtimes.includes(runtime)) {
      out[key] = spec.fallback;
      continue;
    }
    const raw = rawEnv(env, spec.name);
    out[key] = raw === undefined ? spec.fallback : spec.parse(raw, spec.name);
  }
  return out as EnvSettings;
}
