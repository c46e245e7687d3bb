/**
 * PostgresConfig: the builder for a PostgresBackend.
 *
 *   new Storage(postgresBackend(
 *     new PostgresConfig()
 *       .withDatabaseUrl(process.env.DATABASE_URL)
 *       .withDriver("neon-http")
 *       .withAutoMigrate(true),
 *   ))
 */
import { readEnv } from "../../../core/config/env.js";
import { check } from "../../../core/config/bounds.js";
import { DEFAULT_RETENTION, type Retention } from "../../../core/driver.js";
import { ConfigError } from "../../../core/errors.js";
import { validateSchemaName, type SqlDriver } from "./driver.js";
import type { NeonSocketOptions } from "./drivers/neon.js";

export type PostgresDriverName = "pg" | "neon-ws" | "neon-http";
const DRIVER_NAMES: readonly PostgresDriverName[] = ["pg", "neon-ws", "neon-http"];

export interface ResolvedPostgresConfig extends Retention {
  databaseUrl: string | undefined;
  /** A driver name, or a driver instance the caller owns (it is not closed with the backend). */
  driver: PostgresDriverName | SqlDriver;
  schema: string;
  /** Migrate before the first statement (once). */
  autoMigrate: boolean;
  maxConnections: number;
  minConnections: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Client-side limit on one statement (pg, neon-ws) or one HTTP request (neon-http). */
  queryTimeoutMs: number | undefined;
  /** NOTIFY on enqueue, LISTEN for wake-ups (drivers with sessions only). Default true. */
  notify: boolean;
  /** Prepared statements on drivers with sessions (default true). */
  preparedStatements: boolean;
  /** WebSocket settings for neon-ws. */
  neonSocket: NeonSocketOptions;
  /** `/sql` endpoint for neon-http (default: Neon's). */
  neonFetchEndpoint: string | undefined;
}

function positiveInt(name: string, v: number, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new ConfigError(`${name} must be an integer >= ${min}; got ${v}`, { scope: "postgres" });
  return v;
}

export class PostgresConfig {
  private readonly c: ResolvedPostgresConfig = {
    databaseUrl: undefined,
    driver: "pg",
    schema: "qml",
    autoMigrate: false,
    maxConnections: 10,
    minConnections: 0,
    connectTimeoutMs: 10_000,
    idleTimeoutMs: 10_000,
    queryTimeoutMs: undefined,
    finishedJobTtlMs: DEFAULT_RETENTION.finishedJobTtlMs,
    maxFinishedJobs: DEFAULT_RETENTION.maxFinishedJobs,
    notify: true,
    preparedStatements: true,
    neonSocket: {},
    neonFetchEndpoint: undefined,
  };

  /**
   * Reads DATABASE_URL, QML_POSTGRES_DRIVER, QML_POSTGRES_SCHEMA,
   * QML_POSTGRES_MAX_CONNECTIONS, QML_FINISHED_JOB_TTL_MS and
   * QML_MAX_FINISHED_JOBS from an env object (process.env, a Worker's env
   * bindings), through qml's table of them (README "Configuration").
   */
  static fromEnv(env: Record<string, unknown>): PostgresConfig {
    const c = new PostgresConfig();
    const e = readEnv(env);
    if (e.databaseUrl) c.withDatabaseUrl(e.databaseUrl);
    if (e.postgresDriver) c.withDriver(e.postgresDriver);
    if (e.postgresSchema) c.withSchema(e.postgresSchema);
    if (e.postgresMaxConnections !== undefined) c.withMaxConnections(e.postgresMaxConnections);
    if (e.finishedJobTtlMs !== undefined) c.withFinishedJobTtl(e.finishedJobTtlMs);
    if (e.maxFinishedJobs !== undefined) c.withMaxFinishedJobs(e.maxFinishedJobs);
    return c;
  }

