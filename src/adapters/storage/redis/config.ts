/**
 * RedisConfig: the builder for the Redis backend.
 *
 *   new RedisConfig().withUrl("redis://127.0.0.1:6379")                      // TCP (ioredis), Node
 *   new RedisConfig().withUrl(env.UPSTASH_REDIS_REST_URL).withToken(token)   // Upstash REST, any runtime
 *
 * The URL picks the driver: `redis://` / `rediss://` → TCP, `https://` /
 * `http://` → Upstash REST.
 *
 *   new RedisConfig("redis://10.0.0.1:7000").withCluster(true)              // Redis Cluster (ioredis Cluster)
 */
import { readEnv } from "../../../core/config/env.js";
import { check } from "../../../core/config/bounds.js";
import { DEFAULT_RETENTION, type Retention } from "../../../core/driver.js";
import { ConfigError } from "../../../core/errors.js";
import { validateHashTag, validateKeyPrefix } from "./keys.js";

export type RedisTransport = "tcp" | "upstash";

export interface ResolvedRedisConfig extends Retention {
  url: string;
  transport: RedisTransport;
  token: string | undefined;
  poolSize: number;
  commandTimeoutMs: number;
  keyPrefix: string;
  hashTag: string;
  allowEviction: boolean;
  /** Upstash: retries of a request that failed on the network (the client's own retry). */
  retries: number;
  /**
   * Calls issued in the same tick go out together. On over HTTP (one
   * request instead of several); off over TCP, where the connection
   * pipelines anyway and ioredis's auto-pipelining holds every new command
   * until the batch before it has its replies, so a claim would wait for a
   * completion's round trip (docs/decisions/redis-autopipelining.md).
   */
  autoPipelining: boolean;
  /** Most delayed jobs a claim promotes before it claims. */
  promoteBatch: number;
  /** Most finished jobs one write prunes (the rest go in the next writes). */
  pruneBatch: number;
  /**
   * The URL is a node of a Redis Cluster (TCP only): the driver is an
   * ioredis `Cluster` that learns the other nodes from it. Every key of
   * this qml shares its hash tag, so every script runs on one node.
   */
  cluster: boolean;
  /** More cluster nodes to start from, besides the URL (redis:// or rediss://). */
  clusterNodes: string[];
}

function int(name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`${name} must be an integer between ${min} and ${max}; got ${v}`, { scope: "redis" });
  return v;
}

export function transportOf(url: string): RedisTransport {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`url is not a URL: ${redact(url)}`, { scope: "redis" });
  }
  if (u.protocol === "redis:" || u.protocol === "rediss:") return "tcp";
  if (u.protocol === "https:" || u.protocol === "http:") return "upstash";
  throw new ConfigError(`url must start with redis://, rediss:// (TCP) or https:// (Upstash REST); got ${u.protocol}//`, { scope: "redis" });
}

