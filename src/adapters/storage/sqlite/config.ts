/**
 * SqliteConfig: the builder for a SqliteBackend.
 *
 *   new Storage(sqliteBackend(new SqliteConfig("./data/qml.db")))         // Node: better-sqlite3
 *   new Storage(sqliteBackend(new SqliteConfig().withDriver(driver)))     // a driver instance (D1 on Workers)
 */
import { readEnv } from "../../../core/config/env.js";
import { check } from "../../../core/config/bounds.js";
import { DEFAULT_RETENTION, type Retention } from "../../../core/driver.js";
import { ConfigError } from "../../../core/errors.js";
import type { SqliteDriver } from "./driver.js";

export interface ResolvedSqliteConfig extends Retention {
  /** The database file better-sqlite3 opens (its folder is created); `:memory:` for a private in-memory one. */
  path: string | undefined;
  /** A driver instance the caller owns (it is not closed with the backend): D1, or your own. Wins over `path`. */
  driver: SqliteDriver | undefined;
  /** How long a write waits for another connection's write lock before it fails with StorageUnavailableError (better-sqlite3). */
  busyTimeoutMs: number;
  /** Migrate before the first statement (once). */
  autoMigrate: boolean;
  /** The `better-sqlite3` module, for bundles that cannot load it at run time; default: loaded from node_modules at first use. */
  betterSqlite3: unknown;
}

/** The longest busy timeout accepted: past a minute, a stuck writer is better reported than waited on. */
const MAX_BUSY_TIMEOUT_MS = 60_000;

export class SqliteConfig {
  private readonly c: ResolvedSqliteConfig = {
    path: undefined,
    driver: undefined,
    busyTimeoutMs: 5000,
    autoMigrate: false,
    betterSqlite3: undefined,
    finishedJobTtlMs: DEFAULT_RETENTION.finishedJobTtlMs,
    maxFinishedJobs: DEFAULT_RETENTION.maxFinishedJobs,
  };

  constructor(path?: string) {
    if (path !== undefined) this.withPath(path);
  }

  /**
   * Reads QML_SQLITE_PATH, QML_FINISHED_JOB_TTL_MS and QML_MAX_FINISHED_JOBS
   * from an env object through qml's table of them (README "Configuration").
   */
  static fromEnv(env: Record<string, unknown>): SqliteConfig {
    const e = readEnv(env, "node");
    const c = new SqliteConfig(e.sqlitePath);
    if (e.finishedJobTtlMs !== undefined) c.withFinishedJobTtl(e.finishedJobTtlMs);
    if (e.maxFinishedJobs !== undefined) c.withMaxFinishedJobs(e.maxFinishedJobs);
    return c;
  }

  /** The database file (Node, better-sqlite3). Its folder is created at first use. */
  withPath(path: string): this {
    if (typeof path !== "string" || path.length === 0 || path.length > 4096 || path.includes("\0"))
      throw new ConfigError(`the SQLite path must be a file path (or ":memory:"); got ${JSON.stringify(path)}`, { scope: "sqlite" });
    this.c.path = path;
    return this;
  }
  /** A driver instance (a D1 binding's driver, or your own); it stays the caller's to close. */
  withDriver(driver: SqliteDriver): this {
    if (typeof driver?.batch !== "function" || typeof driver.close !== "function")
      throw new ConfigError("driver must be a SqliteDriver (batch, exec, close)", { scope: "sqlite" });
    this.c.driver = driver;
    return this;
  }
  /** Milliseconds a write waits for another process's write to finish (default 5000). */
  withBusyTimeout(ms: number): this {
    if (!Number.isInteger(ms) || ms < 0 || ms > MAX_BUSY_TIMEOUT_MS)
      throw new ConfigError(`busyTimeout must be an integer between 0 and ${MAX_BUSY_TIMEOUT_MS}; got ${JSON.stringify(ms)}`, { scope: "sqlite" });
    this.c.busyTimeoutMs = ms;
    return this;
  }
  /** Migrate before the first statement, once (default false: call migrate(); a BackgroundJobServer does at start). */
  withAutoMigrate(on: boolean): this {
    this.c.autoMigrate = on === true;
    return this;
  }
  /** The `better-sqlite3` module (`import Database from "better-sqlite3"`), for a bundle that carries it. */
  withBetterSqlite3(module: unknown): this {
    if (typeof module !== "function" && typeof (module as { default?: unknown } | null)?.default !== "function")
      throw new ConfigError("withBetterSqlite3 takes the better-sqlite3 module (its default export is the Database class)", { scope: "sqlite" });
    this.c.betterSqlite3 = module;
    return this;
  }
  /** Finished (succeeded, failed, deleted) jobs older than this are pruned, in ms (default 24 h; 0: no age limit). */
  withFinishedJobTtl(ms: number): this {
    this.c.finishedJobTtlMs = check("finishedJobTtlMs", ms, "finishedJobTtl", "sqlite");
    return this;
  }
  /** Finished jobs kept at most; the oldest are pruned past it (default 10,000; 0: a job is deleted as it finishes). */
  withMaxFinishedJobs(n: number): this {
    this.c.maxFinishedJobs = check("maxFinishedJobs", n, "maxFinishedJobs", "sqlite");
    return this;
  }

  resolve(): ResolvedSqliteConfig {
    return { ...this.c };
  }
}
