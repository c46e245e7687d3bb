import { describe, expect, it } from "vitest";
import { Job, JobState, ManualClock, Storage, memoryBackend } from "../../src/index.js";
import { RATE_COUNT_KEEP_MS } from "../../src/core/driver.js";
import { runStorageConformance } from "./conformance.js";
import { runKvConformance } from "./kv-conformance.js";

runStorageConformance("memory", async (clock) => new Storage(memoryBackend(), { clock }));
runKvConformance("memory", async (clock) => new Storage(memoryBackend(), { clock }));

describe("memory: rate counts", () => {
  const T0 = Date.UTC(2030, 0, 1);
  const rate = { rateLimit: { key: "api", limit: 1, interval: 1000 } };

  /** A window's start taken at T0, housekeeping at `housekeepingAt`, then a second job claimed at T0 again. */
  async function secondStartAtT0(housekeepingAt: number): Promise<JobState> {
    const storage = new Storage(memoryBackend(), { clock: new ManualClock(T0) });
    const claim = () => storage.driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 60_000, now: T0 });
    await storage.enqueue(new Job("r", [1], rate));
    expect((await claim()).length).toBe(1);
    await storage.driver.reclaimExpired(housekeepingAt, 10);
    const id = await storage.enqueue(new Job("r", [2], rate));
    await claim();
    return (await storage.get(id))!.state;
  }

  it("are kept RATE_COUNT_KEEP_MS past the last window, and forgotten then (a key used once does not stay for the process's life)", async () => {
    // Kept: the window's one start is taken, so the second job waits for the next window.
    expect(await secondStartAtT0(T0 + 1000 + RATE_COUNT_KEEP_MS - 1)).toBe(JobState.Scheduled);
    // Forgotten: only a clock put back past the keep can tell, and it starts afresh.
    expect(await secondStartAtT0(T0 + 1000 + RATE_COUNT_KEEP_MS)).toBe(JobState.Processing);
  });
});
