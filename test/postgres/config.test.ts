import { expect, it } from "vitest";
import { ConfigError } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { statementName } from "../../src/adapters/storage/postgres/driver.js";

it("builds a config with defaults and every with… option", () => {
  const c = new PostgresConfig()
    .withDatabaseUrl("postgres://u:p@db.example:5432/app")
    .withDriver("neon-http")
    .withSchema("jobs_v2")
    .withAutoMigrate(true)
    .withMaxConnections(4)
    .withMinConnections(1)
    .withConnectTimeout(2500)
    .withFinishedJobTtl(3_600_000)
    .withMaxFinishedJobs(500)
    .withNeonFetchEndpoint("http://127.0.0.1:4444/sql")
    .resolve();
  expect(c).toMatchObject({
    databaseUrl: "postgres://u:p@db.example:5432/app",
    driver: "neon-http",
    schema: "jobs_v2",
    autoMigrate: true,
    maxConnections: 4,
    minConnections: 1,
    connectTimeoutMs: 2500,
    finishedJobTtlMs: 3_600_000,
    maxFinishedJobs: 500,
    neonFetchEndpoint: "http://127.0.0.1:4444/sql",
  });
  expect(new PostgresConfig().resolve()).toMatchObject({
    driver: "pg",
    schema: "qml",
    autoMigrate: false,
    notify: true,
    finishedJobTtlMs: 24 * 3_600_000,
    maxFinishedJobs: 10_000,
  });
  // 0 is no age limit for the TTL, and no finished job kept for the count.
  expect(new PostgresConfig().withFinishedJobTtl(0).withMaxFinishedJobs(0).resolve()).toMatchObject({ finishedJobTtlMs: 0, maxFinishedJobs: 0 });
});

it("reads the environment", () => {
  const c = PostgresConfig.fromEnv({
    DATABASE_URL: "postgresql://x@h/db",
    QML_POSTGRES_DRIVER: "neon-ws",
    QML_POSTGRES_SCHEMA: "q",
    QML_POSTGRES_MAX_CONNECTIONS: "3",
    QML_FINISHED_JOB_TTL_MS: "0",
    QML_MAX_FINISHED_JOBS: "5",
  }).resolve();
  expect(c).toMatchObject({ databaseUrl: "postgresql://x@h/db", driver: "neon-ws", schema: "q", maxConnections: 3, finishedJobTtlMs: 0, maxFinishedJobs: 5 });
  expect(() => PostgresConfig.fromEnv({ QML_POSTGRES_DRIVER: "mysql" })).toThrow(/QML_POSTGRES_DRIVER/);
});

it("refuses bad values with ConfigError, naming postgres as the scope", () => {
  expect(() => new PostgresConfig().withDatabaseUrl("mysql://x")).toThrow(ConfigError);
  expect(() => new PostgresConfig().withDriver("mysql" as "pg")).toThrow(ConfigError);
  expect(() => new PostgresConfig().withSchema("Bad-Name")).toThrow(ConfigError);
  expect(() => new PostgresConfig().withMaxConnections(0)).toThrow(ConfigError);
  expect(() => new PostgresConfig().withConnectTimeout(1.5)).toThrow(ConfigError);
  expect(() => new PostgresConfig().withFinishedJobTtl(-1)).toThrow(ConfigError);
  // No URL is known when the backend is built: refused then, not at the first call.
  expect(() => postgresBackend(new PostgresConfig())).toThrow(ConfigError);
  let refused: unknown;
  try {
    new PostgresConfig().withSchema("Bad-Name");
  } catch (e) {
    refused = e;
  }
  expect(refused).toMatchObject({ name: "ConfigError", scope: "postgres", message: expect.stringMatching(/^schema must match/) });
});

it("builds a backend without I/O, its transport named by the config", () => {
  const backend = postgresBackend(new PostgresConfig().withDatabaseUrl("postgres://u@127.0.0.1:1/none").withDriver("neon-http"));
  expect(backend).toMatchObject({ kind: "postgres", transport: "neon-http", transactions: true, schema: "qml", channel: "qml_jobs" });
  const custom = postgresBackend(new PostgresConfig().withDriver({ name: "mine", query: async () => ({ rows: [], rowCount: 0 }), close: async () => {} }));
  expect(custom.transport).toBe("custom");
});

it("names prepared statements by their text", () => {
  expect(statementName("SELECT 1")).toBe(statementName("SELECT 1"));
  expect(statementName("SELECT 1")).not.toBe(statementName("SELECT 2"));
  expect(statementName("x".repeat(10_000))).toMatch(/^qml_[0-9a-f]{16}$/);
});
