/**
 * Driver over `pg` (node-postgres): a TCP pool, for Node servers and Lambda.
 *
 * `pg` is loaded when the first driver is created (see node-require.ts), so
 * a Worker bundle that only uses the Neon drivers never pulls it in. Pass
 * `pg` in to have a Node bundler inline it.
 */
import type { Pool, PoolConfig } from "pg";
import type { SqlDriver } from "../driver.js";
import { listenWith, type ListeningClient } from "./listen.js";
import { PoolDriver, type QueryablePool } from "./pool-driver.js";
import { nodeRequire } from "../../node-require.js";

export interface PgDriverOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
  /** Connections kept open when idle (default 0). */
  min?: number;
  /** Milliseconds to wait for a connection (default 10000). */
  connectTimeoutMs?: number;
  /** Milliseconds an idle connection stays open (default 10000). */
  idleTimeoutMs?: number;
  /** Client-side limit on one statement, in ms (default: none). */
  queryTimeoutMs?: number;
  /** Extra pg pool options (ssl, application_name…). */
  pool?: Omit<PoolConfig, "connectionString" | "max" | "min">;
  /** The `pg` module (`import pg from "pg"`); default: loaded from node_modules at first use. */
  pg?: unknown;
}

type PgModule = typeof import("pg");

function asPg(m: unknown): PgModule {
  const mod = m as PgModule & { default?: PgModule };
  return typeof mod.Pool === "function" ? mod : (mod.default ?? mod);
}

export class PgDriver extends PoolDriver implements SqlDriver {
  readonly name = "pg";

  private constructor(
    override readonly pool: Pool,
    private readonly pg: PgModule,
    private readonly options: PgDriverOptions,
  ) {
    super(pool as unknown as QueryablePool);
    // An idle client's error (server restart) would otherwise crash the process.
    pool.on("error", () => {});
  }

  static async create(options: PgDriverOptions): Promise<PgDriver> {
    const pg = asPg(options.pg ?? nodeRequire("pg", "postgres"));
    const pool = new pg.Pool({
      ...options.pool,
      connectionString: options.connectionString,
      max: options.max ?? 10,
      min: options.min ?? 0,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: options.idleTimeoutMs ?? 10_000,
      ...(options.queryTimeoutMs ? { query_timeout: options.queryTimeoutMs } : {}),
    });
    return new PgDriver(pool, pg, options);
  }

  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
    const make = () =>
      new this.pg.Client({
        connectionString: this.options.connectionString,
        connectionTimeoutMillis: this.options.connectTimeoutMs ?? 10_000,
      }) as unknown as ListeningClient;
    return listenWith(make, channel, onPayload);
  }
}

export function createPgDriver(options: PgDriverOptions): Promise<PgDriver> {
  return PgDriver.create(options);
}
