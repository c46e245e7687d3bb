/**
 * The key-value entries of MemoryBackend (StorageDriver.kvGet and the
 * rest). Synchronous bodies, so each call is atomic in the process.
 *
 * Expired entries are skipped on read and swept on writes: a full sweep
 * once the map has doubled since the last one, so the cost per write stays
 * constant and the map never holds more than twice its live entries (plus
 * a floor of 1,024).
 */
import type { KvHit } from "../../../core/driver.js";

interface Entry {
  value: string;
  expiresAt: number | undefined;
}

export class MemoryKv {
  private readonly entries = new Map<string, Entry>();
  private sweepAt = 1024;

  private live(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt !== undefined && e.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private put(key: string, entry: Entry, now: number): void {
    this.entries.set(key, entry);
    if (this.entries.size < this.sweepAt) return;
    for (const [k, e] of this.entries) if (e.expiresAt !== undefined && e.expiresAt <= now) this.entries.delete(k);
    this.sweepAt = Math.max(1024, this.entries.size * 2);
  }

  get(key: string, now: number): string | undefined {
    return this.live(key, now)?.value;
  }

  set(key: string, value: string, expiresAt: number | undefined, now: number): void {
    if (expiresAt !== undefined && expiresAt <= now) this.entries.delete(key);
    else this.put(key, { value, expiresAt }, now);
  }

  add(key: string, value: string, expiresAt: number | undefined, now: number): string {
    const e = this.live(key, now);
    if (e !== undefined) return e.value;
    this.set(key, value, expiresAt, now);
    return value;
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  hit(key: string, windowMs: number, now: number): KvHit {
    const e = this.live(key, now);
    const count = e !== undefined && e.expiresAt !== undefined ? Number(e.value) : NaN;
    if (Number.isSafeInteger(count) && count >= 0) {
      e!.value = String(count + 1);
      return { count: count + 1, resetAt: e!.expiresAt! };
    }
    const resetAt = now + windowMs;
    this.put(key, { value: "1", expiresAt: resetAt }, now);
    return { count: 1, resetAt };
  }
}
