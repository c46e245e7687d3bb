/**
 * RedisConfig: the builder for the Redis backend.
 *
 *   new RedisConfig().withUrl("redis://127.0.0.1:6379")                      // TCP (ioredis), Node
 *   new RedisConfig().withUrl(env.UPSTASH_REDIS_REST_URL).withToken(token)   // Upstash REST, any runtime
 *
 * The URL picks the driver: `redis://` / `rediss://` → TCP, `https://` /
 * `http://` → Upstash REST.
 */
import { ConfigError } from "../../../core/errors.js";
import { HOUR } from "../../../core/storage.js";
import { validateHashTag, validateKeyPrefix } from "./keys.js";

export type RedisTransport = "tcp" | "upstash";

export interface ResolvedRedisConfig {
  url: string;
  transport: RedisTransport;
  token: string | undefined;
  poolSize: number;
  commandTimeoutMs: number;
  keyPrefix: string;
  hashTag: string;
  /** Finished jobs (succeeded, failed, deleted) older than this are pruned; 0 = no age limit. */
  completedJobTtlMs: number;
  maxFinishedJobs: number;
  allowEviction: boolean;
  /** Upstash: retries of a request that failed on the network (the client's own retry). */
  retries: number;
  /**
   * Calls issued in the same tick go out together. On over HTTP (one
   * request instead of several); off over TCP, where the connection
   * pipelines anyway and ioredis's auto-pipelining holds every new command
   * until the batch before it has its replies (a claim waited for a
   * completion's round trip; test/redis/drivers.test.ts shows the hold).
   */
  autoPipelining: boolean;
  /** Most delayed jobs a claim promotes before it claims. */
  promoteBatch: number;
  /** Most finished jobs one write prunes (the rest go in the next writes). */
  pruneBatch: number;
}

function int(name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`[qml] [redis] ${name} must be an integer between ${min} and ${max}; got ${v}`);
  return v;
}

export function transportOf(url: string): RedisTransport {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`[qml] [redis] url is not a URL: ${redact(url)}`);
  }
  if (u.protocol === "redis:" || u.protocol === "rediss:") return "tcp";
  if (u.protocol === "https:" || u.protocol === "http:") return "upstash";
  throw new ConfigError(`[qml] [redis] url must start with redis://, rediss:// (TCP) or https:// (Upstash REST); got ${u.protocol}//`);
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
      completedJobTtlMs: 24 * HOUR,
      maxFinishedJobs: 10_000,
      allowEviction: false,
      retries: 5,
      autoPipelining: undefined,
      promoteBatch: 1000,
      pruneBatch: 1000,
    };
    if (url !== undefined) this.withUrl(url);
  }

  /**
   * From environment variables (pass a Worker's `env`; default `process.env`):
   * QML_REDIS_URL, REDIS_URL or UPSTASH_REDIS_REST_URL; QML_REDIS_TOKEN or
   * UPSTASH_REDIS_REST_TOKEN; QML_REDIS_PREFIX.
   */
  static fromEnv(env?: Record<string, unknown>): RedisConfig {
    const e = env ?? (typeof process === "object" && process?.env ? process.env : {});
    const s = (k: string) => (typeof e[k] === "string" && (e[k] as string).length > 0 ? (e[k] as string) : undefined);
    const url = s("QML_REDIS_URL") ?? s("REDIS_URL") ?? s("UPSTASH_REDIS_REST_URL");
    if (!url) throw new ConfigError("[qml] [redis] set QML_REDIS_URL, REDIS_URL or UPSTASH_REDIS_REST_URL");
    const config = new RedisConfig(url);
    const token = s("QML_REDIS_TOKEN") ?? s("UPSTASH_REDIS_REST_TOKEN");
    if (token) config.withToken(token);
    const prefix = s("QML_REDIS_PREFIX");
    if (prefix) config.withKeyPrefix(prefix);
    return config;
  }

  /** `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS), or an Upstash REST URL `https://…`. */
  withUrl(url: string): this {
    if (typeof url !== "string" || url.length === 0) throw new ConfigError("[qml] [redis] url must be a non-empty string");
    transportOf(url);
    this.c.url = url;
    return this;
  }
  /** The Upstash REST token (required with an https:// URL). */
  withToken(token: string): this {
    if (typeof token !== "string" || token.length === 0 || /\s/.test(token)) throw new ConfigError("[qml] [redis] token must be a non-empty string without whitespace");
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
  /** Finished jobs (succeeded, failed, deleted) are deleted this long after they finished (default 24 h); null = never by age. */
  withCompletedJobTtl(ms: number | null): this {
    this.c.completedJobTtlMs = ms === null || ms === Infinity ? 0 : int("completedJobTtl", ms, 1);
    return this;
  }
  /** At most this many finished jobs are kept; the oldest go first (default 10,000). */
  withMaxFinishedJobs(n: number): this {
    this.c.maxFinishedJobs = int("maxFinishedJobs", n, 0);
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

  resolve(): ResolvedRedisConfig {
    const url = this.c.url;
    if (!url) throw new ConfigError("[qml] [redis] no url: call withUrl(...) (redis://… for TCP, https://… for Upstash)");
    const transport = transportOf(url);
    if (transport === "upstash" && !this.c.token) {
      throw new ConfigError("[qml] [redis] an Upstash REST url needs a token: withToken(UPSTASH_REDIS_REST_TOKEN)");
    }
    return { ...this.c, url, transport, autoPipelining: this.c.autoPipelining ?? transport === "upstash" };
  }

  toString(): string {
    return `RedisConfig(${this.c.url ? redact(this.c.url) : "no url"}, prefix ${this.c.keyPrefix})`;
  }
}
