/**
 * The storage conformance suite, unchanged, on the SQLite backend over a
 * D1 binding inside workerd (miniflare's local D1): each case gets the
 * database emptied and migrated again (backends.ts, `makeStorage("d1")`).
 * Then what the suite does not reach on D1: SQL that only runs past a
 * limit.
 */
import { describe, expect, it } from "vitest";
import { Job, ManualClock } from "../../src/index.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { runStorageConformance } from "../storage/conformance.js";
import { runKvConformance } from "../storage/kv-conformance.js";
import { makeStorage } from "./backends.js";

runStorageConformance("sqlite (d1)", (clock) => makeStorage("d1", clock));
runKvConformance("sqlite (d1)", (clock) => makeStorage("d1", clock));

describe("sqlite (d1) past the suite", () => {
  it("a batch debouncing a job past HISTORY_LIMIT entries trims its history as the memory backend does (a recursive CTE)", async () => {
    const T0 = Date.UTC(2030, 0, 1);
    const [mem, d1] = await Promise.all([makeStorage("memory", new ManualClock(T0)), makeStorage("d1", new ManualClock(T0))]);
    const job = (n: number) => new Job("d", [n], { uniqueKey: "k", uniqueMode: "debounce", delay: n % 2 ? 1000 : 0 }, `j${n}`);
    for (const storage of [mem, d1]) {
      for (let i = 0; i < 45; i++) await storage.enqueue(job(i));
      await storage.enqueue(Array.from({ length: 8 }, (_, i) => job(100 + i)));
    }
    const [a, b] = await Promise.all([mem.get("j0"), d1.get("j0")]);
    expect(b!.history).toHaveLength(HISTORY_LIMIT);
    expect(b!.toJSON()).toEqual(a!.toJSON());
    await d1.close();
  });
});
