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

/**
 * A clock that follows the store's clock: local time plus an offset measured
 * against `Storage.serverTime()`. Every server computes lease deadlines,
 * reclaims and recurring slots from the store's time, so a machine whose
 * clock is minutes off neither reclaims live leases early nor fires a slot
 * twice.
 */
export class StoreAlignedClock implements Clock {
  offsetMs = 0;
  constructor(readonly base: Clock) {}
  now(): number {
    return this.base.now() + this.offsetMs;
  }
  /** Measures the offset; `serverTime` resolves to the store's time, or undefined when it has none. */
  async sync(serverTime: () => Promise<number | undefined>): Promise<number> {
    const before = this.base.now();
    const t = await serverTime();
    const after = this.base.now();
    if (t === undefined) return this.offsetMs;
    // The store read its clock somewhere in the round trip: assume the middle.
    this.offsetMs = Math.round(t - (before + after) / 2);
    return this.offsetMs;
  }
}
