/**
 * Input rules, decided once for every backend.
 *
 * Names and ids become Redis keys and SQL values; text crosses Lua, JSON,
 * jsonb and the DOM. `Storage` checks every value against these rules
 * before a driver sees it, so each backend refuses the same input with the
 * same ValidationError and reads back exactly what it accepted.
 *
 * Unicode: an id, a unique key, metadata (keys and string values), a
 * recurring id and a search text must be well-formed (no unpaired
 * surrogate: it has no UTF-8 form, so Redis would store U+FFFD and
 * PostgreSQL refuses it) and hold no U+0000 (PostgreSQL text and jsonb
 * cannot). Arguments, results and progress values may hold both: every
 * backend keeps them as JSON text, where they travel as `\u` escapes.
 * Text the engine writes itself (error messages, history reasons) is
 * made well-formed by `cleanText` before it is stored.
 */
import { ValidationError } from "./errors.js";

/** Queue names: letters, digits, `_`, `-`, `.`; 1-64 characters. */
export const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Job names: letters, digits, `_`, `-`, `.`, `/`; 1-128 characters. */
export const JOB_NAME = /^[A-Za-z0-9_./-]{1,128}$/;
/** Recurring ids: as job names. */
export const RECURRING_ID = JOB_NAME;
export const MAX_ID_LENGTH = 200;
export const MAX_UNIQUE_KEY_LENGTH = 512;
export const MAX_LIMIT_KEY_LENGTH = 200;
export const MAX_SEARCH_TEXT_LENGTH = 200;
/** Upper bound of a job's serialized arguments, and of its metadata. */
export const MAX_PAYLOAD_BYTES = 512 * 1024;

/** Bounds of a job's numeric options; the HTTP schemas and builders read the same ones. */
export const JOB_BOUNDS = {
  priority: { min: -1_000_000, max: 1_000_000 },
  maxAttempts: { min: 1, max: 1000 },
  timeoutMs: { min: 1, max: 7 * 24 * 3_600_000 },
  delayMs: { min: 0, max: 366 * 24 * 3_600_000 },
  retryDelayMs: { min: 0, max: 30 * 24 * 3_600_000 },
  uniqueTtlMs: { min: 1, max: 366 * 24 * 3_600_000 },
  /** A concurrency or rate limit: at least 1 (pause a queue to run none). */
  limit: { min: 1, max: 1_000_000 },
  rateIntervalMs: { min: 10, max: 7 * 24 * 3_600_000 },
} as const;

const CONTROL = /[\u0000-\u001f\u007f]/;
const SURROGATE = /\p{Surrogate}/u;

export function validateQueueName(queue: unknown, field = "queue"): string {
  if (typeof queue !== "string" || !QUEUE_NAME.test(queue)) {
    throw new ValidationError(`${field} must be 1-64 characters of letters, digits, "_", "-" or "."; got ${describe(queue)}`, field);
  }
  return queue;
}

export function validateJobName(name: unknown, field = "name"): string {
  if (typeof name !== "string" || !JOB_NAME.test(name)) {
    throw new ValidationError(`${field} must be 1-128 characters of letters, digits, "_", "-", "." or "/"; got ${describe(name)}`, field);
  }
  return name;
}

export function validateRecurringId(id: unknown, field = "id"): string {
  if (typeof id !== "string" || !RECURRING_ID.test(id)) {
    throw new ValidationError(`recurring ${field} must be 1-128 characters of letters, digits, "_", "-", "." or "/"; got ${describe(id)}`, field);
  }
  return id;
}

/** Whether `id` could name a stored job: a lookup of anything else answers "not found" without asking the store. */
export function isJobId(id: unknown): id is string {
  return typeof id === "string" && id.length > 0 && id.length <= MAX_ID_LENGTH && !CONTROL.test(id) && !SURROGATE.test(id);
}

export function validateJobId(id: unknown, field = "id"): string {
  if (!isJobId(id))
    throw new ValidationError(`${field} must be 1-${MAX_ID_LENGTH} characters of well-formed text without control characters; got ${describe(id)}`, field);
  return id;
}

/** Any text but U+0000 and unpaired surrogates, up to `max` characters. */
export function validateText(v: unknown, field: string, max: number, min = 1): string {
  if (typeof v !== "string" || v.length < min || v.length > max) {
    throw new ValidationError(`${field} must be a string of ${min === max ? max : `${min}-${max}`} characters; got ${describe(v)}`, field);
  }
  if (v.includes("\u0000")) throw new ValidationError(`${field} must not contain U+0000`, field);
  if (SURROGATE.test(v)) throw new ValidationError(`${field} must be well-formed Unicode (it has an unpaired surrogate)`, field);
  return v;
}

