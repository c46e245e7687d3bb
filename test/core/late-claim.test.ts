/**
 * A claim answered a lease or more after it was sent (held up in a network
 * partition and applied late with the `now` it carried) brings jobs whose
 * leases have already run out: the server does not run them, says so with
 * job:lost, and the jobs come back through the ordinary reclaim of expired
 * leases and run once.
 */
import { expect, it } from "vitest";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger } from "../../src/index.js";
import type { StorageDriver } from "../../src/core/driver.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("jobs from a claim answered after its lease ran out are not run; they are reclaimed and run once", async () => {
  const backend = memoryBackend();
  let slowClaims = 1;
  const slow = new Proxy(backend, {
    get(target, prop, receiver) {
      if (prop === "claim")
        return async (...args: Parameters<StorageDriver["claim"]>) => {
          const records = await target.claim(...args);
          if (records.length > 0 && slowClaims-- > 0) await sleep(400);
          return records;
        };
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const storage = new Storage(slow);
  const runs: string[] = [];
  const server = new BackgroundJobServer(
    storage,
    new WorkerRegistry().register("work", async (job) => {
      runs.push(job.id);
      return WorkerResult.success();
    }),
    new ServerConfig("late-claim").workerCount(1).leaseDuration(200).schedulerInterval(50).pollingInterval(10).clockSync(false).logger(silentLogger),
  );
  const lost: string[] = [];
  server.on("job:lost", (e) => lost.push(`${e.id}: ${e.reason}`));
  const id = await storage.enqueue(new Job("work", []));
  await server.start();
  try {
    for (let i = 0; i < 100 && runs.length === 0; i++) await sleep(20);
    expect(lost).toEqual([`${id}: claim answered after its lease ran out`]);
    expect(runs).toEqual([id]);
    const [record] = await storage.driver.get([id]);
    expect(record?.state).toBe("succeeded");
    expect(record?.history.some((e) => e.reason?.startsWith("lease expired"))).toBe(true);
  } finally {
    await server.stop(0);
    await storage.close();
  }
});
