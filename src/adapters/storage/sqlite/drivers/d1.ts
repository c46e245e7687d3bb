/**
 * The Workers driver: a Cloudflare D1 binding (`env.QML_DB`), or miniflare's
 * local D1 under `wrangler dev` and vitest-pool-workers. No package, no
 * `node:*`: the binding is the client.
 *
 * - `batch` is one `db.batch([...])`: one subrequest, which D1 runs as one
 *   transaction (all or none). A single statement goes out as `.all()`,
 *   also one subrequest.
 * - `exec` (migrations) does not use `db.exec`: D1 cuts its input at every
 *   newline and runs each line as a statement, so a statement written over
 *   several lines fails ("incomplete input"). The script is split into
 *   statements here and sent as one batch, which also makes a migration
 *   atomic.
 * - Every call goes to the primary (no `withSession`), so a read sees every
 *   write before it: a claim right after an insert finds the job.
 *
 * What D1 refuses that SQLite on Node accepts (measured on miniflare
 * 4.20260426, and in Cloudflare's published limits): more than 100 bound
 * parameters in one statement, statements over 100 KB, strings or rows over
 * 2 MB, LIKE/GLOB patterns over 50 bytes, more than 5 terms in one compound
 * SELECT (UNION ALL), expression trees deeper than 100, BEGIN/SAVEPOINT and
 * most PRAGMAs. JS numbers are bound as REAL (`typeof(?)` is 'real',
 * `json_object('n', ?)` writes 5.0), so SQL that needs an integer casts.
 */
import { ConfigError, QmlError, StorageUnavailableError } from "../../../../core/errors.js";
import type { SqlStatement, SqliteDriver, SqliteRow, SqliteValue } from "../driver.js";

// ---------------------------------------------------------------------------
// The slice of the D1 binding this driver uses, typed structurally (as
// runtime/cloudflare/types.ts does): subsets of `D1Database` and
// `D1PreparedStatement` from @cloudflare/workers-types, which
// test/workers/types.check.ts holds them to.

/** `D1Result`: what `.all()` and each entry of `batch()` resolve to. */
export interface D1ResultLike<T = Record<string, unknown>> {
  results?: T[];
}

/** `D1PreparedStatement`. */
export interface D1PreparedStatementLike {
  bind(...values: unknown[]): D1PreparedStatementLike;
  all<T = Record<string, unknown>>(): Promise<D1ResultLike<T>>;
}

/** `D1Database`: a `d1_databases` binding. */
export interface D1DatabaseLike {
  prepare(query: string): D1PreparedStatementLike;
  batch<T = unknown>(statements: D1PreparedStatementLike[]): Promise<D1ResultLike<T>[]>;
  exec(query: string): Promise<unknown>;
}

export function isD1Database(v: unknown): v is D1DatabaseLike {
  const d = v as Partial<D1DatabaseLike> | null;
  return typeof d === "object" && d !== null && typeof d.prepare === "function" && typeof d.batch === "function" && typeof d.exec === "function";
}

// ---------------------------------------------------------------------------

export class D1Driver implements SqliteDriver {
  readonly kind = "d1";
  private closed = false;

  constructor(readonly db: D1DatabaseLike) {
    if (!isD1Database(db)) {
      throw new ConfigError("the D1 driver needs a D1 binding (a `d1_databases` entry in wrangler.jsonc, e.g. env.QML_DB)", { scope: "d1" });
    }
  }

  async batch(statements: readonly SqlStatement[]): Promise<SqliteRow[][]> {
    if (this.closed) throw new StorageUnavailableError("the D1 driver is closed", { scope: "d1" });
    if (statements.length === 0) return [];
    const prepared = statements.map((s) => this.prepare(s));
    try {
      if (prepared.length === 1) return [rowsOf(await prepared[0]!.all<SqliteRow>())];
      return (await this.db.batch<SqliteRow>(prepared)).map(rowsOf);
    } catch (e) {
      throw toD1Error(e, statements.length === 1 ? "statement" : `batch of ${statements.length}`);
    }
  }

  async exec(sql: string): Promise<void> {
    const statements = splitSqlScript(sql).map((s) => ({ sql: s }));
    await this.batch(statements);
  }