export function validateUniqueKey(key: unknown): string {
  return validateText(key, "uniqueKey", MAX_UNIQUE_KEY_LENGTH);
}

/** A concurrency or rate limit key ("customer:42"): well-formed text, 1-200 characters. */
export function validateLimitKey(key: unknown, field: string): string {
  return validateText(key, field, MAX_LIMIT_KEY_LENGTH);
}

/** A search text: "" means no search. */
export function validateSearchText(text: unknown): string {
  return validateText(text, "text", MAX_SEARCH_TEXT_LENGTH, 0);
}

/** An integer in [min, max], or a ValidationError naming `field`. */
export function validateInt(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(`${field} must be an integer between ${min} and ${max}; got ${JSON.stringify(v)}`, field);
  }
  return v;
}

/** Refuses values JSON would silently change: functions, symbols, NaN/Infinity, undefined in arrays. */
function assertJsonFaithful(v: unknown, path: string, depth = 0): void {
  if (depth > 64) throw new ValidationError(`${path} is nested too deeply`, path);
  switch (typeof v) {
    case "function":
    case "symbol":
      throw new ValidationError(`${path} is a ${typeof v}, which JSON cannot carry`, path);
    case "number":
      if (!Number.isFinite(v)) throw new ValidationError(`${path} is ${v}, which JSON cannot carry`, path);
      return;
    case "object":
      if (v === null || typeof (v as { toJSON?: unknown }).toJSON === "function") return;
      if (Array.isArray(v)) {
        v.forEach((x, i) => {
          if (x === undefined) throw new ValidationError(`${path}[${i}] is undefined, which JSON cannot carry`, path);
          assertJsonFaithful(x, `${path}[${i}]`, depth + 1);
        });
        return;
      }
      for (const [k, x] of Object.entries(v)) if (x !== undefined) assertJsonFaithful(x, `${path}.${k}`, depth + 1);
      return;
    default:
      return;
  }
}

/** Round-trips a value through JSON; refuses what JSON cannot carry faithfully or what exceeds MAX_PAYLOAD_BYTES. */
export function toJsonValue<T>(value: T, field: string): T {
  let text: string | undefined;
  try {
    assertJsonFaithful(value, field);
    text = JSON.stringify(value);
  } catch (e) {
    if (e instanceof ValidationError) throw e;
    throw new ValidationError(`${field} must be JSON-serialisable: ${(e as Error).message}`, field);
  }
  if (text === undefined) throw new ValidationError(`${field} must be JSON-serialisable`, field);
  if (text.length > MAX_PAYLOAD_BYTES) {
    throw new ValidationError(`${field} is ${text.length} bytes serialised; the limit is ${MAX_PAYLOAD_BYTES}`, field);
  }
  return JSON.parse(text) as T;
}

/**
 * Metadata: a JSON object whose keys and string values are well-formed
 * text without U+0000, so that it reads back unchanged on every backend
 * (PostgreSQL keeps it as jsonb, which can filter on it).
 */
export function validateMetadata(metadata: unknown, field = "metadata"): Record<string, unknown> {
  const value = toJsonValue(metadata ?? {}, field);
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ValidationError(`${field} must be an object`, field);
  const check = (v: unknown, path: string): void => {
    if (typeof v === "string") {
      if (v.includes("\u0000") || SURROGATE.test(v)) throw new ValidationError(`${path} must be well-formed text without U+0000`, field);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => check(x, `${path}[${i}]`));
    } else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (k.includes("\u0000") || SURROGATE.test(k)) throw new ValidationError(`${path} has a key that is not well-formed text without U+0000`, field);
        check(x, `${path}.${k}`);
      }
    }
  };
  check(value, field);
  return value as Record<string, unknown>;
}

/**
 * Text the engine stores on its own account (error names and messages,
 * history reasons, worker ids): U+0000 and unpaired surrogates become
 * U+FFFD, so every backend keeps the same characters.
 */
export function cleanText(s: string): string {
  const t = s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
  return SURROGATE.test(t) ? t.replace(/\p{Surrogate}/gu, "\uFFFD") : t;
}

export function describe(v: unknown): string {
  if (typeof v !== "string") return typeof v;
  const s = v.length > 40 ? `${v.slice(0, 40)}… (${v.length} chars)` : v;
  return JSON.stringify(s);
}
