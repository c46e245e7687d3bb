/**
 * The narrow seam between PostgresBackend and a Postgres client library.
 *
 * The backend needs one thing: run one statement with parameters and get
 * rows back as objects. Each StorageDriver method is one statement, so the same
 * code runs over a TCP pool (`pg`), a WebSocket pool (`@neondatabase/serverless`
 * Pool) and Neon's HTTP endpoint (`neon()`), which has no sessions at all.
 *
 * Parameters the backend sends are strings, finite numbers or null (JSON is
 * sent as text and cast in SQL), so no driver's own value serialisation
 * (arrays, dates, buffers) is ever involved.
 */
import { ConfigError, StorageUnavailableError } from "../../../core/errors.js";

export interface SqlResult<R> {
  rows: R[];
  rowCount: number;
}

export interface QueryOptions {
  /**
   * A prepared-statement name. Drivers with sessions prepare the statement
   * once per connection; others ignore it. Names are derived from the text,
   * so a name never stands for two texts.
   */
  name?: string;
}

export interface SqlDriver {
  /** `pg`, `neon-ws`, `neon-http`, or a custom driver's name. */
  readonly name: string;
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<SqlResult<R>>;
  /** Releases connections. */
  close(): Promise<void>;
  /**
   * LISTENs on `channel` on a dedicated connection, reconnecting when it
   * drops, and calls `onPayload` for each notification. Only drivers with
   * sessions have it. Resolves once listening; the returned function stops.
   */
  listen?(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
}

/**
 * Something that runs a statement: a `pg` Client/PoolClient or a Neon Pool
 * client, typically inside the caller's BEGIN … COMMIT.
 */
export interface SqlClient {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

// ---------------------------------------------------------------------------
// Errors: one mapping for every driver, so a caller sees the same error
// whichever transport failed.

/** SQLSTATEs worth retrying at once: the statement was rolled back whole. */
export const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set(["40001", "40P01"]);

/** SQLSTATE classes and codes that mean the server is (for now) not there. */
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300", "53400", "08000", "08001", "08003", "08004", "08006", "08007", "08P01"]);
const UNAVAILABLE_NODE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);
const UNAVAILABLE_MESSAGES = [
  /connection terminated/i,
  /connection error/i,
  /timeout exceeded when trying to connect/i,
  /query read timeout/i,
  /client has encountered a connection error/i,
  /cannot use a pool after calling end/i,
  /client was closed/i,
  /error connecting to database/i,
  /fetch failed/i,
  /server error \(http status 5\d\d\)/i,
  /websocket/i,
  /socket hang up/i,
  /the operation was aborted/i,
  /aborted due to timeout/i,
];

export function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function nodeCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 4; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && UNAVAILABLE_NODE_CODES.has(code)) return code;
    cur = (cur as { cause?: unknown; sourceError?: unknown }).sourceError ?? (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether a driver error means the store could not be reached or did not answer. */
export function isUnavailable(e: unknown): boolean {
  if (e instanceof StorageUnavailableError) return true;
  const state = sqlState(e);
  if (state) return UNAVAILABLE_SQLSTATES.has(state) || state.startsWith("08");
  if (nodeCode(e)) return true;
  const name = (e as { name?: unknown } | null)?.name;
  if (name === "AbortError" || name === "TimeoutError") return true;
  const message = e instanceof Error ? e.message : String(e);
  return UNAVAILABLE_MESSAGES.some((re) => re.test(message));
}

/**
 * Maps a driver failure to the error a caller sees: StorageUnavailableError
 * for transport failures, ConfigError for a schema that was never migrated,
 * the original error otherwise (a bug, not a condition to handle).
 */
export function toStorageError(e: unknown, schema: string): unknown {
  if (e instanceof StorageUnavailableError || e instanceof ConfigError) return e;
  const state = sqlState(e);
  if (state === "42P01" || state === "3F000" || state === "42883") {
    return new ConfigError(`schema "${schema}" is missing or not migrated (${(e as Error).message}); call migrate() or use withAutoMigrate(true)`, {
      scope: "postgres",
      cause: e,
    });
  }
  if (isUnavailable(e)) {
    const message = e instanceof Error ? e.message : String(e);
    return new StorageUnavailableError(message, { scope: "postgres", cause: e });
  }
  return e;
}

// ---------------------------------------------------------------------------

/** Schema names are configuration: checked strictly, then always quoted. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function validateSchemaName(schema: unknown): string {
  if (typeof schema !== "string" || !SCHEMA_NAME.test(schema)) {
    throw new ConfigError(`schema must match ${SCHEMA_NAME} (lowercase letters, digits, "_"); got ${JSON.stringify(schema)}`, { scope: "postgres" });
  }
  return schema;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A short stable hash of a statement's text, for prepared-statement names. */
export function statementName(text: string): string {
  // Two FNV-1a passes with different seeds: 64 bits, so that the dozen
  // statements of a process never share a name.
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 13);
  }
  return `qml_${(a >>> 0).toString(16).padStart(8, "0")}${(b >>> 0).toString(16).padStart(8, "0")}`;
}
