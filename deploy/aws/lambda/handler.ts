/**
 * The Lambda entry of the reference deployment (deploy/aws). One bundle,
 * three exports; the CDK stack points each function at one of them:
 *
 *   index.scheduleHandler   EventBridge rate(1 minute)
 *   index.sqsHandler        SQS wake-ups (partial batch failures)
 *   index.httpHandler       Function URL: the API, bearer tokens required
 *
 * Configuration. qml's settings come from the environment and the secret
 * through qml's one table of variables (readEnv; README "Configuration"),
 * and this deployment's own two: QML_SECRET_ID and QML_QUEUE_URL.
 * From the environment (set by the stack):
 *   QML_STORAGE          postgres | redis
 *   QML_SECRET_ID        Secrets Manager secret (name or ARN) holding the credentials below
 *   QML_QUEUE_URL        SQS queue for wake-ups (jobs enqueued here wake a consumer)
 *   QML_POSTGRES_DRIVER  pg (default) | neon-http | neon-ws
 *   QML_POSTGRES_MAX_CONNECTIONS  pool size per container (default 2)
 *   QML_POSTGRES_SCHEMA  schema of qml's tables (default qml)
 *   QML_REDIS_PREFIX     key prefix (default "qml:")
 *   QML_QUEUES, QML_BUDGET_MS, QML_SAFETY_MS, QML_WORKERS, QML_MAX_JOBS,
 *   QML_LEASE_MS, QML_JOB_TIMEOUT_MS, QML_LOG_LEVEL  tuning, the same names as on Workers (configFromEnv)
 *   AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_SECRETS_MANAGER  endpoint overrides (VPC endpoints, local runs)
 * From the secret (JSON), or the environment for a local run:
 *   DATABASE_URL, or REDIS_URL / UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN
 *   QML_DASHBOARD_TOKEN (admin), QML_DASHBOARD_READ_TOKEN (read-only, optional)
 *
 * The secret is read once per container, during init (top-level await), and
 * the store client is created on first use and kept for warm invocations.
 */
import * as ioredis from "ioredis";
import { ConfigError, JsonLogger, Storage, WorkerRegistry, readEnv } from "../../../src/index.js";
import { configFromEnv, createLambdaHandlers, createSqsNotifier } from "../../../src/adapters/runtime/lambda/index.js";
import { getSecretJson } from "../../../src/adapters/runtime/lambda/secrets.js";
import { throttleOption } from "../../../src/adapters/http/throttle.js";
import pg from "pg";
import { PostgresConfig, createPgDriver, postgresBackend, type PostgresDriverName } from "../../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../../src/adapters/storage/redis/drivers/ioredis.js";
import { registerWorkers } from "./workers.js";

const env = process.env;
const secret = env.QML_SECRET_ID ? await getSecretJson({ secretId: env.QML_SECRET_ID }) : {};

const tuning = configFromEnv(env, "lambda");
const logger = (tuning.logger ?? new JsonLogger("info")).child({ service: "qml", fn: env.AWS_LAMBDA_FUNCTION_NAME });

/** The store's settings, read through qml's table of environment variables (the secret's values win). */
const settings = readEnv({ ...env, ...secret }, "lambda");

async function createStorage(): Promise<Storage> {
  if (settings.storage === "sqlite" || settings.storage === "memory") {
    // Each Lambda container has its own disk and memory: jobs must live in a store they all reach.
    throw new ConfigError(`QML_STORAGE=${settings.storage} cannot work on Lambda (containers share no disk or memory): use postgres or redis`, {
      scope: "lambda",
    });
  }
  if (settings.storage === "redis") {
    const url = settings.redisUrl ?? settings.upstashUrl;
    if (!url) throw new ConfigError("QML_STORAGE=redis needs REDIS_URL or UPSTASH_REDIS_REST_URL in the secret", { scope: "lambda" });
    const config = new RedisConfig(url);
    if (settings.redisPrefix) config.withKeyPrefix(settings.redisPrefix);
    if (settings.upstashToken) config.withToken(settings.upstashToken);
    if (settings.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(settings.finishedJobTtlMs);
    if (settings.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(settings.maxFinishedJobs);
    const resolved = config.resolve();
    // ioredis is handed over here so that the bundle carries it (the driver would otherwise require it at run time).
    const driver =
      resolved.transport === "tcp" ? new IoredisDriver({ url: resolved.url, poolSize: 1, commandTimeoutMs: resolved.commandTimeoutMs, ioredis }) : undefined;
    return new Storage(redisBackend(resolved, driver ? { driver } : {}), {
      logger,
      encryption: settings.encryptionKeys,
      ...(settings.queueLimits ? { queueLimits: settings.queueLimits } : {}),
    });
  }
  const url = settings.databaseUrl;
  if (!url) throw new ConfigError("QML_STORAGE=postgres needs DATABASE_URL in the secret", { scope: "lambda" });
  // Many Lambdas at once × a small pool each: keep it at 1-2 (or use neon-http, which holds none).
  const max = settings.postgresMaxConnections ?? 2;
  const name: PostgresDriverName = settings.postgresDriver ?? "pg";
  // pg is handed over as a module so that the bundle carries it (the driver would otherwise require it at run time).
  const driver = name === "pg" ? await createPgDriver({ connectionString: url, max, idleTimeoutMs: 5_000, pg }) : name;
  return new Storage(
    postgresBackend(
      new PostgresConfig()
        .withDatabaseUrl(url)
        .withSchema(settings.postgresSchema ?? "qml")
        .withDriver(driver)
        .withMaxConnections(max)
        .withIdleTimeout(5_000)
        .withFinishedJobTtl(settings.finishedJobTtlMs ?? 24 * 3_600_000)
        .withMaxFinishedJobs(settings.maxFinishedJobs ?? 10_000)
        // The SQS notifier wakes consumers; LISTEN would hold a connection per container.
        .withNotify(false),
    ),
    // Encrypted arguments: QML_ENCRYPTION_KEYS, best kept in the secret.
    { logger, encryption: settings.encryptionKeys, ...(settings.queueLimits ? { queueLimits: settings.queueLimits } : {}) },
  );
}

const adminTokens = settings.dashboardTokens ?? [];
const readTokens = settings.dashboardReadTokens ?? [];
// Without QML_SESSION_SECRET the cookie key is generated once and kept in the store.
const sessionSettings = {
  ...(settings.sessionSecret !== undefined ? { sessionSecret: settings.sessionSecret } : {}),
  ...throttleOption(settings.loginThrottle),
};

export const { scheduleHandler, sqsHandler, httpHandler } = createLambdaHandlers({
  ...tuning,
  storage: createStorage,
  // Once per container: creates the keys or tables on a fresh store.
  migrate: true,
  registry: registerWorkers(new WorkerRegistry()),
  ...(env.QML_QUEUE_URL ? { notifier: createSqsNotifier({ queueUrl: env.QML_QUEUE_URL }) } : {}),
  logger,
  // Without a token the API answers nothing: createLambdaHandlers refuses an open API.
  ...(adminTokens.length + readTokens.length > 0
    ? {
        http: {
          auth: { adminTokens, readTokens, ...sessionSettings },
          ...(settings.metricsToken !== undefined ? { metricsToken: settings.metricsToken } : {}),
        },
      }
    : {}),
});
