/** The memory backend keeps finished jobs up to a count and an age, then prunes them with their unique keys. */
import { expect, it } from "vitest";
import { Job, JobState, ManualClock, Storage, memoryBackend } from "../../src/index.js";

async function finish(storage: Storage, clock: ManualClock, n: number, uniquePrefix?: string): Promise<string[]> {
  const ids = await storage.enqueue(Array.from({ length: n }, (_, i) => new Job("r", [i], uniquePrefix ? { uniqueKey: `${uniquePrefix}${i}` } : {})));
  const claimed = await storage.driver.claim({ queues: ["default"], limit: n, owner: "w", leaseMs: 1000, now: clock.now() });
  await storage.driver.complete(
    claimed.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" })),
    clock.now(),
  );
  return ids;
}

it("keeps at most maxFinishedJobs finished jobs, oldest pruned first", async () => {
  const clock = new ManualClock();
  const storage = new Storage(memoryBackend({ maxFinishedJobs: 100 }), { clock });
  const first = await finish(storage, clock, 60, "a");
  clock.advance(1000);
  const second = await finish(storage, clock, 60, "b");
  const st = await storage.stats();
  expect(st.states.succeeded).toBe(100);
  expect(st.total).toBe(100);
  expect(await storage.get(first[0]!)).toBeNull();
  expect(await storage.get(second.at(-1)!)).not.toBeNull();
  // A pruned job's unique key is free again.
  expect(await storage.enqueue(new Job("r", [], { uniqueKey: "a0" }))).not.toBe(first[0]);
});

it("prunes finished jobs older than finishedJobTtlMs; live jobs stay", async () => {
  const clock = new ManualClock();
  const storage = new Storage(memoryBackend({ finishedJobTtlMs: 60_000 }), { clock });
  const old = await finish(storage, clock, 10);
  const waiting = await storage.enqueue(new Job("r", []));
  clock.advance(60_001);
  await finish(storage, clock, 1); // any write prunes
  expect(await storage.get(old[0]!)).toBeNull();
  expect(await storage.get(waiting)).not.toBeNull();
  expect((await storage.stats()).states.succeeded).toBe(1);
});

it("memory stays flat across 10,000 processed jobs", async () => {
  const clock = new ManualClock();
  const storage = new Storage(memoryBackend({ maxFinishedJobs: 500 }), { clock });
  for (let round = 0; round < 20; round++) await finish(storage, clock, 500);
  expect((await storage.stats()).total).toBe(500);
});

it("with maxFinishedJobs 0, the completion deletes finished jobs and still counts them", async () => {
  const clock = new ManualClock();
  const storage = new Storage(memoryBackend({ maxFinishedJobs: 0 }), { clock });
  const ids = await finish(storage, clock, 3, "z");
  for (const id of ids) expect(await storage.get(id)).toBeNull();
  expect((await storage.stats()).total).toBe(0);
  expect((await storage.stats({ hours: 1 })).perHour.reduce((a, b) => a + b.succeeded, 0)).toBe(3);
  expect(await storage.enqueue(new Job("r", [], { uniqueKey: "z0" }))).not.toBe(ids[0]);
});
