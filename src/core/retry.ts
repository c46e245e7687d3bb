/**
 * Retry policies. The core decides when a failed attempt runs again; stores
 * only persist the `runAt` it computes.
 *
 * A policy stored on a job must be data (exponential or fixed), since any
 * process may run the job's next attempt. A custom function belongs to the
 * worker that registers it.
 */

import { backoffMs } from "./backoff.js";
export type RetrySpec = { kind: "exponential"; baseMs: number; maxMs: number; jitter: number } | { kind: "fixed"; delayMs: number };

export interface RetryPolicy {
  /** Milliseconds to wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed. */
  delayFor(attempt: number, error: unknown): number;
}

export class ExponentialBackoff implements RetryPolicy {
  /**
   * delay = min(maxMs, baseMs * 2^(attempt-1)), then spread by ±jitter/2 so
   * that jobs failing together do not retry together.
   */
  constructor(
    readonly baseMs = 1000,
    readonly maxMs = 3600_000,
    readonly jitter = 0.2,
    private readonly random: () => number = Math.random,
  ) {}
  delayFor(attempt: number, _error?: unknown): number {
    return backoffMs(attempt, { baseMs: this.baseMs, maxMs: this.maxMs, jitter: this.jitter, random: this.random });
  }
  toSpec(): RetrySpec {
    return { kind: "exponential", baseMs: this.baseMs, maxMs: this.maxMs, jitter: this.jitter };
  }
}

export class FixedBackoff implements RetryPolicy {
  constructor(readonly delayMs: number) {}
  delayFor(_attempt?: number, _error?: unknown): number {
    return this.delayMs;
  }
  toSpec(): RetrySpec {
    return { kind: "fixed", delayMs: this.delayMs };
  }
}

export class CustomBackoff implements RetryPolicy {
  constructor(private readonly fn: (attempt: number, error: unknown) => number) {}
  delayFor(attempt: number, error: unknown): number {
    const d = this.fn(attempt, error);
    return Number.isFinite(d) && d > 0 ? Math.round(d) : 0;
  }
}

/** Factories, for `new Job(name, args, { retry: RetryPolicy.fixed(500) })`. */
export const RetryPolicy = {
  exponential(options: { baseMs?: number; maxMs?: number; jitter?: number } = {}): ExponentialBackoff {
    return new ExponentialBackoff(options.baseMs, options.maxMs, options.jitter);
  },
  fixed(delayMs: number): FixedBackoff {
    return new FixedBackoff(delayMs);
  },
  custom(fn: (attempt: number, error: unknown) => number): CustomBackoff {
    return new CustomBackoff(fn);
  },
  fromSpec(spec: RetrySpec): RetryPolicy {
    return spec.kind === "fixed" ? new FixedBackoff(spec.delayMs) : new ExponentialBackoff(spec.baseMs, spec.maxMs, spec.jitter);
  },
};

export const defaultRetryPolicy: RetryPolicy = new ExponentialBackoff();
