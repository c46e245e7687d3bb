/** Structured logging: one JSON object per line, or any sink the user gives. */
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
      line = JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...this.fields, ...fields });
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
