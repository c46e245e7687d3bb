/**
 * One mapping from SQLite failures to the errors a caller sees, for every
 * driver (better-sqlite3 throws SqliteError with a `code`; D1 puts the
 * SQLite error in its message), so that a locked database looks the same
 * on both, and the same as an unreachable Redis or PostgreSQL.
 */
import { ConfigError, QmlError, StorageUnavailableError } from "../../../core/errors.js";

/** Another connection held the write lock past the busy timeout, or the database could not be written for now. */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|NOMEM|PROTOCOL|INTERRUPT)/;
const UNAVAILABLE_MESSAGES = [
  /database is locked/i,
  /database table is locked/i,
  /SQLITE_BUSY/,
  /disk I\/O error/i,
  /database or disk is full/i,
  /network connection lost/i,
  /fetch failed/i,
  /internal error/i,
  /D1 is overloaded/i,
  /too many requests/i,
  /storage operation exceeded timeout/i,
];

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

export function toStorageError(e: unknown, transport: string): unknown {
  if (e instanceof QmlError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const code = codeOf(e);
  if (/no such table: qml_/i.test(message))
    return new ConfigError(`the qml tables are missing (${message}): call migrate() or use withAutoMigrate(true)`, { scope: "sqlite", cause: e });
  // The backend's own SQL names only columns its migrations create: a column missing is a schema not upgraded yet.
  if (/no such column: |has no column named /i.test(message))
    return new ConfigError(`the qml tables are older than this version of qml (${message}): call migrate() or use withAutoMigrate(true)`, {
      scope: "sqlite",
      cause: e,
    });
  if (code === "SQLITE_CANTOPEN" || /unable to open database file/i.test(message))
    return new ConfigError(`cannot open the database file (${message}): check the path (QML_SQLITE_PATH) and that its folder is writable`, {
      scope: "sqlite",
      cause: e,
    });
  if (code?.startsWith("SQLITE_READONLY") || /attempt to write a readonly database/i.test(message))
    return new ConfigError(`the database is read-only (${message}): give the process write access to the file and its folder`, { scope: "sqlite", cause: e });
  if ((code !== undefined && UNAVAILABLE_CODES.test(code)) || UNAVAILABLE_MESSAGES.some((re) => re.test(message)))
    return new StorageUnavailableError(`${transport}: ${message}`, { scope: "sqlite", cause: e, retryAfterMs: 500 });
  return e;
}
