/**
 * Shared by the chaos test files: the short/long switch, the one line of
 * figures each test prints, and waiting on state that lives in another
 * process or in a store (where no event reaches the test).
 *
 * Short variants run in `npm test`; `QML_CHAOS_LONG=1` (set by run.ts,
 * `npm run chaos`) runs the issue's full numbers. With QML_CHAOS_REPORT set
 * to a file, every figures line is also appended there as JSON, for run.ts
 * to summarise.
 */
import { appendFileSync } from "node:fs";

export const LONG = process.env.QML_CHAOS_LONG === "1";

/** The short or the long value. */
export const scale = <T>(short: T, long: T): T => (LONG ? long : short);

/** Test timeout: short variants stay far below a minute; long ones get what they need. */
export const timeout = (shortMs: number, longMs: number) => scale(shortMs, longMs);

export type Figures = Record<string, string | number | boolean>;

/** Prints `[chaos] <name>: k=v …` (and appends it to QML_CHAOS_REPORT). */
export function figures(name: string, f: Figures, note?: string): string {
  const line = `[chaos] ${name}: ${Object.entries(f)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ")}${note ? ` (${note})` : ""}${LONG ? "" : " [short]"}`;
  console.log(line);
  const file = process.env.QML_CHAOS_REPORT;
  if (file) appendFileSync(file, `${JSON.stringify({ name, long: LONG, figures: f, note, line })}\n`);
  return line;
}

/**
 * Polls `fn` until it returns something other than undefined, or gives up
 * after `timeoutMs` and returns undefined (the caller asserts, so that the
 * figures are printed even when a run fails).
 */
export async function until<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 50): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Random integer in [min, max]. */
export const between = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));

export const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/** A short random suffix for ids, prefixes and schemas. */
export const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
