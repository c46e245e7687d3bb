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
  BudgetExceeded: "BUDGET_EXCEEDED",
  Cancelled: "CANCELLED",
  EncryptionKeyMissing: "ENCRYPTION_KEY_MISSING",
  Decryption: "DECRYPTION_FAILED",
  Dependency: "DEPENDENCY",
  Step: "STEP",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface QmlErrorOptions {
  cause?: unknown;
  /** The component that raised it ("redis", "postgres", "cloudflare", "http"…), for logs and problem documents. */
  scope?: string;
}

/**
 * The base of every error qml raises. The message says what happened and
 * what to do; `scope` names the component, `code` is stable across
 * versions and backends.
 */
export class QmlError extends Error {
  override readonly name: string = "QmlError";
  readonly code: ErrorCode;
  readonly scope: string | undefined;
  constructor(code: ErrorCode, message: string, options: QmlErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = code;
    this.scope = options.scope;
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
  constructor(message: string, options: QmlErrorOptions & { retryAfterMs?: number } = {}) {
    super(ErrorCode.StorageUnavailable, message, options);
    this.retryAfterMs = options.retryAfterMs ?? 1000;
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
  constructor(message: string, options: QmlErrorOptions = {}) {
    super(ErrorCode.Config, message, options);
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

/** The job was cancelled (or deleted) while it ran: the reason its AbortSignal fired. Its outcome is not recorded. */
export class CancelledError extends QmlError {
  override readonly name = "CancelledError";
  /** `how`: what the job's history says, e.g. "cancelled by dashboard (admin)" or "deleted". */
  constructor(jobId: string, how = "cancelled") {
    super(ErrorCode.Cancelled, `job ${jobId} was ${how}`);
  }
}

/**
 * Recorded on a waiting job (a flow's parent, a continuation) that ended
 * `failed` because a job it waits for finished another way than it asked
 * (`FlowSpec.otherwise: "fail"`): names that job and how it ended.
 */
export class DependencyError extends QmlError {
  override readonly name = "DependencyError";
  readonly dependencyId: string;
  constructor(jobId: string, dependencyId: string, how: string) {
    super(ErrorCode.Dependency, `job ${jobId} waited for job ${dependencyId}, which ${how}`);
    this.dependencyId = dependencyId;
  }
}

/**
 * A job's arguments are sealed with a key this process does not have (or it
 * has no keyring): the job fails at once, without more attempts. Add the key
 * (QML_ENCRYPTION_KEYS) and requeue the job.
 */
export class EncryptionKeyMissingError extends QmlError {
  override readonly name = "EncryptionKeyMissingError";
  readonly keyId: string;
  constructor(jobId: string, keyId: string, hasKeyring = true) {
    super(
      ErrorCode.EncryptionKeyMissing,
      hasKeyring
        ? `job ${jobId} has arguments sealed with key ${JSON.stringify(keyId)}, which is not in this keyring: add it to QML_ENCRYPTION_KEYS and requeue the job`
        : `job ${jobId} has encrypted arguments and this storage has no keyring: set QML_ENCRYPTION_KEYS (or new Storage(backend, { encryption })) and requeue the job`,
    );
    this.keyId = keyId;
  }
}

/**
 * A sealed argument did not authenticate: altered in the store, copied from
 * another job or field, or a different key under the same id. The job fails
 * at once, without more attempts.
 */
export class DecryptionError extends QmlError {
  override readonly name = "DecryptionError";
  constructor(jobId: string, place: string, options: QmlErrorOptions = {}) {
    super(
      ErrorCode.Decryption,
      `job ${jobId}: a sealed argument (${place === "*" ? "all arguments" : place}) does not decrypt: altered, or sealed for another job`,
      options,
    );
  }
}

/**
 * A job that cannot finish within one invocation of a short-lived runtime
 * (Workers, Lambda): it was failed instead of being handed back forever.
 * Lower its timeout, raise the runtime's budget, split the job, or send it
 * to a queue that a long-running (Node) server takes.
 */
/**
 * A durable step used against its rules (ctx.step, steps.ts): an id
 * reached twice in one run, an id that was another kind of step in an
 * earlier run (the code between steps changed), a result or event over
 * its size limit, or a step whose own retries ran out. The job fails at
 * once: another attempt would meet the same code.
 */
export class StepError extends QmlError {
  override readonly name: string = "StepError";
  /** The step's id. */
  readonly stepId: string;
  constructor(stepId: string, message: string, options: QmlErrorOptions = {}) {
    super(ErrorCode.Step, message, options);
    this.stepId = stepId;
  }
}

/** A step id reached a second time within one run: ids must be unique within a job. */
export class DuplicateStepIdError extends StepError {
  override readonly name = "DuplicateStepIdError";
  constructor(stepId: string) {
    super(stepId, `step id "${stepId}" was used twice in one run; each ctx.step call needs its own id (in a loop, put the index in it: \`charge-\${i}\`)`);
  }
}

/** A step's result, or an event's data, over MAX_STEP_RESULT_BYTES; or the job's steps over MAX_STEPS. */
export class StepResultTooLargeError extends StepError {
  override readonly name = "StepResultTooLargeError";
}

export class BudgetExceededError extends QmlError {
  override readonly name = "BudgetExceededError";
  /** The budget one invocation gives jobs, in ms. */
  readonly budgetMs: number | undefined;
  constructor(jobId: string, why: string, budgetMs: number | undefined) {
    super(
      ErrorCode.BudgetExceeded,
      `job ${jobId} cannot finish within one invocation${budgetMs !== undefined ? ` (a budget of ${budgetMs} ms)` : ""}: ${why}. ` +
        "Lower its timeout, raise the runtime's budget, split the job, or route it to a queue a long-running server takes",
    );
    this.budgetMs = budgetMs;
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
