/**
 * The key-value conformance suite (StorageDriver.kv*, Storage.kv): run
 * beside runStorageConformance by every backend's test file, with the same
 * factory. Time is the ManualClock: entries expire because the clock moves.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock, ValidationError, type Storage } from "../../src/index.js";
import type { StorageFactory } from "./conformance.js";

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);

export function runKvConformance(label: string, factory: StorageFactory): void {
  describe(`kv conformance: ${label}`, () => {
    const opened: Storage[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close().catch(() => {})));
    });

    async function fresh(): Promise<{ storage: Storage; clock: ManualClock }> {
      const clock = new ManualClock(T0);
      const storage = await factory(clock);
      opened.push(storage);
      return { storage, clock };
    }

    it("sets, reads back, replaces and deletes a value", async () => {
      const { storage } = await fresh();
      expect(await storage.kv.get("a")).toBeUndefined();
      await storage.kv.set("a", "one");
      expect(await storage.kv.get("a")).toBe("one");
      await storage.kv.set("a", "two");
      expect(await storage.kv.get("a")).toBe("two");
      expect(await storage.kv.delete("a")).toBe(true);
      expect(await storage.kv.delete("a")).toBe(false);
      expect(await storage.kv.get("a")).toBeUndefined();
    });

    it("keeps keys and values as given: Unicode, separators, the empty value, long values", async () => {
      const { storage } = await fresh();
      const entries: Array<[string, string]> = [
        ["revoked:sid-1", ""],
        ["ключ:🔑 {tag} *?[", "значение ✓ \n\t\"'"],
        ["x".repeat(512), "y".repeat(65_536)],
      ];
      for (const [k, v] of entries) await storage.kv.set(k, v);
      for (const [k, v] of entries) expect(await storage.kv.get(k)).toBe(v);
    });

    it("never reads back an expired entry, and a set clears an earlier expiry", async () => {
      const { storage, clock } = await fresh();
      await storage.kv.set("s", "v", { ttlMs: 1_000 });
      clock.advance(999);
      expect(await storage.kv.get("s")).toBe("v");
      clock.advance(1);
      expect(await storage.kv.get("s")).toBeUndefined();
      await storage.kv.set("s", "w", { ttlMs: 1_000 });
      await storage.kv.set("s", "forever");
      clock.advance(10 * 86_400_000);
      expect(await storage.kv.get("s")).toBe("forever");
    });

    it("add sets an absent or expired key and otherwise keeps (and answers) the value there", async () => {
      const { storage, clock } = await fresh();
      expect(await storage.kv.add("secret", "first", { ttlMs: 5_000 })).toBe("first");
      expect(await storage.kv.add("secret", "second")).toBe("first");
      expect(await storage.kv.get("secret")).toBe("first");
      clock.advance(5_000);
      expect(await storage.kv.add("secret", "third")).toBe("third");
      clock.advance(365 * 86_400_000);
      expect(await storage.kv.get("secret")).toBe("third");
    });

    it("concurrent adds agree on one value", async () => {
      const { storage } = await fresh();
      const got = await Promise.all(Array.from({ length: 20 }, (_, i) => storage.kv.add("race", `v${i}`)));
      expect(new Set(got).size).toBe(1);
      expect(await storage.kv.get("race")).toBe(got[0]);
    });

    it("hit counts in a fixed window and starts a new one when it ended", async () => {
      const { storage, clock } = await fresh();
      expect(await storage.kv.hit("fail:a", 60_000)).toEqual({ count: 1, resetAt: T0 + 60_000 });
      clock.advance(30_000);
      expect(await storage.kv.hit("fail:a", 60_000)).toEqual({ count: 2, resetAt: T0 + 60_000 });
      expect(await storage.kv.hit("fail:b", 60_000)).toEqual({ count: 1, resetAt: T0 + 90_000 });
      clock.advance(29_999);
      expect(await storage.kv.hit("fail:a", 60_000)).toEqual({ count: 3, resetAt: T0 + 60_000 });
      clock.advance(1);
      expect(await storage.kv.hit("fail:a", 60_000)).toEqual({ count: 1, resetAt: T0 + 120_000 });
    });

    it("concurrent hits are each counted once", async () => {
      const { storage } = await fresh();
      const got = await Promise.all(Array.from({ length: 25 }, () => storage.kv.hit("burst", 60_000)));
      expect(got.map((h) => h.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      expect(new Set(got.map((h) => h.resetAt))).toEqual(new Set([T0 + 60_000]));
    });

    it("a key that holds no count starts a window; a deleted counter starts over", async () => {
      const { storage } = await fresh();
      await storage.kv.set("plain", "not a number");
      expect(await storage.kv.hit("plain", 1_000)).toEqual({ count: 1, resetAt: T0 + 1_000 });
      await storage.kv.hit("c", 1_000);
      await storage.kv.hit("c", 1_000);
      expect(await storage.kv.delete("c")).toBe(true);
      expect((await storage.kv.hit("c", 1_000)).count).toBe(1);
    });

    it("purges expired entries: many written and expired leave nothing to read", async () => {
      const { storage, clock } = await fresh();
      for (let i = 0; i < 30; i++) await storage.kv.set(`tmp:${i}`, "x", { ttlMs: 10 });
      clock.advance(10);
      await storage.kv.set("after", "y", { ttlMs: 60_000 });
      for (let i = 0; i < 30; i++) expect(await storage.kv.get(`tmp:${i}`)).toBeUndefined();
      expect(await storage.kv.get("after")).toBe("y");
    });

    it("refuses invalid keys, values, lifetimes and windows with a ValidationError", async () => {
      const { storage } = await fresh();
      await expect(storage.kv.get("")).rejects.toBeInstanceOf(ValidationError);
      await expect(storage.kv.set("x".repeat(513), "v")).rejects.toBeInstanceOf(ValidationError);
      await expect(storage.kv.set("k", "a\u0000b")).rejects.toBeInstanceOf(ValidationError);
      await expect(storage.kv.set("k", 5 as unknown as string)).rejects.toBeInstanceOf(ValidationError);
      await expect(storage.kv.set("k", "v", { ttlMs: 0 })).rejects.toBeInstanceOf(ValidationError);
      await expect(storage.kv.hit("k", 1.5)).rejects.toBeInstanceOf(ValidationError);
    });
  });
}
