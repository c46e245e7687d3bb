/**
 * The side table of executions: every handler appends one row (job id,
 * attempt, lease token, server) before it does its work, on a connection of
 * its own, so the record survives the worker being killed right after.
 * The analysis compares it with the jobs' own history: an execution the
 * store does not explain by an expired lease is a bug.
 *
 * No vitest import here: worker processes load this module too.
 */
import { createRequire } from "node:module";
import pg from "pg";
import { Redis } from "ioredis";

export interface Run {
  id: string;
  attempt: number;
  token: number;
  server: string;
  /** Epoch ms on the recording machine's clock. */
  at: number;
  /** Anything else the job wants on record (a recurring firing's slot). */
  note?: string;
}

export type RunLogSpec =
  | { kind: "memory" }
  | { kind: "redis"; url: string; key: string }
  | { kind: "postgres"; url: string; schema: string }
  /** A file of its own; `module` is better-sqlite3's entry file (stores.ts, betterSqlite3Path). */
  | { kind: "sqlite"; path: string; module: string };

interface SqliteRunDb {
  exec(sql: string): void;
  prepare(sql: string): { run(...params: unknown[]): unknown; all(): Array<Record<string, unknown>> };
  pragma(sql: string): unknown;
  close(): void;
}

export interface RunLog {
  record(run: Run): Promise<void>;
  all(): Promise<Run[]>;
  close(): Promise<void>;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

export async function openRunLog(spec: RunLogSpec): Promise<RunLog> {
  switch (spec.kind) {
    case "memory": {
      const runs: Run[] = [];
      return {
        record: async (r) => void runs.push(r),
        all: async () => [...runs],
        close: async () => {},
      };
    }
    case "redis": {
      const redis = new Redis(spec.url, { maxRetriesPerRequest: 20, retryStrategy: (n) => Math.min(50 * n, 500) });
      redis.on("error", () => {});
      return {
        record: async (r) => void (await redis.rpush(spec.key, JSON.stringify(r))),
        all: async () => (await redis.lrange(spec.key, 0, -1)).map((s) => JSON.parse(s) as Run),
        close: async () => void redis.disconnect(),
      };
    }
    case "sqlite": {
      // One autocommit INSERT per execution: on disk (the OS's cache) before the job starts, whatever happens to the process next.
      const Database = createRequire(import.meta.url)(spec.module) as new (path: string, options: { timeout: number }) => SqliteRunDb;
      const db = new Database(spec.path, { timeout: 30_000 });
      db.pragma("journal_mode = WAL");
      db.exec(
        "CREATE TABLE IF NOT EXISTS chaos_runs (job_id TEXT NOT NULL, attempt INTEGER NOT NULL, token INTEGER NOT NULL, server TEXT NOT NULL, at INTEGER NOT NULL, note TEXT)",
      );
      const insert = db.prepare("INSERT INTO chaos_runs VALUES (?, ?, ?, ?, ?, ?)");
      return {
        record: async (r) => void insert.run(r.id, r.attempt, r.token, r.server, r.at, r.note ?? null),
        all: async () =>
          db
            .prepare("SELECT * FROM chaos_runs")
            .all()
            .map((r) => ({
              id: r.job_id as string,
              attempt: Number(r.attempt),
              token: Number(r.token),
              server: r.server as string,
              at: Number(r.at),
              ...(r.note !== null ? { note: r.note as string } : {}),
            })),
        close: async () => db.close(),
      };
    }
    case "postgres": {
      if (!SCHEMA.test(spec.schema)) throw new Error(`bad schema ${spec.schema}`);
      const table = `"${spec.schema}".chaos_runs`;
      const pool = new pg.Pool({ connectionString: spec.url, max: 2 });
      pool.on("error", () => {});
      await pool.query(`CREATE SCHEMA IF NOT EXISTS "${spec.schema}"`).catch(() => {});
      await pool
        .query(
          `CREATE TABLE IF NOT EXISTS ${table} (job_id text NOT NULL, attempt int NOT NULL, token int NOT NULL, server text NOT NULL, at bigint NOT NULL, note text)`,
        )
        .catch(() => {});
      return {
        record: async (r) =>
          void (await pool.query(`INSERT INTO ${table} VALUES ($1, $2, $3, $4, $5, $6)`, [r.id, r.attempt, r.token, r.server, r.at, r.note ?? null])),
        all: async () =>
          (
            await pool.query<{ job_id: string; attempt: number; token: number; server: string; at: string; note: string | null }>(`SELECT * FROM ${table}`)
          ).rows.map((r) => ({
            id: r.job_id,
            attempt: r.attempt,
            token: r.token,
            server: r.server,
            at: Number(r.at),
            ...(r.note !== null ? { note: r.note } : {}),
          })),
        close: () => pool.end(),
      };
    }
  }
}
