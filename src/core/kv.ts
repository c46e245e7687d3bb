/**
 * KeyValue: a small key-value store kept beside the jobs, in the same
 * store, so every process and invocation of a deployment sees the same
 * entries. The dashboard keeps its sessions' state (logouts, the "end all
 * sessions" epoch, the cookie secret) and its throttle counters here.
 *
 * Not a cache and not a database: a few short strings per key, read and
 * written one at a time, each call one round trip. Entries may expire;
 * an expired entry is never read back and the store purges it.
 *
 *   await storage.kv.set("flag", "on", { ttlMs: 60_000 });
 *   const { count, resetAt } = await storage.kv.hit("login-fail:203.0.113.9", 60_000);
 */
import type { Clock } from "./clock.js";
import type { KvHit, StorageDriver } from "./driver.js";
import { validateInt, validateText } from "./rules.js";

export type { KvHit } from "./driver.js";

/** Longest key, in UTF-16 units. */
export const MAX_KV_KEY = 512;
/** Longest value, in UTF-16 units. */
export const MAX_KV_VALUE = 65_536;
/** Longest lifetime or window: a year. */
const MAX_TTL_MS = 366 * 24 * 3_600_000;

export interface KvSetOptions {
  /** The entry expires this many ms from now; absent: it stays until deleted. */
  ttlMs?: number;
}

export class KeyValue {
  /** @internal Storage makes it. */
  constructor(
    private readonly driver: StorageDriver,
    private readonly clock: Clock,
  ) {}

  /** The value of `key`, or undefined when it is absent or expired. */
  async get(key: string): Promise<string | undefined> {
    return this.driver.kvGet(checkKey(key), this.clock.now());
  }

  /** Sets `key`, replacing any value and expiry it had. */
  async set(key: string, value: string, options: KvSetOptions = {}): Promise<void> {
    const now = this.clock.now();
    await this.driver.kvSet(checkKey(key), checkValue(value), expiry(options, now), now);
  }

  /** Sets `key` when it is absent (or expired), atomically across processes. Returns the value it holds after the call. */
  async add(key: string, value: string, options: KvSetOptions = {}): Promise<string> {
    const now = this.clock.now();
    return this.driver.kvAdd(checkKey(key), checkValue(value), expiry(options, now), now);
  }

  /** Removes `key`. Returns whether there was an entry. */
  async delete(key: string): Promise<boolean> {
    return this.driver.kvDelete(checkKey(key));
  }

  /**
   * Counts one event for `key` in a fixed window of `windowMs`: the first
   * hit starts the window, hits in it add one, the first hit after it
   * starts the next. Atomic across processes. A key used as a counter
   * holds only that count: do not `set` it too.
   */
  async hit(key: string, windowMs: number): Promise<KvHit> {
    return this.driver.kvHit(checkKey(key), validateInt(windowMs, "windowMs", 1, MAX_TTL_MS), this.clock.now());
  }
}

function checkKey(key: unknown): string {
  return validateText(key, "key", MAX_KV_KEY);
}

function checkValue(value: unknown): string {
  return validateText(value, "value", MAX_KV_VALUE, 0);
}

function expiry(options: KvSetOptions, now: number): number | undefined {
  return options.ttlMs === undefined ? undefined : now + validateInt(options.ttlMs, "ttlMs", 1, MAX_TTL_MS);
}
