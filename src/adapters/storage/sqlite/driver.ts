/**
 * The narrow interface the SQLite backend runs on: statements with bound
 * parameters, run in order as one atomic unit. Two drivers implement it:
 * better-sqlite3 (Node; one transaction, BEGIN IMMEDIATE) and a Cloudflare
 * D1 binding (Workers; one `db.batch`, which D1 runs as one transaction).
 *
 * Every backend operation is one `batch` call, so that D1's batch API (one
 * subrequest) carries it and SQLite's single writer makes it atomic.
 *
 * Parameters: the backend's SQL numbers them (`?1`, `?2`, … : one value may
 * be used several times) and `params[i]` is `?{i + 1}`. Values are strings,
 * numbers or null; a number may reach SQLite as REAL or INTEGER depending
 * on the driver, so the SQL never depends on which (it CASTs where a
 * number is turned into text, and column affinity stores integers as
 * integers). Batches of rows travel as one JSON text parameter, read with
 * json_each: any number of rows, within D1's 100 bound parameters.
 */

/** What a parameter may be: SQLite's storage classes as both drivers bind them. */
export type SqliteValue = string | number | null;

export interface SqlStatement {
  sql: string;
  params?: readonly SqliteValue[];
}

export type SqliteRow = Record<string, SqliteValue>;

export interface SqliteDriver {
  /** "better-sqlite3", "d1", or a custom driver's name: for logs and errors. */
  readonly kind: string;
  /**
   * Runs the statements in order, all or none (one transaction; on D1 one
   * batch). Resolves to each statement's rows (empty for statements that
   * return none).
   */
  batch(statements: readonly SqlStatement[]): Promise<SqliteRow[][]>;
  /** Runs a script of statements without parameters (tools and tests; the backend migrates through `batch`, atomically). */
  exec(sql: string): Promise<void>;
  /** Releases the database. Idempotent. */
  close(): Promise<void>;
  /**
   * True when batches reach the database in the order they are called
   * (better-sqlite3 runs each one synchronously, inside the call): a claim
   * made right after an insert is sent then runs after it. D1 sends each
   * batch as its own request and leaves it unset.
   */
  readonly ordered?: boolean;
}
