/**
 * The HTTP driver: `@upstash/redis` against Upstash's REST API (or the local
 * gateway in infra/). Runs wherever `fetch` does: Workers, Lambda, Node.
 * Nothing reachable from here imports `node:*` or a TCP client.
 *
 * Client settings and why:
 * - automaticDeserialization off: replies stay strings, as ioredis returns
 *   them; the client would otherwise JSON.parse every string it can.
 * - the client retries a request whose fetch threw (5 times by default):
 *   such a request may have been applied, so every script is idempotent
 *   (see claim.lua, complete.lua, transition.lua).
 * - auto-pipelining on: calls made in the same tick go out as one
 *   `/pipeline` request, so concurrent claims and completions share a
 *   round trip.
 * - a per-request AbortSignal bounds each round trip (commandTimeoutMs).
 */
import { Redis } from "@upstash/redis";
import { isNoScript, toStorageError, type LuaScript, type RedisDriver, type RedisReply } from "../driver.js";

export interface UpstashDriverOptions {
  url: string;
  token: string;
  /** Per request (default 5000 ms). */
  commandTimeoutMs?: number;
  /** Retries of a request that failed on the network (default 5). */
  retries?: number;
  /** Default true. */
  autoPipelining?: boolean;
}

/** The part of `@upstash/redis`'s client this driver uses. */
export interface UpstashLikeClient {
  evalsha(sha: string, keys: string[], args: unknown[]): Promise<unknown>;
  eval(script: string, keys: string[], args: unknown[]): Promise<unknown>;
  exec(args: [string, ...(string | number | boolean)[]]): Promise<unknown>;
  scriptLoad(script: string): Promise<unknown>;
}

export class UpstashDriver implements RedisDriver {
  readonly kind = "upstash";
  readonly client: UpstashLikeClient;

  /** From options, or around a client you built (keep `automaticDeserialization: false`). */
  constructor(options: UpstashDriverOptions | { client: UpstashLikeClient }) {
    if ("client" in options) {
      this.client = options.client;
      return;
    }
    const timeout = options.commandTimeoutMs ?? 5000;
    const retries = options.retries ?? 5;
    this.client = new Redis({
      url: options.url,
      token: options.token,
      automaticDeserialization: false,
      enableTelemetry: false,
      enableAutoPipelining: options.autoPipelining ?? true,
      retry: retries === 0 ? false : { retries, backoff: (n: number) => Math.min(1000, 50 * 2 ** n) },
      signal: () => AbortSignal.timeout(timeout),
    }) as unknown as UpstashLikeClient;
  }

  async evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<RedisReply> {
    try {
      return (await this.client.evalsha(script.sha, [...keys], [...args])) as RedisReply;
    } catch (e) {
      if (!isNoScript(e)) throw toStorageError(e, this.kind, script.name);
    }
    try {
      return (await this.client.eval(script.body, [...keys], [...args])) as RedisReply;
    } catch (e) {
      throw toStorageError(e, this.kind, script.name);
    }
  }

  async command(args: readonly string[]): Promise<RedisReply> {
    if (args.length === 0) throw new TypeError("empty command");
    try {
      return (await this.client.exec(args as [string, ...string[]])) as RedisReply;
    } catch (e) {
      throw toStorageError(e, this.kind, String(args[0]).toUpperCase());
    }
  }

  /** Auto-pipelining sends these loads as one `/pipeline` request. */
  async loadScripts(scripts: readonly LuaScript[]): Promise<string[]> {
    try {
      return (await Promise.all(scripts.map((s) => this.client.scriptLoad(s.body)))).map(String);
    } catch (e) {
      throw toStorageError(e, this.kind, "SCRIPT LOAD");
    }
  }

  async close(): Promise<void> {
    // HTTP: nothing stays open.
  }
}
