/**
 * The store cache: one Storage per Worker env object, or per Lambda
 * container, built on first use and reused by every later invocation.
 *
 * - A build that fails (the store unreachable at a cold start) is not
 *   kept: the next invocation builds again, instead of the isolate or
 *   container failing until it is recycled.
 * - `migrate` runs once, as part of the build; a store whose migration
 *   failed is closed (it must not keep its connections) and built afresh.
 * - On Workers, pick HTTP drivers (Upstash REST, Neon over HTTP): they
 *   hold no connection, and workerd forbids an I/O object (a socket) made
 *   in one request from being used by another.
 */
import type { Storage } from "../../../core/storage.js";

export interface StoreCacheOptions {
  /** Run `storage.migrate()` once, before first use (default false). */
  migrate?: boolean;
  /** False: build on every call (the factory then owns caching and closing). Default true. */
  cache?: boolean;
}

export class StoreCache<Key extends object> {
  private readonly stores = new WeakMap<Key, Promise<Storage>>();

  constructor(private readonly options: StoreCacheOptions = {}) {}

  /** The store of `key`, built with `build` unless one is cached. */
  get(key: Key, build: () => Storage | Promise<Storage>): Promise<Storage> {
    if (this.options.cache === false) return this.open(build);
    let p = this.stores.get(key);
    if (!p) {
      p = this.open(build);
      this.stores.set(key, p);
      p.catch(() => {
        if (this.stores.get(key) === p) this.stores.delete(key);
      });
    }
    return p;
  }

  /** Forgets and closes the store of `key` (tests; the platforms never call it). */
  async close(key: Key): Promise<void> {
    const p = this.stores.get(key);
    this.stores.delete(key);
    const storage = await p?.catch(() => undefined);
    await storage?.close();
  }

  private async open(build: () => Storage | Promise<Storage>): Promise<Storage> {
    const storage = await build();
    if (this.options.migrate) {
      try {
        await storage.migrate();
      } catch (error) {
        await storage.close().catch(() => {});
        throw error;
      }
    }
    return storage;
  }
}
