/**
 * The SQLite driver for Node: better-sqlite3, one connection per process.
 *
 * Settings, and why:
 *
 * - `journal_mode=WAL`: readers never wait for the writer, and a commit
 *   appends its pages to the write-ahead log instead of rewriting the
 *   database file. Several processes can share the file (below).
 * - `synchronous=NORMAL`: in WAL mode a commit does not fsync; the log is
 *   synced when a checkpoint copies it into the database (by default once
 *   it holds 1000 pages, about 4 MB). So a claim batch and a completion
 *   batch are one transaction each and cost no fsync of their own: at most
 *   one fsync-bound write per batch, in practice one per checkpoint, shared
 *   by many batches (bench/README.md measures it). A commit survives the
 *   process being killed (the log is in the OS's page cache, which the next
 *   open reads); what an OS crash or power loss can take is the last
 *   commits before the last checkpoint, never a torn database
 *   (https://www.sqlite.org/wal.html). Set `synchronous: "FULL"` for an
 *   fsync per commit.
 * - A busy timeout (default 5 s): a process that finds another process's
 *   write in progress waits for it instead of failing at once.
 * - Batches that write run as `BEGIN IMMEDIATE … COMMIT`: the write lock is
 *   taken at the start, so the transaction never has to upgrade a read
 *   snapshot another process has made stale (which fails at once, busy
 *   timeout or not). Read-only batches run in a read transaction (one
 *   statement: none needed), which never waits for a writer.
 *
 * Several processes on one file: supported, on a local file system (WAL
 * needs shared memory between the processes: not a network share). Writes
 * are serialized by SQLite's lock, each batch one transaction, so a claim
 * made by one process is whole before another process's claim reads;
 * test/sqlite/multi-process.test.ts claims from two processes at once and
 * finds every job claimed exactly once.
 *
 * Calls run synchronously, in the order they are made (the returned promise
 * is already settled): `ordered` is true, so a server claims right behind
 * an insert made in its process.
 *
 * `better-sqlite3` is loaded at the first driver made, through Node's own
 * require (../../node-require.ts): a Workers bundle of the SQLite backend
 * (with the D1 driver) never contains it. A bundle for Node that must
 * carry it passes the module in (`module`, or `SqliteConfig.withBetterSqlite3`).
 */
import { ConfigError } from "../../../../core/errors.js";
import { nodeRequire } from "../../node-require.js";
import type { SqlStatement, SqliteDriver, SqliteRow, SqliteValue } from "../driver.js";

export interface BetterSqlite3DriverOptions {
  /** The database file (its folder is created), or `:memory:`. */
  path: string;
  /** Milliseconds a write waits for another connection's lock (default 5000). */
  busyTimeoutMs?: number;
  /** `NORMAL` (default, see above) or `FULL` (an fsync per commit). */
  synchronous?: "NORMAL" | "FULL";
  /** The `better-sqlite3` module; default: loaded from node_modules at first use. */
  module?: unknown;
}

// The few members of better-sqlite3 this driver uses, declared here so that
// nothing imports the package's types where the D1 driver is bundled.
interface Statement {
  readonly reader: boolean;
  readonly readonly: boolean;
  all(...params: unknown[]): SqliteRow[];
  run(...params: unknown[]): unknown;
}
interface Transaction<A extends unknown[], R> {
  immediate(...args: A): R;
  deferred(...args: A): R;
}
interface Database {
  readonly open: boolean;
  prepare(sql: string): Statement;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(sql: string): void;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): Transaction<A, R>;
  close(): void;
}
type DatabaseClass = new (path: string, options?: { timeout?: number }) => Database;

interface Prepared {
  stmt: Statement;
  /** Parameters numbered ?1, ?2…: better-sqlite3 binds them from an object keyed 1, 2… */
  numbered: boolean;
}

type NodeFs = { mkdirSync(path: string, options: { recursive: boolean }): unknown };

function databaseClass(m: unknown): DatabaseClass {
  if (typeof m === "function") return m as DatabaseClass;
  const d = (m as { default?: unknown } | null)?.default;
  if (typeof d === "function") return d as DatabaseClass;
  throw new ConfigError("the better-sqlite3 module passed in has no Database class", { scope: "sqlite" });
}

