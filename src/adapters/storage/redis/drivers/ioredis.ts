/**
 * The TCP driver: ioredis, for Node. Loaded only when a `redis://` or
 * `rediss://` URL is used (createRedisStorage imports this module
 * dynamically), so a Workers bundle never contains ioredis or `node:net`.
 *
 * Client settings and why:
 * - no auto-pipelining (by default): the connection pipelines anyway (a
 *   command goes out at once, replies come back in order), and ioredis's
 *   auto-pipelining sends one batch at a time: a claim issued while a
 *   completion's batch was in flight waited for its replies. Off, the
 *   latency phase of `npm run bench` drops by ~0.2 ms (two round trips)
 *   and processing throughput rises ~1.5x (README, "Benchmarks").
 * - maxRetriesPerRequest 1 and a short reconnect backoff: with Redis down,
 *   a call fails within about a second (StorageUnavailableError) instead
 *   of queueing; the core's own retry (processor.flush) takes it from there.
 * - commandTimeout: a reply that does not come fails the call.
 * - `error` events are swallowed here: each failing call reports its own.
 * - command names go out upper-cased: ioredis keys its reply transformers
 *   by lower-case name (HGETALL would come back as an object) and callers
 *   of `command` expect Redis's reply as it is.
 */
import { Redis, type Cluster, type RedisOptions } from "ioredis";
import { isNoScript, toStorageError, type LuaScript, type RedisDriver, type RedisReply } from "../driver.js";

export interface IoredisDriverOptions {
  url: string;
  /** Connections, used round-robin (default 1). */
  poolSize?: number;
  /** Default 5000 ms. */
  commandTimeoutMs?: number;
  /** Default false (see above). */
  autoPipelining?: boolean;
  /** Passed to ioredis as is, over the settings above. */
  redisOptions?: RedisOptions;
}

export class IoredisDriver implements RedisDriver {
  readonly kind = "ioredis";
  private readonly clients: Array<Redis | Cluster>;
  private readonly owned: boolean;
  private next = 0;
  private closed = false;
  private readonly subscribers = new Set<Redis>();
  /** One connection (a Cluster may move commands between nodes' connections). */
  readonly ordered: boolean;

  /** From a URL, or around clients you manage (a `Cluster` works: all our keys share one hash tag). */
  constructor(options: IoredisDriverOptions | { clients: Array<Redis | Cluster> }) {
    if ("clients" in options) {
      if (options.clients.length === 0) throw new TypeError("[qml] [redis] IoredisDriver needs at least one client");
      this.clients = options.clients;
      this.owned = false;
      this.ordered = options.clients.length === 1 && options.clients[0] instanceof Redis;
      return;
    }
    const timeout = options.commandTimeoutMs ?? 5000;
    const n = options.poolSize ?? 1;
    this.owned = true;
    this.ordered = n === 1;
    this.clients = Array.from({ length: n }, () => {
      const client = new Redis(options.url, {
        lazyConnect: true,
        enableAutoPipelining: options.autoPipelining ?? false,
        maxRetriesPerRequest: 1,
        commandTimeout: timeout,
        connectTimeout: timeout,
        retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
        ...options.redisOptions,
      });
      client.on("error", () => {});
      return client;
    });
  }

  private client(): Redis | Cluster {
    if (this.closed) throw toStorageError(new Error("the driver is closed"), this.kind, "command");
    const c = this.clients[this.next]!;
    this.next = (this.next + 1) % this.clients.length;
    return c;
  }

  async evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<RedisReply> {
    const c = this.client();
    try {
      return (await c.evalsha(script.sha, keys.length, ...keys, ...args)) as RedisReply;
    } catch (e) {
      if (!isNoScript(e)) throw toStorageError(e, this.kind, script.name);
    }
    try {
      return (await c.eval(script.body, keys.length, ...keys, ...args)) as RedisReply;
    } catch (e) {
      throw toStorageError(e, this.kind, script.name);
    }
  }

  async command(args: readonly string[]): Promise<RedisReply> {
    const [name, ...rest] = args;
    if (name === undefined) throw new TypeError("[qml] [redis] empty command");
    try {
      return (await this.client().call(name.toUpperCase(), ...rest)) as RedisReply;
    } catch (e) {
      throw toStorageError(e, this.kind, name.toUpperCase());
    }
  }

  /** Sent back to back: one round trip's wait for all of them. */
  async loadScripts(scripts: readonly LuaScript[]): Promise<string[]> {
    try {
      return (await Promise.all(scripts.map((s) => this.client().call("SCRIPT", "LOAD", s.body)))).map(String);
    } catch (e) {
      throw toStorageError(e, this.kind, "SCRIPT LOAD");
    }
  }

  /**
   * A duplicate connection in subscriber mode; ioredis reconnects and
   * resubscribes by itself, so a Redis restart only loses the wake-ups sent
   * while it was down (polling covers those).
   */
  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const base = this.clients[0]!;
    // A Cluster subscribes through its own duplicate; a single node through one of its own.
    const sub = ((base as Redis).duplicate as (o?: Partial<RedisOptions>) => Redis).call(base, {
      lazyConnect: true,
      enableAutoPipelining: false,
      maxRetriesPerRequest: null,
    });
    sub.on("error", () => {});
    sub.on("message", (ch: string, message: string) => {
      if (ch === channel) onMessage(message);
    });
    try {
      await sub.subscribe(channel);
    } catch (e) {
      sub.disconnect();
      throw toStorageError(e, this.kind, "SUBSCRIBE");
    }
    this.subscribers.add(sub);
    return async () => {
      this.subscribers.delete(sub);
      sub.disconnect();
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const sub of this.subscribers) sub.disconnect();
    this.subscribers.clear();
    if (!this.owned) return;
    await Promise.all(
      this.clients.map(async (c) => {
        try {
          if (c.status === "ready") await c.quit();
          else c.disconnect();
        } catch {
          c.disconnect();
        }
      }),
    );
  }
}