  async close(): Promise<void> {
    // The binding holds no connection of ours: nothing to release.
    this.closed = true;
  }

  private prepare(s: SqlStatement): D1PreparedStatementLike {
    const stmt = this.db.prepare(s.sql);
    return s.params && s.params.length > 0 ? stmt.bind(...(s.params as SqliteValue[])) : stmt;
  }
}

/** `new Storage(sqliteBackend(new SqliteConfig().withDriver(d1Driver(env.QML_DB))))`. */
export function d1Driver(db: D1DatabaseLike): D1Driver {
  return new D1Driver(db);
}

function rowsOf(r: D1ResultLike<SqliteRow> | undefined): SqliteRow[] {
  return r?.results ?? [];
}

// ---------------------------------------------------------------------------
// Errors

/**
 * What D1 itself (not SQLite) answers when a call may succeed if sent
 * again: the errors Cloudflare's "Retry queries" guide and its list of D1
 * errors mark retryable. Each batch is one transaction and the backend's
 * writes are idempotent under a retry (core/driver.ts), so the caller may
 * send it again.
 */
const D1_TRANSIENT = [
  /network connection lost/i,
  /object to be reset/i, // "… storage caused object to be reset", "… exceeded timeout which caused object to be reset"
  /reset because its code was updated/i,
  /overloaded/i, // "D1 DB is overloaded. Too many requests queued."
  /too many requests queued/i,
  /exceeded its (memory|CPU time) limit/i,
];

/**
 * D1's own transient failures become StorageUnavailableError (scope "d1"),
 * as a refused connection does on the other backends. SQLite's failures
 * (a missing table, a busy database, a constraint) pass through as D1
 * threw them: the backend maps those for both drivers in one place
 * (../errors.ts), from the SQLite message D1 carries.
 */
export function toD1Error(e: unknown, operation: string): unknown {
  if (e instanceof QmlError) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (D1_TRANSIENT.some((re) => re.test(message))) {
    return new StorageUnavailableError(`[d1] ${operation} failed: ${message}`, { scope: "d1", cause: e });
  }
  return e;
}

// ---------------------------------------------------------------------------
// Scripts

/**
 * Splits an SQL script into its statements, as SQLite's own tokenizer
 * would: `;` ends a statement except inside a string, a quoted identifier,
 * a comment, or the body of a CREATE TRIGGER (which ends at `END;`).
 * Comments are dropped; statements come back trimmed, without their `;`.
 */
export function splitSqlScript(sql: string): string[] {
  const out: string[] = [];
  let current = "";
  let words: string[] = []; // the statement's first words, to spot CREATE [TEMP] TRIGGER
  let depth = 0; // BEGIN/CASE … END nesting inside a trigger body
  let i = 0;
  const isTrigger = () => {
    const w = words.filter((x) => x !== "TEMP" && x !== "TEMPORARY");
    return w[0] === "CREATE" && w[1] === "TRIGGER";
  };
  const finish = () => {
    const s = current.trim();
    if (s.length > 0) out.push(s);
    current = "";
    words = [];
    depth = 0;
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === "-" && next === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end;
      current += " ";
      continue;
    }
    if (c === "/" && next === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 2;
      current += " ";
      continue;
    }
    if (c === "'" || c === '"' || c === "`" || c === "[") {
      const close = c === "[" ? "]" : c;
      let j = i + 1;
      for (;;) {
        const k = sql.indexOf(close, j);
        if (k < 0) {
          j = sql.length;
          break;
        }
        // A doubled quote is an escaped one (not for [ … ]).
        if (close !== "]" && sql[k + 1] === close) {
          j = k + 2;
          continue;
        }
        j = k + 1;
        break;
      }
      current += sql.slice(i, j);
      i = j;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_$]/.test(sql[j]!)) j++;
      const word = sql.slice(i, j).toUpperCase();
      if (words.length < 3) words.push(word);
      if (isTrigger()) {
        if (word === "BEGIN" || word === "CASE") depth++;
        else if (word === "END") depth = Math.max(0, depth - 1);
      }
      current += sql.slice(i, j);
      i = j;
      continue;
    }
    if (c === ";" && !(isTrigger() && depth > 0)) {
      finish();
      i++;
      continue;
    }
    current += c;
    i++;
  }
  finish();
  return out;
}
