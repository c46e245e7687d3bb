/**
 * One clock per call: every time the core stores (run_at, lease_until,
 * history) comes from a Clock, so tests can move time instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. For tests. */
export class ManualClock implements Clock {
  private t: number;
  constructor(start: number | Date = Date.UTC(2030, 0, 1)) {
    this.t = typeof start === "number" ? start : start.getTime();
  }
  now(): number {
    return this.t;
  }
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
  set(t: number | Date): void {
    this.t = typeof t === "number" ? t : t.getTime();
  }
}

/** A clock offset from another, to simulate a skewed machine. */
export class SkewedClock implements Clock {
  constructor(
    private readonly base: Clock,
    public offsetMs: number,
  ) {}
  now(): number {
    return this.base.now() + this.offsetMs;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
