/**
 * What flows cost in store round trips (issue 17: "limits and flows cost no
 * more than one extra store round trip per claim"): a server runs 200 plain
 * jobs, then a flow of a parent and 200 children, on a driver that counts
 * its calls. Claims and completions are the same kind and about the same
 * number per job; what a flow adds is the settling of its parent (a few
 * calls per completion batch that finished children, none per claim) and
 * one list call per maintenance beat.
 */
import { expect, it } from "vitest";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger } from "../../src/index.js";
import type { StorageDriver } from "../../src/core/driver.js";

function counting(inner: StorageDriver): { driver: StorageDriver; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const driver = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { driver, calls };
}

async function run(enqueue: (storage: Storage) => Promise<string>): Promise<Map<string, number>> {
  const { driver, calls } = counting(memoryBackend());
  const storage = new Storage(driver);
  const registry = new WorkerRegistry().register("work", () => WorkerResult.success(1)).register("parent", () => WorkerResult.success(2));
  const server = new BackgroundJobServer(storage, registry, new ServerConfig("costs").workerCount(10).pollingInterval(50).logger(silentLogger));
  const last = await enqueue(storage);
  const done = new Promise<void>((resolve) => server.on("job:succeeded", ({ job }) => job.id === last && resolve()));
  calls.clear();
  await server.start();
  await done;
  await server.stop();
  return calls;
}

it("a flow adds no call per claim: claims per job match plain jobs; the parent's settling is a handful of calls", async () => {
  const N = 200;
  const plain = await run(async (storage) => (await storage.enqueue(Array.from({ length: N + 1 }, (_, i) => new Job("work", [i])))).at(-1)!);
  const flow = await run(
    async (storage) =>
      (await storage.enqueueFlow({ job: new Job("parent"), children: Array.from({ length: N }, (_, i) => ({ job: new Job("work", [i]) })) })).id,
  );
  const perJob = (m: Map<string, number>, k: string) => (m.get(k) ?? 0) / (N + 1);
  // The same kind of claim, about as many per job (batching varies with timing).
  expect(perJob(flow, "claim")).toBeLessThanOrEqual(perJob(plain, "claim") * 1.5 + 0.05);
  expect(perJob(flow, "complete")).toBeLessThanOrEqual(perJob(plain, "complete") * 1.5 + 0.05);
  // Settling the parent: dependents, reads of the waiter and its children, one transition, per batch that finished children.
  const settling = (flow.get("dependents") ?? 0) + (flow.get("transition") ?? 0);
  expect(flow.get("transition")).toBeGreaterThanOrEqual(1);
  expect(settling).toBeLessThanOrEqual((flow.get("complete") ?? 0) + 1);
  // Two reads per settling (the waiter, then what it waits for), never one per child.
  expect(flow.get("get") ?? 0).toBeLessThanOrEqual(2 * (flow.get("dependents") ?? 0));
  expect(plain.get("dependents") ?? 0).toBe(0);
  expect(plain.get("transition") ?? 0).toBe(0);
});
