/**
 * Flag and argument parsers. They turn text into the types the core takes
 * and refuse only what is not that type (JSON that does not parse, a
 * number that is not one): ranges, names and states are the core's to
 * judge, so `qml` refuses exactly what the library and the REST API refuse,
 * with the same messages.
 */
import { InvalidArgumentError } from "commander";

export function jsonArray(raw: string): unknown[] {
  const value = json(raw);
  if (!Array.isArray(value)) throw new InvalidArgumentError(`arguments must be a JSON array, e.g. '["a@b.c", 2]'`);
  return value;
}

export function jsonObject(raw: string): Record<string, unknown> {
  const value = json(raw);
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidArgumentError(`must be a JSON object, e.g. '{"tenant":"acme"}'`);
  return value as Record<string, unknown>;
}

/** Any JSON value (an event's data). */
export function jsonValue(raw: string): unknown {
  return json(raw);
}

function json(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch (e) {
    throw new InvalidArgumentError(`not valid JSON (${(e as Error).message})`);
  }
}

/** A number as JSON writes one; whether it is an integer in range is the core's call. */
export function number(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("expected a number");
  return n;
}

export function date(raw: string): Date {
  const d = new Date(raw);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError("expected a date, e.g. 2030-01-31T09:00:00Z");
  return d;
}

/** Comma-separated and repeatable: `--state failed,deleted --state scheduled`. */
export function list(raw: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  ];
}
