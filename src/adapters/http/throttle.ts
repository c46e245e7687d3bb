/**
 * Throttling of failed credentials: failed logins and failed bearer tokens
 * are counted per client address in the store (Storage.kv, a fixed window
 * per address), so every server of a deployment counts together. Once an
 * address reaches `maxFailures` in a window, its logins and bearer
 * requests are answered 429 with Retry-After until the window ends,
 * without the token being checked: a correct guess is then no different
 * from a wrong one. Successful requests add nothing; a session cookie is
 * not a guessable secret and is not throttled.
 *
 * Cost: one store read per login or bearer request (is the address
 * blocked?), and two writes per failure (the count; the block when the
 * count reaches the limit). Measured before this: 2,000 wrong logins at
 * ~700/s and 2,000 wrong bearer tokens at ~1,700/s were all answered.
 */
import type { Context } from "hono";
import type { Clock } from "../../core/clock.js";
import { ConfigError } from "../../core/errors.js";
import type { KeyValue } from "../../core/kv.js";
import { HttpProblem } from "./problem.js";

export interface ThrottleOptions {
  /** Failures per address within a window before it is refused (default 10). */
  maxFailures?: number;
  /** The window, in ms (default 60 000). */
  windowMs?: number;
}

export const DEFAULT_THROTTLE: Readonly<Required<ThrottleOptions>> = { maxFailures: 10, windowMs: 60_000 };

const FAILURES = "http:auth-failures:";
const BLOCKED = "http:auth-blocked:";

export class Throttle {
  readonly maxFailures: number;
  readonly windowMs: number;

  constructor(
    private readonly kv: KeyValue,
    private readonly clock: Clock,
    options: ThrottleOptions = {},
  ) {
    if (!options || typeof options !== "object") throw new ConfigError("auth.throttle must be an object { maxFailures, windowMs } or false", { scope: "http" });
    const { maxFailures, windowMs } = { ...DEFAULT_THROTTLE, ...options };
    if (!Number.isInteger(maxFailures) || maxFailures < 1 || maxFailures > 1_000_000) {
      throw new ConfigError("auth.throttle.maxFailures must be an integer between 1 and 1000000", { scope: "http" });
    }
    if (!Number.isInteger(windowMs) || windowMs < 1000 || windowMs > 86_400_000) {
      throw new ConfigError("auth.throttle.windowMs must be an integer between 1000 and 86400000", { scope: "http" });
    }
    this.maxFailures = maxFailures;
    this.windowMs = windowMs;
  }

  /** Seconds until `address` may try again; 0 when it is not blocked. */
  async retryAfter(address: string): Promise<number> {
    const until = Number(await this.kv.get(BLOCKED + address));
    return until > 0 ? Math.max(0, Math.ceil((until - this.clock.now()) / 1000)) : 0;
  }

  /** Throws a 429 problem (with Retry-After) while `address` is blocked. */
  async check(address: string): Promise<void> {
    const wait = await this.retryAfter(address);
    if (wait > 0) throw tooManyFailures(wait);
  }

  /** Counts a failure of `address`; the one that reaches the limit blocks it until the window ends. */
  async fail(address: string): Promise<void> {
    const { count, resetAt } = await this.kv.hit(FAILURES + address, this.windowMs);
    const ttlMs = resetAt - this.clock.now();
    if (count >= this.maxFailures && ttlMs > 0) await this.kv.set(BLOCKED + address, String(resetAt), { ttlMs });
  }
}

/** The `throttle` auth option for QML_LOGIN_THROTTLE: failures a minute, 0 for none, undefined for the default. */
export function throttleOption(maxFailures: number | undefined): { throttle?: ThrottleOptions | false } {
  if (maxFailures === undefined) return {};
  return { throttle: maxFailures === 0 ? false : { maxFailures } };
}

export function tooManyFailures(seconds: number): HttpProblem {
  return new HttpProblem(429, "TOO_MANY_FAILURES", `too many failed attempts from this address; try again in ${seconds} s`, {
    headers: { "Retry-After": String(seconds) },
  });
}

/**
 * The client's address as the runtime reports it, never from a header a
 * client can set: the socket's peer on Node (@hono/node-server), the
 * `cf-connecting-ip` Cloudflare sets (and overwrites) on Workers (where the
 * request carries its `cf` object), the source IP of the Lambda Function
 * URL or API Gateway event. "unknown" elsewhere (app.request in tests, an
 * unknown runtime): those requests share one count.
 */
export function clientAddress(c: Context): string {
  const env = (c.env ?? {}) as {
    incoming?: { socket?: { remoteAddress?: string } };
    server?: { incoming?: { socket?: { remoteAddress?: string } } };
    requestContext?: { http?: { sourceIp?: string }; identity?: { sourceIp?: string } };
  };
  const node = (env.server ?? env).incoming?.socket?.remoteAddress;
  if (typeof node === "string" && node !== "") return node;
  const rc = env.requestContext;
  const lambda = rc?.http?.sourceIp ?? rc?.identity?.sourceIp;
  if (typeof lambda === "string" && lambda !== "") return lambda;
  const cf = (c.req.raw as { cf?: unknown }).cf;
  const cfIp = c.req.header("cf-connecting-ip");
  if (cf !== undefined && cf !== null && typeof cfIp === "string" && cfIp !== "") return cfIp.slice(0, 100);
  return "unknown";
}
