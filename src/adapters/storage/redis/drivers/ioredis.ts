/**
 * The TCP driver: ioredis, for Node. The ioredis package is loaded when a
 * driver is made for a `redis://` or `rediss://` URL, through Node's own
 * `require` (../../node-require.ts), never by an import: a Workers bundle
 * then never contains ioredis or `node:net`, and miniflare finds no dynamic
 * import to refuse. A bundle for Node passes the package in (`ioredis`).
 *
 * Client settings and why:
 * - no auto-pipelining (by default): the connection pipelines anyway (a
 *   command goes out at once, replies come back in order), and ioredis's
 *   auto-pipelining sends one batch at a time: a claim issued while a
 *   completion's batch is in flight would not be sent until its replies
 *   came back (docs/decisions/redis-autopipelining.md).
 * - maxRetriesPerRequest 1 and a short reconnect backoff: with Redis down,
 *   a call fails within about a second (StorageUnavailableError) instead
 *   of queueing; the core's own retry (processor.flush) takes it from there.
 * - commandTimeout: a reply that does not come fails the call.
 * - `error` events are not logged here: each failing call reports its own.
 *   The last one is kept, though: once ioredis gives up on a call while
 *   disconnected it rejects with MaxRetriesPerRequestError ("Reached the
 *   max retries per request limit"), which hides why (ECONNREFUSED, a DNS
 *   failure, a TLS error); the call's error names the connection's last
 *   error instead, and has it as `cause`.
 * - command names go out upper-cased: ioredis keys its reply transformers
 *   by lower-case name (HGETALL would come back as an object) and callers
 *   of `command` expect Redis's reply as it is.
 *
 * Redis Cluster (`cluster: true`): an ioredis `Cluster` started from the
 * URL (and `clusterNodes`). EVALSHA/EVAL name the instance's base key, so
 * ioredis sends every script to the master of its hash tag's slot (and
 * follows MOVED/ASK when slots move); SCRIPT LOAD goes to every master;
 * SUBSCRIBE goes through the Cluster's own subscriber connection to one
 * node, and classic PUBLISH (what the scripts send) reaches every node of
 * a cluster. A Cluster queues calls while it has no slot map, without a
 * time limit of its own, so here every call has `commandTimeoutMs`.
 */
import type { Cluster, ClusterOptions, Redis, RedisOptions } from "ioredis";
import { nodeRequire } from "../../node-require.js";
import { ConfigError } from "../../../../core/errors.js";
import { isNoScript, toStorageError, type LuaScript, type RedisDriver, type RedisReply } from "../driver.js";

/** What the driver needs of the ioredis package. */
type IoredisModule = { Redis: typeof import("ioredis").Redis; Cluster?: typeof import("ioredis").Cluster };

export interface IoredisDriverOptions {
  url: string;
  /** Connections, used round-robin (default 1). */
  poolSize?: number;
  /** Default 5000 ms. */
  commandTimeoutMs?: number;
  /** Default false (see above). */
  autoPipelining?: boolean;
  /** Passed to ioredis as is, over the settings above (with `cluster`: to each node's connection). */
  redisOptions?: RedisOptions;
  /** The URL is a Redis Cluster node: an ioredis Cluster, started from it and from `clusterNodes`. */
  cluster?: boolean;
  /** More nodes to start from (redis:// or rediss:// URLs). */
  clusterNodes?: readonly string[];
  /** Passed to the ioredis Cluster as is, over the settings above. */
  clusterOptions?: ClusterOptions;
  /** The ioredis package, for bundles that cannot load it at run time (default: loaded on first construction). */
  ioredis?: IoredisModule;
}

