import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/index.js";
import { loadEnvConfig } from "../../src/adapters/runtime/node/index.js";

describe("configuration from the environment", () => {
  it("defaults to a SQLite file (./data/qml.db) on loopback with demo jobs seeded", () => {
    const c = loadEnvConfig({});
    expect(c).toMatchObject({
      storage: "sqlite",
      sqlitePath: "./data/qml.db",
      workers: 10,
      queues: ["default"],
      pollMs: 1000,
      prefetch: "auto",
      port: 8080,
      host: "127.0.0.1",
      logLevel: "info",
      demo: "seed",
    });
  });

  it("reads every variable", () => {
    const c = loadEnvConfig(
      {
        QML_STORAGE: "postgres",
        DATABASE_URL: "postgres://u:p@db:5432/app",
        QML_WORKERS: "32",
        QML_QUEUES: "critical, default,low",
        QML_POLL_MS: "250",
        QML_PREFETCH: "40",
        QML_DASHBOARD_TOKEN: "admin-token-0123456789, second-admin-token-012",
        PORT: "9000",
        QML_LOG_LEVEL: "debug",
        QML_SERVER_ID: "pod-1",
        QML_SHUTDOWN_TIMEOUT_MS: "30000",
        QML_WORKERS_MODULE: "./workers.mjs",
        QML_POSTGRES_SCHEMA: "jobs_app1",
      },
      ["--demo"],
    );
    expect(c).toMatchObject({
      storage: "postgres",
      databaseUrl: "postgres://u:p@db:5432/app",
      workers: 32,
      queues: ["critical", "default", "low"],
      pollMs: 250,
      prefetch: 40,
      dashboardTokens: ["admin-token-0123456789", "second-admin-token-012"],
      host: "0.0.0.0",
      port: 9000,
      logLevel: "debug",
      serverId: "pod-1",
      shutdownTimeoutMs: 30000,
      demo: "producer",
      workersModule: "./workers.mjs",
      postgresSchema: "jobs_app1",
    });
    expect(loadEnvConfig({ QML_STORAGE: "redis", REDIS_URL: "redis://r:6379", QML_REDIS_PREFIX: "app1:" })).toMatchObject({
      redisUrl: "redis://r:6379",
      redisPrefix: "app1:",
    });
  });

  it("binds 0.0.0.0 when any token is set, admin or read-only alone, unless QML_HOST says otherwise", () => {
    const token = "a-token-of-16-chars-or-more";
    expect(loadEnvConfig({}).host).toBe("127.0.0.1");
    expect(loadEnvConfig({ QML_DASHBOARD_TOKEN: token }).host).toBe("0.0.0.0");
    expect(loadEnvConfig({ QML_DASHBOARD_READ_TOKEN: token }).host).toBe("0.0.0.0");
    expect(loadEnvConfig({ QML_DASHBOARD_READ_TOKEN: token, QML_HOST: "127.0.0.1" }).host).toBe("127.0.0.1");
  });

  it("seeds demo jobs only on the embedded stores (SQLite, memory) without the user's own workers", () => {
    expect(loadEnvConfig({ QML_STORAGE: "memory" }).demo).toBe("seed");
    expect(loadEnvConfig({ QML_STORAGE: "sqlite", QML_SQLITE_PATH: "/var/lib/qml/jobs.db" })).toMatchObject({
      demo: "seed",
      sqlitePath: "/var/lib/qml/jobs.db",
    });
    expect(loadEnvConfig({ QML_WORKERS_MODULE: "./w.mjs" }).demo).toBe("off");
    expect(loadEnvConfig({ QML_STORAGE: "postgres", DATABASE_URL: "postgres://db/app" }).demo).toBe("off");
    expect(loadEnvConfig({ QML_STORAGE: "postgres", DATABASE_URL: "postgres://db/app", QML_DEMO: "seed" }).demo).toBe("seed");
  });

  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ QML_STORAGE: "mongo" }, /QML_STORAGE.*sqlite, memory, redis, postgres/],
    [{ QML_SQLITE_PATH: "jobs\n.db" }, /QML_SQLITE_PATH.*file path/],
    [{ QML_STORAGE: "redis" }, /REDIS_URL/],
    [{ QML_STORAGE: "redis", REDIS_URL: "https://x.upstash.io" }, /UPSTASH_REDIS_REST_TOKEN/],
    [{ QML_STORAGE: "postgres" }, /DATABASE_URL/],
    [{ DATABASE_URL: "mysql://x" }, /DATABASE_URL.*postgres:/],
    [{ REDIS_URL: "not a url" }, /REDIS_URL is not a valid URL/],
    [{ QML_WORKERS: "0" }, /QML_WORKERS.*integer from 1/],
    [{ QML_WORKERS: "ten" }, /QML_WORKERS/],
    [{ QML_WORKERS: "1.5" }, /QML_WORKERS/],
    [{ QML_POLL_MS: "-5" }, /QML_POLL_MS/],
    [{ QML_PREFETCH: "lots" }, /QML_PREFETCH.*integer from 0/],
    [{ PORT: "70000" }, /PORT.*65535/],
    [{ QML_QUEUES: "a,b:c" }, /QML_QUEUES.*"b:c"/],
    [{ QML_LOG_LEVEL: "loud" }, /QML_LOG_LEVEL.*debug, info, warn, error/],
    [{ QML_DASHBOARD_TOKEN: "short" }, /QML_DASHBOARD_TOKEN.*16/],
    [{ QML_DEMO: "yes" }, /QML_DEMO.*off, seed, producer/],
    [{ QML_REDIS_PREFIX: "a{b}" }, /QML_REDIS_PREFIX.*letters, digits/],
    [{ QML_POSTGRES_SCHEMA: "Public; drop" }, /QML_POSTGRES_SCHEMA.*lowercase identifier/],
    [{ QML_SHUTDOWN_TIMEOUT_MS: "soon" }, /QML_SHUTDOWN_TIMEOUT_MS.*integer/],
    [{ QML_HOST: "0.0.0.0; rm" }, /QML_HOST.*host name or IP/],
    [{ QML_ENQUEUE_NAMES: "some" }, /QML_ENQUEUE_NAMES.*registered, any/],
    [{ QML_SERVER_ID: "pod 1" }, /QML_SERVER_ID/],
  ];
  for (const [env, message] of bad) {
    it(`refuses ${JSON.stringify(env)}`, () => {
      expect(() => loadEnvConfig(env)).toThrow(ConfigError);
      expect(() => loadEnvConfig(env)).toThrow(message);
    });
  }
});
