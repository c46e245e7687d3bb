/**
 * Adaptive prefetch (the default): the target from observed run times and
 * claim round trips, and what a server does with it on a slow store.
 */
import { describe, expect, it } from "vitest";
import { AUTO_PREFETCH_MAX, AdaptivePrefetch, HOLD_ROUND_TRIPS } from "../../src/core/prefetch.js";
import { SlowClaims, runBacklog } from "./slow-claims.js";

describe("AdaptivePrefetch", () => {
  it("holds nothing before it has seen a full claim and a run", () => {
    const p = new AdaptivePrefetch(10);
    expect(p.target).toBe(0);
    p.observeRun(1);
    expect(p.target).toBe(0);
    p.observeClaim(2, 10, 3); // a short claim: no backlog
    expect(p.target).toBe(0);
    p.observeClaim(2, 10, 10);
    expect(p.target).toBe(Math.floor((HOLD_ROUND_TRIPS * 10 * 2) / 1));
  });

  it("holds what the workers start within two round trips: short jobs many, long jobs none", () => {
    const short = new AdaptivePrefetch(20);
    short.observeRun(0.5);
    short.observeClaim(1, 20, 20);
    expect(short.target).toBe(80); // 20 workers start 40 jobs per 1 ms round trip
    const long = new AdaptivePrefetch(20);
    long.observeRun(50);
    long.observeClaim(1, 20, 20);
    expect(long.target).toBe(0); // 20 workers start 0.4 jobs per round trip
  });

  it("never holds more than AUTO_PREFETCH_MAX; a no-op run counts as a microsecond, not as zero", () => {
    const p = new AdaptivePrefetch(100);
    p.observeRun(0);
    p.observeClaim(5, 100, 100);
    expect(p.target).toBe(AUTO_PREFETCH_MAX);
    expect(Number.isFinite(p.target)).toBe(true);
  });

  it("holds no more than the jobs seen to finish here per round trip (the engine's own time counts), measured over a backlog", () => {
    const p = new AdaptivePrefetch(20);
    p.observeClaim(2, 20, 20);
    // No-op runs: by run time alone, 20 workers would start 40,000 jobs per 2 ms round trip.
    let t = 0;
    for (let i = 0; i < 200; i++) p.observeRun(0.001, (t += 0.5)); // one job finished every 0.5 ms
    expect(p.target).toBe(Math.floor(HOLD_ROUND_TRIPS * 2 * 2)); // 2 jobs/ms × 2 ms, twice
    // Without a backlog the rate is not measured, and the target is 0.
    const idle = new AdaptivePrefetch(20);
    idle.observeClaim(2, 20, 5);
    for (let i = 0; i < 200; i++) idle.observeRun(0.001, i);
    expect(idle.target).toBe(0);
  });

  it("follows the run time as it changes, and drops to 0 as soon as a claim comes back short", () => {
    const p = new AdaptivePrefetch(10);
    p.observeRun(1);
    p.observeClaim(1, 10, 10);
    const before = p.target;
    expect(before).toBe(20);
    for (let i = 0; i < 200; i++) p.observeRun(10); // jobs got ten times longer
    expect(p.target).toBeLessThan(before);
    expect(p.target).toBe(2);
    p.observeClaim(1, 30, 29);
    expect(p.target).toBe(0);
    p.observeRun(1);
    expect(p.target).toBe(0); // runs alone do not bring it back: only a full claim does
  });
});

describe("a server at its default prefetch", () => {
  it("with a backlog of short jobs behind slow claims, holds jobs ahead of its workers (bounded)", async () => {
    // 4 workers, 1 ms jobs, 10 ms claims: the workers start about 40 jobs per round trip.
    const backend = new SlowClaims(10);
    await runBacklog(backend, (c) => c.workerCount(4), 600, 1);
    expect(backend.maxHeld).toBeGreaterThan(4);
    expect(backend.maxHeld).toBeLessThanOrEqual(4 + AUTO_PREFETCH_MAX);
  });

  it("with jobs long beside a claim, holds no more than its workers run", async () => {
    // 4 workers, 40 ms jobs, 2 ms claims: 0.2 jobs started per round trip, none held.
    const backend = new SlowClaims(2);
    await runBacklog(backend, (c) => c.workerCount(4), 40, 40);
    expect(backend.maxHeld).toBeLessThanOrEqual(4);
  });
});
