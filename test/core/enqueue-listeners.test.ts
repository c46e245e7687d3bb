/**
 * onEnqueue listeners: confirmed enqueues by default; `early` listeners hear
 * of an insert as soon as it is sent where the backend runs calls in order
 * (the driver's `ordered`), and then not again; elsewhere when confirmed. Once per
 * enqueue either way.
 */
import { describe, expect, it } from "vitest";
import { Job, Storage, type JobRecord } from "../../src/index.js";
import { type InsertResult } from "../../src/core/driver.js";
import { MemoryBackend } from "../../src/adapters/storage/memory/index.js";

/** A memory backend whose inserts wait for `release()`, optionally declaring ordered calls. */
class GatedBackend extends MemoryBackend {
  private gate: Promise<void> = Promise.resolve();
  release: () => void = () => {};
  constructor(readonly ordered: boolean) {
    super();
  }
  hold(): void {
    this.gate = new Promise((r) => (this.release = r));
  }
  override async insert(records: JobRecord[], now: number): Promise<InsertResult[]> {
    await this.gate;
    return super.insert(records, now);
  }
}

async function heard(ordered: boolean) {
  const backend = new GatedBackend(ordered);
  const storage = new Storage(backend);
  const early: string[][] = [];
  const plain: string[][] = [];
  storage.onEnqueue((jobs) => early.push(jobs.map((j) => j.queue)), { early: true });
  storage.onEnqueue((jobs) => plain.push(jobs.map((j) => j.queue)));
  backend.hold();
  const pending = storage.enqueue([new Job("a", [], { queue: "q1" }), new Job("b", [], { queue: "q2" })]);
  await new Promise((r) => setTimeout(r, 10));
  const beforeReply = { early: early.length, plain: plain.length };
  backend.release();
  await pending;
  return { beforeReply, early, plain };
}

describe("enqueue listeners", () => {
  it("on a backend whose calls run in order, an early listener hears of the insert when it is sent, and only then", async () => {
    const r = await heard(true);
    expect(r.beforeReply).toEqual({ early: 1, plain: 0 });
    expect(r.early).toEqual([["q1", "q2"]]);
    expect(r.plain).toEqual([["q1", "q2"]]);
  });

  it("elsewhere an early listener hears of it when it is confirmed, like any other", async () => {
    const r = await heard(false);
    expect(r.beforeReply).toEqual({ early: 0, plain: 0 });
    expect(r.early).toEqual([["q1", "q2"]]);
    expect(r.plain).toEqual([["q1", "q2"]]);
  });

  it("a failed insert was heard of early (a wake-up for nothing) and is never confirmed", async () => {
    class Failing extends GatedBackend {
      override async insert(): Promise<InsertResult[]> {
        throw new Error("store down");
      }
    }
    const storage = new Storage(new Failing(true));
    const early: number[] = [];
    const plain: number[] = [];
    storage.onEnqueue((jobs) => early.push(jobs.length), { early: true });
    storage.onEnqueue((jobs) => plain.push(jobs.length));
    await expect(storage.enqueue(new Job("a", []))).rejects.toThrow("store down");
    expect(early).toEqual([1]);
    expect(plain).toEqual([]);
  });
});