export class IoredisDriver implements RedisDriver {
  readonly kind = "ioredis";
  private readonly clients: Array<Redis | Cluster>;
  private readonly owned: boolean;
  private next = 0;
  private closed = false;
  private readonly subscribers = new Set<Redis | Cluster>();
  /** Each owned client's last connection error, until it is ready again. */
  private readonly lastError = new Map<Redis | Cluster, Error>();
  /** One connection (a Cluster may move commands between nodes' connections). */
  readonly ordered: boolean;
  /** Calls go to a Redis Cluster. */
  readonly cluster: boolean;
  /** With a Cluster: the limit on each call (see above); 0 for plain connections, whose commandTimeout does it. */
  private readonly callTimeoutMs: number;

  /** From a URL, or around clients you manage (a `Cluster` works: all our keys share one hash tag). */
  constructor(options: IoredisDriverOptions | { clients: Array<Redis | Cluster> }) {
    if ("clients" in options) {
      if (options.clients.length === 0) throw new TypeError("IoredisDriver needs at least one client");
      this.clients = options.clients;
      this.owned = false;
      this.cluster = options.clients.some(isCluster);
      this.callTimeoutMs = 0;
      // A Cluster may move commands between its nodes' connections: one plain client only.
      this.ordered = options.clients.length === 1 && !this.cluster;
      return;
    }
    const mod = options.ioredis ?? (nodeRequire("ioredis", "redis") as IoredisModule);
    const timeout = options.commandTimeoutMs ?? 5000;
    const n = options.poolSize ?? 1;
    this.owned = true;
    if (options.cluster) {
      const { Cluster } = mod;
      if (!Cluster) throw new TypeError("the ioredis module given has no Cluster");
      if (/[{}]/.test(options.redisOptions?.keyPrefix ?? "") || /[{}]/.test(options.clusterOptions?.keyPrefix ?? "")) {
        throw new ConfigError("an ioredis keyPrefix with braces would move keys to other Redis Cluster slots: use RedisConfig.withKeyPrefix / withHashTag", {
          scope: "redis",
        });
      }
      const seeds = [options.url, ...(options.clusterNodes ?? [])];
      // Credentials and TLS of the first URL hold for the nodes the cluster tells of, too.
      const first = new URL(options.url);
      const auth: RedisOptions = {};
      if (first.username) auth.username = decodeURIComponent(first.username);
      if (first.password) auth.password = decodeURIComponent(first.password);
      if (first.protocol === "rediss:") auth.tls = {};
      this.cluster = true;
      this.ordered = false;
      this.callTimeoutMs = timeout;
      this.clients = Array.from({ length: n }, () => {
        const client = new Cluster(
          seeds.map((u) => {
            const url = new URL(u);
            return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 6379) };
          }),
          {
            lazyConnect: true,
            enableAutoPipelining: options.autoPipelining ?? false,
            clusterRetryStrategy: (times: number) => Math.min(50 * 2 ** times, 2000),
            slotsRefreshTimeout: Math.min(timeout, 2000),
            ...options.clusterOptions,
            redisOptions: {
              maxRetriesPerRequest: 1,
              commandTimeout: timeout,
              connectTimeout: timeout,
              ...auth,
              ...options.redisOptions,
            },
          },
        );
        client.on("error", (e: Error) => this.lastError.set(client, e));
        client.on("ready", () => this.lastError.delete(client));
        return client;
      });
      return;
    }
    const { Redis } = mod;
    this.cluster = false;
    this.callTimeoutMs = 0;
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
      client.on("error", (e: Error) => this.lastError.set(client, e));
      client.on("ready", () => this.lastError.delete(client));
      return client;
    });
  }

  /** toStorageError, with the connection's own error in place of ioredis's "max retries" (see above). */
  private fail(e: unknown, client: Redis | Cluster, operation: string): Error {
    const connection = e instanceof Error && e.name === "MaxRetriesPerRequestError" ? this.lastError.get(client) : undefined;
    return toStorageError(connection ?? e, this.kind, operation);
  }

  /** With a Cluster, a call that gets no answer in time fails (its offline queue has no limit). */
  private timed<T>(p: Promise<T>, client?: Redis | Cluster): Promise<T> {
    const ms = this.callTimeoutMs;
    if (ms === 0) return p;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Why it did not answer, when the client knows (refused, no slot map …).
        const last = client ? this.lastError.get(client) : undefined;
        const cause = last
          ? `${last.message}${(last as { lastNodeError?: Error }).lastNodeError ? ` (${(last as { lastNodeError?: Error }).lastNodeError!.message})` : ""}`
          : "";
        reject(new Error(`no answer from the Redis Cluster within ${ms} ms${cause ? `: ${cause}` : ""}`));
      }, ms);
    });
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
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
      return (await this.timed(c.evalsha(script.sha, keys.length, ...keys, ...args), c)) as RedisReply;
    } catch (e) {
      if (!isNoScript(e)) throw this.fail(e, c, script.name);
    }
    try {
      return (await this.timed(c.eval(script.body, keys.length, ...keys, ...args), c)) as RedisReply;
    } catch (e) {
      throw this.fail(e, c, script.name);
    }
  }

  async command(args: readonly string[]): Promise<RedisReply> {
    const [name, ...rest] = args;
    if (name === undefined) throw new TypeError("empty command");
    const c = this.client();
    try {
      return (await this.timed(c.call(name.toUpperCase(), ...rest), c)) as RedisReply;
    } catch (e) {
      throw this.fail(e, c, name.toUpperCase());
    }
  }

  /** Sent back to back: one round trip's wait for all of them. On a Cluster, to every master. */
  async loadScripts(scripts: readonly LuaScript[]): Promise<string[]> {
    const c = this.client();
    try {
      if (!isCluster(c)) return (await Promise.all(scripts.map((s) => c.call("SCRIPT", "LOAD", s.body)))).map(String);
      // A keyless call waits for the slot map; then the masters are known.
      await this.timed(c.call("PING"), c);
      const masters = c.nodes("master");
      const shas = await this.timed(Promise.all(masters.map((node) => Promise.all(scripts.map((s) => node.call("SCRIPT", "LOAD", s.body))))));
      return (shas[0] ?? []).map(String);
    } catch (e) {
      throw this.fail(e, c, "SCRIPT LOAD");
    }
  }

  /**
   * A duplicate connection in subscriber mode, one for all `channels`;
   * it reconnects and subscribes again by itself, so a Redis restart only
   * loses the messages sent while it was down (polling finds those jobs,
   * heartbeats those cancellations). On a single node the subscribe after
   * a reconnect is ours, not ioredis's (autoResubscribe off): ioredis's
   * is a promise nobody holds, so a close before Redis answers it was an
   * unhandled rejection ("Connection is closed."); ours is caught, and a
   * failed one is sent again on the next reconnect.
   */
  async subscribe(channels: readonly string[], onMessage: (channel: string, message: string) => void): Promise<() => Promise<void>> {
    const base = this.clients[0]!;
    // A Cluster subscribes through its own duplicate (a classic PUBLISH reaches every node); a single node through one of its own.
    const sub = isCluster(base)
      ? base.duplicate([], { lazyConnect: true, enableAutoPipelining: false, redisOptions: { ...base.options.redisOptions, maxRetriesPerRequest: null } })
      : base.duplicate({ lazyConnect: true, enableAutoPipelining: false, maxRetriesPerRequest: null, autoResubscribe: false });
    sub.on("error", () => {});
    const wanted = new Set(channels);
    sub.on("message", (ch: string, message: string) => {
      if (wanted.has(ch)) onMessage(ch, message);
    });
    try {
      await this.timed(sub.subscribe(...channels));
    } catch (e) {
      sub.disconnect();
      throw toStorageError(e, this.kind, "SUBSCRIBE");
    }
    if (!isCluster(sub)) {
      sub.on("ready", () => {
        // A failure here is a connection going away again: its next "ready" subscribes anew.
        sub.subscribe(...channels).catch(() => {});
      });
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

function isCluster(c: Redis | Cluster): c is Cluster {
  return (c as { isCluster?: unknown }).isCluster === true;
}
