/** Servers align with the store's clock, so a skewed machine clock does not reclaim live leases early. */
import { expect, it } from "vitest";
import { Job, Storage, WorkerRegistry, tick } from "../../src/index.js";
import { StoreAlignedClock } from "../../src/core/clock.js";
import { MemoryBackend } from "../../src/adapters/storage/memory/index.js";
import { testServer, waitForEvents } from "./helpers.js";

/** A store whose clock is `skew` ms ahead of this machine's (i.e. this machine is behind). */
class SkewedBackend extends MemoryBackend {
  constructor(private readonly skew: number) {
    super();
  }
  async serverTime(): Promise<number> {
    return Date.now() + this.skew;
  }
}

for (const skew of [5 * 60_000, -5 * 60_000]) {
  it(`a machine ${skew > 0 ? "5 min behind" : "5 min ahead of"} the store takes leases on the store's clock`, async () => {
    const storage = new Storage(new SkewedBackend(skew));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const registry = new WorkerRegistry().register("hold", () => gate);
    const id = await storage.enqueue(new Job("hold", []));
    const server = testServer(storage, registry, (c) => c.leaseDuration(60_000).clockSync(true));
    const started = waitForEvents(server, "job:start");
    await server.start();
    await started;
    const job = (await storage.get(id))!;
    const storeNow = Date.now() + skew;
    // The lease runs for 60 s of store time, whatever this machine's clock says.
    expect(Math.abs(job.leaseUntil!.getTime() - (storeNow + 60_000))).toBeLessThan(5_000);
    // A reclaimer on the store's clock sees a live lease.
    expect(await storage.driver.reclaimExpired(storeNow, 10)).toBe(0);
    release();
    await server.stop();
  });
}

it("tick() moves the platform's deadline onto the store's clock", async () => {
  const storage = new Storage(new SkewedBackend(10 * 60_000));
  let ran = 0;
  const registry = new WorkerRegistry().register("t", () => {
    ran++;
  });
  await storage.enqueue(new Job("t", [], { timeout: 1000 }));
  // 5 s of budget on this machine's clock: enough for a 1 s job, even though
  // the store's clock is 10 min ahead.
  const r = await tick({ storage, registry, deadline: Date.now() + 5000, safetyMs: 500 });
  expect(r.deferred).toBe(0);
  expect(ran).toBe(1);
});

it("measures the offset from the middle of the round trip", async () => {
  let t = 1000;
  const clock = new StoreAlignedClock({ now: () => (t += 10) });
  const offset = await clock.sync(async () => 5_000);
  // before = 1010, after = 1020: the store read 5000 at local 1015.
  expect(offset).toBe(3985);
  expect(clock.now()).toBe(1030 + 3985);
  expect(await new StoreAlignedClock({ now: () => 0 }).sync(async () => undefined)).toBe(0);
});