  /** `postgres://user:password@host:port/database`. */
  withDatabaseUrl(url: string): this {
    if (typeof url !== "string" || !/^postgres(ql)?:\/\//.test(url))
      throw new ConfigError("the database URL must start with postgres:// or postgresql://", { scope: "postgres" });
    this.c.databaseUrl = url;
    return this;
  }
  /** `pg` (TCP, Node), `neon-ws` (Neon Pool over WebSocket) or `neon-http` (Neon over HTTPS), or a driver instance. */
  withDriver(driver: PostgresDriverName | SqlDriver): this {
    if (typeof driver === "string" ? !DRIVER_NAMES.includes(driver) : typeof driver?.query !== "function") {
      throw new ConfigError(`driver must be one of ${DRIVER_NAMES.join(", ")} or a SqlDriver; got ${JSON.stringify(driver)}`, { scope: "postgres" });
    }
    this.c.driver = driver;
    return this;
  }
  /** Migrate before the first statement, once (default false: call migrate(); a BackgroundJobServer does at start). */
  withAutoMigrate(on: boolean): this {
    this.c.autoMigrate = on === true;
    return this;
  }
  /** Schema holding qml's tables (default `qml`): lowercase letters, digits, `_`. */
  withSchema(schema: string): this {
    this.c.schema = validateSchemaName(schema);
    return this;
  }
  /** Pool size (default 10). Keep it small per serverless instance. */
  withMaxConnections(n: number): this {
    this.c.maxConnections = positiveInt("maxConnections", n);
    if (this.c.minConnections > n) this.c.minConnections = n;
    return this;
  }
  /** Connections kept open when idle (default 0). */
  withMinConnections(n: number): this {
    this.c.minConnections = positiveInt("minConnections", n, 0);
    if (this.c.maxConnections < n) this.c.maxConnections = n;
    return this;
  }
  /** Milliseconds to wait for a connection (default 10000). */
  withConnectTimeout(ms: number): this {
    this.c.connectTimeoutMs = positiveInt("connectTimeout", ms);
    return this;
  }
  /** Milliseconds an idle pooled connection stays open (default 10000). */
  withIdleTimeout(ms: number): this {
    this.c.idleTimeoutMs = positiveInt("idleTimeout", ms);
    return this;
  }
  /** Client-side limit on one statement, in ms (default: none; 30 s per request on neon-http). */
  withQueryTimeout(ms: number): this {
    this.c.queryTimeoutMs = positiveInt("queryTimeout", ms);
    return this;
  }
  /** Finished (succeeded, failed, deleted) jobs older than this are pruned, in ms (default 24 h; 0: no age limit). */
  withFinishedJobTtl(ms: number): this {
    this.c.finishedJobTtlMs = check("finishedJobTtlMs", ms, "finishedJobTtl", "postgres");
    return this;
  }
  /** Finished jobs kept at most; the oldest are pruned past it (default 10,000; 0: a job is deleted as it finishes). */
  withMaxFinishedJobs(n: number): this {
    this.c.maxFinishedJobs = check("maxFinishedJobs", n, "maxFinishedJobs", "postgres");
    return this;
  }
  /** NOTIFY on enqueue and LISTEN for wake-ups on drivers with sessions (default true). */
  withNotify(on: boolean): this {
    this.c.notify = on === true;
    return this;
  }
  /** Named prepared statements on drivers with sessions (default true; turn off behind a transaction-mode pooler). */
  withPreparedStatements(on: boolean): this {
    this.c.preparedStatements = on === true;
    return this;
  }
  /** WebSocket settings for the neon-ws driver (wsProxy, webSocketConstructor…). */
  withNeonSocket(options: NeonSocketOptions): this {
    this.c.neonSocket = { ...this.c.neonSocket, ...options };
    return this;
  }
  /** The `/sql` endpoint for the neon-http driver (e.g. a local gateway). */
  withNeonFetchEndpoint(url: string): this {
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) throw new ConfigError("the fetch endpoint must be an http(s) URL", { scope: "postgres" });
    this.c.neonFetchEndpoint = url;
    return this;
  }

  resolve(): ResolvedPostgresConfig {
    return { ...this.c, neonSocket: { ...this.c.neonSocket } };
  }
}