/** The folder of `path` (the part before the last separator), or undefined for a bare file name or :memory:. */
function folderOf(path: string): string | undefined {
  if (path === ":memory:" || path === "" || path.startsWith("file:")) return undefined;
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i > 0 ? path.slice(0, i) : undefined;
}

export class BetterSqlite3Driver implements SqliteDriver {
  readonly kind = "better-sqlite3";
  readonly ordered = true;
  readonly path: string;
  private readonly db: Database;
  private readonly cache = new Map<string, Prepared>();
  private readonly tx: Transaction<[readonly SqlStatement[]], SqliteRow[][]>;
  /** Transactions committed by batches that write: one per batch (tests count them). */
  commits = 0;

  constructor(options: BetterSqlite3DriverOptions) {
    this.path = options.path;
    const Database = databaseClass(options.module ?? nodeRequire("better-sqlite3", "sqlite"));
    const folder = folderOf(options.path);
    if (folder !== undefined) {
      const fs = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.("node:fs") as NodeFs | undefined;
      try {
        fs?.mkdirSync(folder, { recursive: true });
      } catch (e) {
        throw new ConfigError(`cannot create the folder of the database file ${options.path} (${(e as Error).message})`, { scope: "sqlite", cause: e });
      }
    }
    try {
      this.db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
    } catch (e) {
      if (/could not locate the bindings file|NODE_MODULE_VERSION|was compiled against/i.test((e as Error).message ?? ""))
        throw new ConfigError(
          `better-sqlite3's native module is not built for this Node (${(e as Error).message.split("\n")[0]}): run \`npm rebuild better-sqlite3\`, and allow its install script (npm 11: "allowScripts")`,
          { scope: "sqlite", cause: e },
        );
      throw e;
    }
    // WAL is a property of the file, kept across opens; an in-memory database answers "memory".
    this.db.pragma("journal_mode = WAL");
    this.db.pragma(`synchronous = ${options.synchronous === "FULL" ? "FULL" : "NORMAL"}`);
    // Sorts and groupings that spill go to memory, not to a temporary file
    // (a container's root file system may be read-only; they are small here).
    this.db.pragma("temp_store = MEMORY");
    this.tx = this.db.transaction((statements: readonly SqlStatement[]) => statements.map((s) => this.execute(this.prepare(s.sql), s.params)));
  }

  private prepare(sql: string): Prepared {
    let p = this.cache.get(sql);
    if (!p) {
      p = { stmt: this.db.prepare(sql), numbered: /\?\d/.test(sql) };
      this.cache.set(sql, p);
    }
    return p;
  }

  private execute(p: Prepared, params: readonly SqliteValue[] | undefined): SqliteRow[] {
    const args: unknown[] =
      params === undefined || params.length === 0 ? [] : p.numbered ? [Object.fromEntries(params.map((v, i) => [i + 1, v]))] : [...params];
    if (p.stmt.reader) return p.stmt.all(...args);
    p.stmt.run(...args);
    return [];
  }

  /** Runs synchronously, so batches run in call order; the promise is settled when returned. */
  batch(statements: readonly SqlStatement[]): Promise<SqliteRow[][]> {
    try {
      // A statement about a table an earlier one creates (a migration) cannot
      // be prepared before that one has run: such a batch is a write, and
      // its statements are prepared in turn inside the transaction.
      let prepared: Prepared[] | undefined;
      try {
        prepared = statements.map((s) => this.prepare(s.sql));
      } catch {
        prepared = undefined;
      }
      if (prepared?.every((p) => p.stmt.readonly)) {
        // A single read is consistent by itself; several share one read transaction.
        if (prepared.length === 1) return Promise.resolve([this.execute(prepared[0]!, statements[0]!.params)]);
        return Promise.resolve(this.tx.deferred(statements));
      }
      const rows = this.tx.immediate(statements);
      this.commits++;
      return Promise.resolve(rows);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async exec(sql: string): Promise<void> {
    this.db.exec(sql);
  }

  /** A PRAGMA's value (journal_mode, synchronous, busy_timeout…), for checks and tests. */
  pragma(name: string): unknown {
    return this.db.pragma(name, { simple: true });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

export function createBetterSqlite3Driver(options: BetterSqlite3DriverOptions): BetterSqlite3Driver {
  return new BetterSqlite3Driver(options);
}
