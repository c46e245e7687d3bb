/**
 * Errors with stable codes. A caller sees the same class and `code` whichever
 * backend or runtime raised it; backends map their own failures through
 * `toStorageError` so that a refused connection on Redis and on Postgres look
 * the same.
 */

export const ErrorCode = {
  Validation: "VALIDATION",
  NotFound: "NOT_FOUND",
  InvalidState: "INVALID_STATE",
  LeaseLost: "LEASE_LOST",
  StorageUnavailable: "STORAGE_UNAVAILABLE",
  Timeout: "TIMEOUT",
  UnknownJobName: "UNKNOWN_JOB_NAME",
  Config: "CONFIG",
  Shutdown: "SHUTDOWN",
  Deadline: "DEADLINE",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class QmlError extends Error {
  override readonly name: string = "QmlError";
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message.startsWith("[qml]") ? message : `[qml] ${message}`, options);
    this.code = code;
  }
}

/** Bad input: a job, an option, a name or a cron expression. Nothing was written. */
export class ValidationError extends QmlError {
  override readonly name = "ValidationError";
  /** The offending field, e.g. `queue` or `arguments`. */
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(ErrorCode.Validation, message);
    this.field = field;
  }
}

export class NotFoundError extends QmlError {
  override readonly name = "NotFoundError";
  constructor(what: string, id: string) {
    super(ErrorCode.NotFound, `${what} ${JSON.stringify(id)} not found`);
  }
}

/** The operation does not apply to the job's current state (e.g. requeue a processing job). */
export class InvalidStateError extends QmlError {
  override readonly name = "InvalidStateError";
  constructor(message: string) {
    super(ErrorCode.InvalidState, message);
  }
}

/** A write was fenced out: the caller no longer holds the job's lease. */
export class LeaseLostError extends QmlError {
  override readonly name = "LeaseLostError";
  constructor(jobId: string) {
    super(ErrorCode.LeaseLost, `lease on job ${jobId} was lost (expired and reclaimed, deleted or requeued)`);
  }
}

/** The store could not be reached or did not confirm the write. The write may be retried. */
export class StorageUnavailableError extends QmlError {
  override readonly name = "StorageUnavailableError";
  /** A hint for HTTP `Retry-After`, in milliseconds. */
  readonly retryAfterMs: number;
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(ErrorCode.StorageUnavailable, message, options);
    this.retryAfterMs = options?.retryAfterMs ?? 1000;
  }
}

/** A job ran past its timeout. */
export class TimeoutError extends QmlError {
  override readonly name = "TimeoutError";
  constructor(jobId: string, timeoutMs: number) {
    super(ErrorCode.Timeout, `job ${jobId} timed out after ${timeoutMs} ms`);
  }
}

/** No worker is registered for a job's name. */
export class UnknownJobNameError extends QmlError {
  override readonly name = "UnknownJobNameError";
  constructor(jobName: string) {
    super(ErrorCode.UnknownJobName, `no worker is registered for job name ${JSON.stringify(jobName)}`);
  }
}

/** A configuration value is missing or malformed. */
export class ConfigError extends QmlError {
  override readonly name = "ConfigError";
  constructor(message: string) {
    super(ErrorCode.Config, message);
  }
}

/** The server is shutting down; the job was released, not failed. */
export class ShutdownError extends QmlError {
  override readonly name = "ShutdownError";
  constructor() {
    super(ErrorCode.Shutdown, "the server is shutting down");
  }
}

/** An invocation's deadline is near; the job was released for the next invocation. */
export class DeadlineError extends QmlError {
  override readonly name = "DeadlineError";
  constructor() {
    super(ErrorCode.Deadline, "the invocation's deadline is near");
  }
}

export function isQmlError(e: unknown): e is QmlError {
  return e instanceof QmlError;
}

/** Serialisable form of an error, as stored on a job. */
export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

export function toErrorInfo(e: unknown): ErrorInfo {
  if (e instanceof Error) {
    const info: ErrorInfo = { name: e.name, message: e.message };
    if (e.stack) info.stack = e.stack.length > 8192 ? e.stack.slice(0, 8192) : e.stack;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") info.code = code;
    return info;
  }
  return { name: "Error", message: typeof e === "string" ? e : safeString(e) };
}

function safeString(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
