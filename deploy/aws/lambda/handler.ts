/**
 * The Lambda entry of the reference deployment (deploy/aws). One bundle,
 * three exports; the CDK stack points each function at one of them:
 *
 *   index.scheduleHandler   EventBridge rate(1 minute)
 *   index.sqsHandler        SQS wake-ups (partial batch failures)
 *   index.httpHandler       Function URL: the API, bearer tokens required
 *
 * Configuration. From the environment (set by the stack):
 *   QML_STORAGE          postgres | redis
 *   QML_SECRET_ID        Secrets Manager secret (name or ARN) holding the credentials below
 *   QML_QUEUE_URL        SQS queue for wake-ups (jobs enqueued here wake a consumer)
 *   QML_QUEUES           queues run, in priority order (default "default")
 *   QML_POSTGRES_DRIVER  pg (default) | neon-http | neon-ws
 *   QML_POSTGRES_MAX_CONNECTIONS  pool size per container (default 2)
 *   QML_POSTGRES_SCHEMA  schema of qml's tables (default qml)
 *   QML_REDIS_KEY_PREFIX key prefix (default "qml:")
 *   AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_SECRETS_MANAGER  endpoint overrides (VPC endpoints, local runs)
 * From the secret (JSON), or the environment for a local run:
 *   DATABASE_URL, or REDIS_URL / UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN
 *   QML_DASHBOARD_TOKEN (admin), QML_DASHBOARD_READ_TOKEN (read-only, optional)
 *
 * The secret is read once per container, during init (top-level await), and
 * the store client is created on first use and kept for warm invocations.
 */
import { ConfigError, JsonLogger, LOG_LEVELS, WorkerRegistry, type LogLevel, type Storage } from "../../../src/index.js";
import { createLambdaHandlers, createSqsNotifier, getSecretJson } from "../../../src/adapters/runtime/lambda/index.js";
import pg from "pg";
import { PostgresConfig, createPgDriver, createPostgresStorage, type PostgresDriverName } from "../../../src/adapters/storage/postgres/index.js";
import { RedisConfig, createRedisStorage } from "../../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../../src/adapters/storage/redis/drivers/ioredis.js";
import { registerWorkers } from "./workers.js";

const env = process.env;
const secret = env.QML_SECRET_ID ? await getSecretJson({ secretId: env.QML_SECRET_ID }) : {};
const setting = (name: string): string | undefined => secret[name] || env[name] || undefined;

const level = (env.QML_LOG_LEVEL ?? "info") as LogLevel;
const logger = new JsonLogger(LOG_LEVELS.includes(level) ? level : "info", { service: "qml", fn: env.AWS_LAMBDA_FUNCTION_NAME });

async function createStorage(): Promise<Storage> {
  if (env.QML_STORAGE === "redis") {
    const url = setting("REDIS_URL") ?? setting("UPSTASH_REDIS_REST_URL");
    if (!url) throw new ConfigError("[qml] [lambda] QML_STORAGE=redis needs REDIS_URL or UPSTASH_REDIS_REST_URL in the secret");
    const config = new RedisConfig(url);
    if (env.QML_REDIS_KEY_PREFIX) config.withKeyPrefix(env.QML_REDIS_KEY_PREFIX);
    const token = setting("UPSTASH_REDIS_REST_TOKEN");
    if (token) config.withToken(token);
    const resolved = config.resolve();
    // The TCP driver is imported statically here so that the bundle carries it (createRedisStorage loads it by a path a bundler cannot follow).
    const driver = resolved.transport === "tcp" ? new IoredisDriver({ url: resolved.url, poolSize: 1, commandTimeoutMs: resolved.commandTimeoutMs }) : undefined;
    const storage = await createRedisStorage(config, driver ? { driver } : {});
    await storage.migrate();
    return storage;
  }
  const url = setting("DATABASE_URL");
  if (!url) throw new ConfigError("[qml] [lambda] QML_STORAGE=postgres needs DATABASE_URL in the secret");
  const requested = Number(env.QML_POSTGRES_MAX_CONNECTIONS ?? 2);
  // Many Lambdas at once × a small pool each: keep it at 1-2 (or use neon-http, which holds none).
  const max = Number.isInteger(requested) && requested > 0 ? requested : 2;
  const name = (env.QML_POSTGRES_DRIVER ?? "pg") as PostgresDriverName;
  // pg is handed over as a module so that the bundle carries it (the driver would otherwise load it by a path a bundler cannot follow).
  const driver = name === "pg" ? await createPgDriver({ connectionString: url, max, idleTimeoutMs: 5_000, pg }) : name;
  return createPostgresStorage(
    new PostgresConfig()
      .withDatabaseUrl(url)
      .withSchema(env.QML_POSTGRES_SCHEMA || "qml")
      .withDriver(driver)
      .withMaxConnections(max)
      .withIdleTimeout(5_000)
      // The SQS notifier wakes consumers; LISTEN would hold a connection per container.
      .withNotify(false)
      .withAutoMigrate(true),
  );
}

const adminToken = setting("QML_DASHBOARD_TOKEN");
const readToken = setting("QML_DASHBOARD_READ_TOKEN");

export const { scheduleHandler, sqsHandler, httpHandler } = createLambdaHandlers({
  storage: createStorage,
  registry: registerWorkers(new WorkerRegistry()),
  ...(env.QML_QUEUE_URL ? { notifier: createSqsNotifier({ queueUrl: env.QML_QUEUE_URL }) } : {}),
  queues: (env.QML_QUEUES ?? "default").split(",").map((q) => q.trim()).filter(Boolean),
  logger,
  // Without a token the API answers nothing: createLambdaHandlers refuses an open API.
  ...(adminToken || readToken
    ? { http: { auth: { ...(adminToken ? { adminTokens: [adminToken] } : {}), ...(readToken ? { readTokens: [readToken] } : {}) } } }
    : {}),
});