/** A URL with its password hidden, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, "//***@");
}

export class RedisConfig {
  private readonly c: Omit<ResolvedRedisConfig, "url" | "transport" | "autoPipelining"> & { url: string | undefined; autoPipelining: boolean | undefined };

  constructor(url?: string) {
    this.c = {
      url: undefined,
      token: undefined,
      poolSize: 1,
      commandTimeoutMs: 5000,
      keyPrefix: "qml:",
      hashTag: "q",
      finishedJobTtlMs: DEFAULT_RETENTION.finishedJobTtlMs,
      maxFinishedJobs: DEFAULT_RETENTION.maxFinishedJobs,
      allowEviction: false,
      retries: 5,
      autoPipelining: undefined,
      promoteBatch: 1000,
      pruneBatch: 1000,
      cluster: false,
      clusterNodes: [],
    };
    if (url !== undefined) this.withUrl(url);
  }

  /**
   * From environment variables (pass a Worker's `env`; default `process.env`),
   * through qml's table of them (README "Configuration"): REDIS_URL or
   * UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, QML_REDIS_PREFIX,
   * QML_REDIS_HASH_TAG, QML_REDIS_CLUSTER, QML_FINISHED_JOB_TTL_MS,
   * QML_MAX_FINISHED_JOBS.
   */
  static fromEnv(env?: Record<string, unknown>): RedisConfig {
    const e = readEnv(env ?? (typeof process === "object" && process?.env ? process.env : {}));
    const url = e.redisUrl ?? e.upstashUrl;
    if (!url) throw new ConfigError("set REDIS_URL or UPSTASH_REDIS_REST_URL", { scope: "redis" });
    const config = new RedisConfig(url);
    if (e.upstashToken) config.withToken(e.upstashToken);
    if (e.redisPrefix) config.withKeyPrefix(e.redisPrefix);
    if (e.redisHashTag) config.withHashTag(e.redisHashTag);
    if (e.redisCluster) config.withCluster(true);
    if (e.finishedJobTtlMs !== undefined) config.withFinishedJobTtl(e.finishedJobTtlMs);
    if (e.maxFinishedJobs !== undefined) config.withMaxFinishedJobs(e.maxFinishedJobs);
    return config;
  }

  /** `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS), or an Upstash REST URL `https://…`. */
  withUrl(url: string): this {
    if (typeof url !== "string" || url.length === 0) throw new ConfigError("url must be a non-empty string", { scope: "redis" });
    transportOf(url);
    this.c.url = url;
    return this;
  }
  /** The Upstash REST token (required with an https:// URL). */
  withToken(token: string): this {
    if (typeof token !== "string" || token.length === 0 || /\s/.test(token))
      throw new ConfigError("token must be a non-empty string without whitespace", { scope: "redis" });
    this.c.token = token;
    return this;
  }
  /** TCP connections, used round-robin (default 1: one connection pipelines well). Ignored over HTTP. */
  withPoolSize(n: number): this {
    this.c.poolSize = int("poolSize", n, 1, 64);
    return this;
  }
  /** A command that gets no answer within this fails with StorageUnavailableError (default 5000 ms). */
  withCommandTimeout(ms: number): this {
    this.c.commandTimeoutMs = int("commandTimeout", ms, 1, 10 * 60_000);
    return this;
  }
  /** Every key starts with this (default "qml:"); letters, digits, "_", "-", ".", ":". */
  withKeyPrefix(prefix: string): this {
    this.c.keyPrefix = validateKeyPrefix(prefix);
    return this;
  }
  /**
   * The Redis Cluster hash tag after the prefix (default "q": keys are
   * `qml:{q}:…`). All of one qml's keys share a slot, as its scripts need;
   * give each qml on a cluster its own tag to spread them over nodes.
   */
  withHashTag(tag: string): this {
    this.c.hashTag = validateHashTag(tag);
    return this;
  }
  /** Finished jobs (succeeded, failed, deleted) are deleted this long after they finished (default 24 h); 0 or null: never by age. */
  withFinishedJobTtl(ms: number | null): this {
    this.c.finishedJobTtlMs = ms === null || ms === Infinity ? 0 : check("finishedJobTtlMs", ms, "finishedJobTtl", "redis");
    return this;
  }
  /** At most this many finished jobs are kept; the oldest go first (default 10,000; 0 = none kept). */
  withMaxFinishedJobs(n: number): this {
    this.c.maxFinishedJobs = check("maxFinishedJobs", n, "maxFinishedJobs", "redis");
    return this;
  }
  /**
   * Start even if the server may evict keys (`maxmemory-policy` other than
   * `noeviction`). Eviction silently drops jobs and index entries: only for
   * a throwaway queue.
   */
  withAllowEviction(allow: boolean): this {
    this.c.allowEviction = allow === true;
    return this;
  }
  /** Upstash: how often a request that failed on the network is retried (default 5; writes are idempotent). */
  withRetries(n: number): this {
    this.c.retries = int("retries", n, 0, 20);
    return this;
  }
  /**
   * Send calls issued together as one batch (default: on over HTTP, one
   * request instead of several; off over TCP, where ioredis's
   * auto-pipelining would hold each call until the previous batch is answered).
   */
  withAutoPipelining(on: boolean): this {
    this.c.autoPipelining = on === true;
    return this;
  }
  /** Most delayed jobs one claim promotes first (default 1000). */
  withPromoteBatch(n: number): this {
    this.c.promoteBatch = int("promoteBatch", n, 1, 100_000);
    return this;
  }
  /** Most finished jobs one write prunes (default 1000); the rest go in the following writes. */
  withPruneBatch(n: number): this {
    this.c.pruneBatch = int("pruneBatch", n, 1, 100_000);
    return this;
  }
  /**
   * The URL is a node of a Redis Cluster (default off): `true`, or the URLs
   * of more nodes to start from (any one that answers is enough; the client
   * learns the rest). TCP only. All of this qml's keys are in the slot of
   * its hash tag (`withHashTag`): give each qml on one cluster its own tag
   * to spread them over the masters.
   */
  withCluster(cluster: boolean | readonly string[] = true): this {
    if (typeof cluster === "boolean") {
      this.c.cluster = cluster;
      this.c.clusterNodes = [];
      return this;
    }
    if (!Array.isArray(cluster)) throw new ConfigError("withCluster takes true, false or a list of redis:// node URLs", { scope: "redis" });
    for (const node of cluster) {
      if (typeof node !== "string" || transportOf(node) !== "tcp")
        throw new ConfigError(`cluster nodes must be redis:// or rediss:// URLs; got ${typeof node === "string" ? redact(node) : typeof node}`, {
          scope: "redis",
        });
    }
    this.c.cluster = true;
    this.c.clusterNodes = [...cluster];
    return this;
  }

  resolve(): ResolvedRedisConfig {
    const url = this.c.url;
    if (!url) throw new ConfigError("no url: call withUrl(...) (redis://… for TCP, https://… for Upstash)", { scope: "redis" });
    const transport = transportOf(url);
    if (transport === "upstash" && !this.c.token) {
      throw new ConfigError("an Upstash REST url needs a token: withToken(UPSTASH_REDIS_REST_TOKEN)", { scope: "redis" });
    }
    if (this.c.cluster && transport !== "tcp") {
      throw new ConfigError("withCluster needs a redis:// or rediss:// URL: the REST API is not a cluster client (Upstash routes keys itself)", {
        scope: "redis",
      });
    }
    if (this.c.cluster) {
      for (const node of [url, ...this.c.clusterNodes]) {
        const db = new URL(node).pathname.replace(/^\//, "");
        if (db !== "" && db !== "0") throw new ConfigError(`a Redis Cluster has database 0 only: drop the /${db} from ${redact(node)}`, { scope: "redis" });
      }
    }
    return { ...this.c, clusterNodes: [...this.c.clusterNodes], url, transport, autoPipelining: this.c.autoPipelining ?? transport === "upstash" };
  }

  toString(): string {
    return `RedisConfig(${this.c.url ? redact(this.c.url) : "no url"}${this.c.cluster ? ", cluster" : ""}, prefix ${this.c.keyPrefix})`;
  }
}
