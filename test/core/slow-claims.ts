/**
 * A memory store whose claims answer late (a store across a network), and a
 * backlog run on it: what the claim loop and prefetch tests measure.
 */
import { expect } from "vitest";
import { Job, Storage, WorkerRegistry, type ServerConfig } from "../../src/index.js";
import { MemoryBackend } from "../../src/adapters/storage/memory/index.js";
import { testServer, waitForEvents } from "./helpers.js";

/** A memory backend whose claims take `delayMs` to answer, counting claims in flight and jobs held (claimed, not yet completed). */
export class SlowClaims extends MemoryBackend {
  inFlight = 0;
  maxInFlight = 0;
  held = 0;
  maxHeld = 0;
  claims = 0;
  constructor(private readonly delayMs: number) {
    super({ maxFinishedJobs: 100_000 });
  }
  override async claim(req: Parameters<MemoryBackend["claim"]>[0]) {
    this.claims++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.delayMs));
      const got = await super.claim(req);
      this.held += got.length;
      this.maxHeld = Math.max(this.maxHeld, this.held);
      return got;
    } finally {
      this.inFlight--;
    }
  }
  override async complete(...args: Parameters<MemoryBackend["complete"]>) {
    const res = await super.complete(...args);
    this.held -= res.filter((r) => r.status === "applied").length;
    return res;
  }
}

export async function runBacklog(backend: SlowClaims, configure: (c: ServerConfig) => ServerConfig, n: number, jobMs = 1): Promise<void> {
  const storage = new Storage(backend);
  const runs = new Map<number, number>();
  const registry = new WorkerRegistry().register("w", async (job) => {
    const i = job.arguments[0] as number;
    runs.set(i, (runs.get(i) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, jobMs));
  });
  await storage.enqueue(Array.from({ length: n }, (_, i) => new Job("w", [i])));
  const server = testServer(storage, registry, configure);
  const done = waitForEvents(server, "job:succeeded", n);
  await server.start();
  await done;
  await server.stop();
  expect(runs.size).toBe(n);
  expect([...runs.values()].every((c) => c === 1)).toBe(true);
}
