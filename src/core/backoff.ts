/**
 * One exponential backoff: `min(maxMs, baseMs * 2^(attempt-1))`, spread by
 * ±jitter/2 so that callers failing together do not come back together.
 *
 *   backoffMs(3, { baseMs: 1000, maxMs: 60_000 })  // 4000
 *
 * Every doubling delay in qml uses it: retry policies (retry.ts), the
 * completer's and the server's retries against a failing store, the idle
 * server's polls, the Node server's start-up retries and the serverless
 * consumer's redeliveries (1, 2, 4 … 60 s by delivery attempt).
 */

export interface BackoffOptions {
  /** Delay after the first attempt, in ms. */
  baseMs: number;
  /** The cap, in ms. */
  maxMs: number;
  /** 0 (default) to 1: the delay is spread over ±jitter/2 of itself. */
  jitter?: number;
  /** Source of randomness for the jitter (default Math.random). */
  random?: () => number;
}

/** Delay in ms before attempt `attempt + 1`, after attempt `attempt` (1-based) failed. */
export function backoffMs(attempt: number, o: BackoffOptions): number {
  const n = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;
  // 2^(n-1) overflows to Infinity long before it matters; the cap takes it.
  const raw = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(n - 1, 1023));
  const jitter = Math.min(1, Math.max(0, o.jitter ?? 0));
  const spread = jitter === 0 ? 0 : raw * jitter * ((o.random ?? Math.random)() - 0.5);
  return Math.max(0, Math.round(raw + spread));
}
