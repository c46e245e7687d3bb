/**
 * The narrow command interface the Redis backend needs: run a Lua script,
 * run one command, load scripts, close. Two drivers implement it:
 * `UpstashDriver` (HTTP, every runtime) and `IoredisDriver` (TCP, Node).
 * Anything that can do these things (a Redis Cluster client, say) can
 * carry the backend.
 *
 * Replies are normalised to what both drivers return for Lua results:
 * strings, integers, null and nested arrays.
 */
import { QmlError, StorageUnavailableError } from "../../../core/errors.js";

/** A Lua script embedded at build time (scripts.generated.ts). */
export interface LuaScript {
  readonly name: string;
  /** SHA-1 of `body`, what EVALSHA takes. */
  readonly sha: string;
  readonly body: string;
}

export type RedisReply = string | number | null | RedisReply[];

export interface RedisDriver {
  /** "upstash", "ioredis", or a custom driver's name: for logs and errors. */
  readonly kind: string;
  /**
   * EVALSHA, then EVAL with the body when the server answers NOSCRIPT (its
   * script cache does not survive a restart, a failover or SCRIPT FLUSH).
   */
  evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<RedisReply>;
  /** One command, e.g. `["CONFIG", "GET", "maxmemory-policy"]`. */
  command(args: readonly string[]): Promise<RedisReply>;
  /** SCRIPT LOAD of each script, in one round trip where the driver can. Returns the SHA-1s. */
  loadScripts(scripts: readonly LuaScript[]): Promise<string[]>;
  /**
   * Subscribes to pub/sub channels on one dedicated connection (TCP drivers
   * only: the REST API has no subscriptions) and calls `onMessage` with the
   * channel and the message. Resolves to an unsubscribe once subscribed.
   */
  subscribe?(channels: readonly string[], onMessage: (channel: string, message: string) => void): Promise<() => Promise<void>>;
  /**
   * True when calls reach Redis in the order they are made (one TCP
   * connection): a claim sent while an insert is in flight runs after it.
   */
  readonly ordered?: boolean;
  /** Releases connections. Idempotent. */
  close(): Promise<void>;
}

export function isNoScript(e: unknown): boolean {
  return e instanceof Error && /NOSCRIPT/i.test(e.message);
}

export function replyText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * One mapping for both drivers: whatever failed talking to Redis (refused,
 * reset, timed out, LOADING, READONLY, OOM, a script error) surfaces as a
 * StorageUnavailableError naming the driver and the operation, with the
 * original as `cause`. QmlErrors pass through unchanged.
 */
export function toStorageError(e: unknown, driver: string, operation: string): Error {
  if (e instanceof QmlError) return e;
  return new StorageUnavailableError(`${operation} failed (${driver}): ${replyText(e)}`, { cause: e, scope: "redis" });
}
