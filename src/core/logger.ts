/**
 * Structured logging: one JSON object per line, or any sink the user gives.
 *
 * Pass errors as they are (`logger.warn("…", { error })`): a JsonLogger
 * writes an Error field as { name, message, code, scope, stack, cause }, so
 * nothing is lost the way `String(error)` loses stack, cause and code.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export class JsonLogger implements Logger {
  private readonly min: number;
  constructor(
    private readonly level: LogLevel = "info",
    private readonly fields: Record<string, unknown> = {},
    private readonly write: (line: string) => void = (line) => console.log(line),
  ) {
    this.min = LOG_LEVELS.indexOf(level);
  }
  private log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (LOG_LEVELS.indexOf(level) < this.min) return;
    let line: string;
    try {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...this.fields, ...fields }, errorReplacer);
    } catch {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...this.fields });
    }
    this.write(line);
  }
  debug(m: string, f?: Record<string, unknown>): void {
    this.log("debug", m, f);
  }
  info(m: string, f?: Record<string, unknown>): void {
    this.log("info", m, f);
  }
  warn(m: string, f?: Record<string, unknown>): void {
    this.log("warn", m, f);
  }
  error(m: string, f?: Record<string, unknown>): void {
    this.log("error", m, f);
  }
  child(fields: Record<string, unknown>): Logger {
    return new JsonLogger(this.level, { ...this.fields, ...fields }, this.write);
  }
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/** An Error as JSON: what it is, where it came from and why (its cause, to a few levels). */
export function errorFields(e: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = { name: e.name, message: e.message };
  const { code, scope } = e as { code?: unknown; scope?: unknown };
  if (code !== undefined) out.code = code;
  if (scope !== undefined) out.scope = scope;
  if (e.stack) out.stack = e.stack;
  if (e.cause !== undefined && depth < 3) out.cause = e.cause instanceof Error ? errorFields(e.cause, depth + 1) : e.cause;
  if (e instanceof AggregateError) out.errors = e.errors.slice(0, 5).map((x: unknown) => (x instanceof Error ? errorFields(x, depth + 1) : x));
  return out;
}

function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? errorFields(value) : value;
}
