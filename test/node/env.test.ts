import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/index.js";
import { loadEnvConfig } from "../../src/adapters/runtime/node/index.js";

describe("configuration from the environment", () => {
  it("defaults to memory storage on loopback with demo jobs seeded", () => {
    const c = loadEnvConfig({});
    expect(c).toMatchObject({ storage: "memory", workers: 10, queues: ["default"], pollMs: 1000, port: 8080, host: "127.0.0.1", logLevel: "info", demo: "seed" });
  });

  it("reads every variable", () => {
    const c = loadEnvConfig(
      {
        QML_STORAGE: "postgres",
        DATABASE_URL: "postgres://u:p@db:5432/app",
        QML_WORKERS: "32",
        QML_QUEUES: "critical, default,low",
        QML_POLL_MS: "250",
        QML_DASHBOARD_TOKEN: "admin-token-0123456789",
        PORT: "9000",
        QML_LOG_LEVEL: "debug",
        QML_SERVER_ID: "pod-1",
        QML_SHUTDOWN_TIMEOUT_MS: "30000",
      },
      ["--demo"],
    );
    expect(c).toMatchObject({
      storage: "postgres",
      databaseUrl: "postgres://u:p@db:5432/app",
      workers: 32,
      queues: ["critical", "default", "low"],
      pollMs: 250,
      dashboardToken: "admin-token-0123456789",
      host: "0.0.0.0",
      port: 9000,
      logLevel: "debug",
      serverId: "pod-1",
      shutdownTimeoutMs: 30000,
      demo: "producer",
    });
  });

  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ QML_STORAGE: "mongo" }, /QML_STORAGE.*memory, redis, postgres/],
    [{ QML_STORAGE: "redis" }, /REDIS_URL/],
    [{ QML_STORAGE: "redis", REDIS_URL: "https://x.upstash.io" }, /UPSTASH_REDIS_REST_TOKEN/],
    [{ QML_STORAGE: "postgres" }, /DATABASE_URL/],
    [{ DATABASE_URL: "mysql://x" }, /DATABASE_URL.*postgres:/],
    [{ REDIS_URL: "not a url" }, /REDIS_URL is not a valid URL/],
    [{ QML_WORKERS: "0" }, /QML_WORKERS.*integer from 1/],
    [{ QML_WORKERS: "ten" }, /QML_WORKERS/],
    [{ QML_WORKERS: "1.5" }, /QML_WORKERS/],
    [{ QML_POLL_MS: "-5" }, /QML_POLL_MS/],
    [{ PORT: "70000" }, /PORT.*65535/],
    [{ QML_QUEUES: "a,b:c" }, /QML_QUEUES.*"b:c"/],
    [{ QML_LOG_LEVEL: "loud" }, /QML_LOG_LEVEL.*debug, info, warn, error/],
    [{ QML_DASHBOARD_TOKEN: "short" }, /QML_DASHBOARD_TOKEN.*16/],
    [{ QML_DEMO: "yes" }, /QML_DEMO.*off, seed, producer/],
  ];
  for (const [env, message] of bad) {
    it(`refuses ${JSON.stringify(env)}`, () => {
      expect(() => loadEnvConfig(env)).toThrow(ConfigError);
      expect(() => loadEnvConfig(env)).toThrow(message);
    });
  }
});
