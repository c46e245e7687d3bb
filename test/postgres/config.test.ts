import { expect, it } from "vitest";
import { ConfigError } from "../../src/index.js";
import { PostgresConfig, createPostgresStorage, statementName } from "../../src/adapters/storage/postgres/index.js";

it("builds a config with defaults and every with… option", () => {
  const c = new PostgresConfig()
    .withDatabaseUrl("postgres://u:p@db.example:5432/app")
    .withDriver("neon-http")
    .withSchema("jobs_v2")
    .withAutoMigrate(true)
    .withMaxConnections(4)
    .withMinConnections(1)
    .withConnectTimeout(2500)
    .withCompletedJobTtl(3_600_000)
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
    completedJobTtlMs: 3_600_000,
    maxFinishedJobs: 500,
    neonFetchEndpoint: "http://127.0.0.1:4444/sql",
  });
  expect(new PostgresConfig().resolve()).toMatchObject({ driver: "pg", schema: "qml", autoMigrate: false, notify: true });
});

it("reads the environment", () => {
  const c = PostgresConfig.fromEnv({ DATABASE_URL: "postgresql://x@h/db", QML_POSTGRES_DRIVER: "neon-ws", QML_POSTGRES_SCHEMA: "q", QML_POSTGRES_AUTO_MIGRATE: "true" }).resolve();
  expect(c).toMatchObject({ databaseUrl: "postgresql://x@h/db", driver: "neon-ws", schema: "q", autoMigrate: true });
});

it("refuses bad values with ConfigError", async () => {
  expect(() => new PostgresConfig().withDatabaseUrl("mysql://x")).toThrow(ConfigError);
  expect(() => new PostgresConfig().withDriver("mysql" as "pg")).toThrow(ConfigError);
  expect(() => new PostgresConfig().withSchema("Bad-Name")).toThrow(ConfigError);
  expect(() => new PostgresConfig().withMaxConnections(0)).toThrow(ConfigError);
  expect(() => new PostgresConfig().withConnectTimeout(1.5)).toThrow(ConfigError);
  await expect(createPostgresStorage(new PostgresConfig())).rejects.toBeInstanceOf(ConfigError);
});

it("names prepared statements by their text", () => {
  expect(statementName("SELECT 1")).toBe(statementName("SELECT 1"));
  expect(statementName("SELECT 1")).not.toBe(statementName("SELECT 2"));
  expect(statementName("x".repeat(10_000))).toMatch(/^qml_[0-9a-f]{16}$/);
});
