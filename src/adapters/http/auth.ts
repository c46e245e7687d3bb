/**
 * Who may use the dashboard, and how that is proven. WebCrypto only, so the
 * same code runs on Node, workerd and Lambda.
 *
 * - API clients send `Authorization: Bearer <token>`; a token is admin or
 *   read-only.
 * - The UI logs in once with a token and gets a session cookie: HttpOnly,
 *   SameSite=Strict, value `v1.<payload>.<hmac>` where payload carries the
 *   role, the expiry, a fingerprint of the token used (so removing a token
 *   from the configuration ends its sessions too), a random session id and
 *   when it was issued. (Not hono's setSignedCookie: it appends a padded
 *   base64 signature, `%3D` once URL-encoded, where this cookie stays
 *   `v1.<base64url>.<base64url>`.)
 * - Sessions end in the store, for every server at once (Storage.kv; no
 *   cache, so one store read per cookie request): logout revokes the
 *   session's id until its expiry, and "end all sessions" moves an epoch
 *   that every session issued before it fails. The HMAC key is
 *   `sessionSecret`, or else a random secret generated once and kept in the
 *   store: shared by the servers of one deployment, unknown to another
 *   deployment with the same tokens.
 * - Failed logins and bearer tokens are throttled per client address
 *   (throttle.ts).
 * - A cookie is ambient (the browser attaches it by itself), so a mutating
 *   request authenticated by cookie must also carry the CSRF token derived
 *   from that session (HMAC of the payload), which only a same-origin page
 *   can read from `/api/session`.
 * - `{ open: true }` skips all of that and is meant for a loopback-only
 *   server; the app refuses requests whose Host is not a loopback name
 *   (which also defeats DNS rebinding), and the Node server refuses to bind
 *   anything else.
 *
 * Secrets are compared in constant time: both sides are hashed with
 * SHA-256 and the digests compared in a loop without early exit, so neither
 * the length nor the first differing byte of a token leaks through timing.
 */
import type { Clock } from "../../core/clock.js";
import { ConfigError } from "../../core/errors.js";
import type { KeyValue } from "../../core/kv.js";
import { Throttle, type ThrottleOptions } from "./throttle.js";

export type Role = "admin" | "read";

export interface TokenAuthOptions {
  /** Tokens that may read and act (retry, delete, enqueue…). */
  adminTokens?: string[];
  /** Tokens that may only read. */
  readTokens?: string[];
  /**
   * HMAC key for session cookies (at least 32 characters). Default: a random
   * secret generated once and kept in the store, shared by every server of
   * the deployment.
   */
  sessionSecret?: string;
  /** Throttling of failed logins and bearer tokens per client address (default 10 failures a minute), or false for none. */
  throttle?: ThrottleOptions | false;
  /** Session lifetime in ms (default 12 h). */
  sessionTtlMs?: number;
  /** Origins besides the request's own host that may call mutating routes, e.g. behind a proxy that rewrites Host. */
  trustedOrigins?: string[];
}

export interface OpenAuthOptions {
  /** No authentication: everyone is admin. Only for a server bound to loopback. */
  open: true;
  trustedOrigins?: string[];
}

export type AuthOptions = TokenAuthOptions | OpenAuthOptions;

export interface Principal {
  role: Role;
  via: "bearer" | "cookie" | "open";
  /** For cookie sessions: the signed payload, from which the CSRF token is derived. */
  session?: string;
  /** For cookie sessions: when the session ends (epoch ms). */
  expiresAt?: number;
  /** For cookie sessions: the session's id, which logout revokes. */
  sid?: string;
}

export const SESSION_COOKIE = "qml_session";
const MIN_TOKEN_LENGTH = 16;
/**
 * A rough bound on a token's strength: length × log2(distinct characters).
 * It rates "aaaaaaaaaaaaaaaa" 0 bits and `openssl rand -base64 24` (32
 * characters, ~25 distinct) ~148; it under-rates short random tokens (16
 * random hex digits, ~10 distinct: ~53), so 24+ random characters are what
 * the message asks for. 64 bits is out of reach of online guessing.
 */
const MIN_TOKEN_BITS = 64;
const MIN_TOKEN_DISTINCT = 8;
/** RFC 6750 b64token: what a bearer header may carry (hono/bearer-auth refuses anything else). */
const TOKEN_CHARS = /^[A-Za-z0-9._~+/-]+=*$/;
const HTTP = { scope: "http" };
const DEFAULT_SESSION_TTL_MS = 12 * 3600_000;
/** Store keys (Storage.kv): the generated cookie secret, the end-all epoch, revoked session ids. */
const SECRET_KEY = "http:session-secret";
const EPOCH_KEY = "http:session-epoch";
const REVOKED_KEY = "http:session-revoked:";

const encoder = new TextEncoder();

async function sha256(data: string | Uint8Array): Promise<Uint8Array> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** Equal-length digests compared without an early exit. */
function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Constant-time string equality: SHA-256 both sides, then compare the digests. */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([sha256(a), sha256(b)]);
  return digestsEqual(da, db);
}

export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  try {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

interface KnownToken {
  role: Role;
  digest: Uint8Array;
  /** Short fingerprint stored in sessions: 12 bytes of the digest, base64url. */
  kid: string;
}

interface Keys {
  tokens: KnownToken[];
  hmac: CryptoKey;
}

export function checkTokens(list: unknown, field: string): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new ConfigError(`auth.${field} must be an array of strings`, HTTP);
  for (const t of list) {
    if (typeof t !== "string" || t.length < MIN_TOKEN_LENGTH || t.length > 4096 || !TOKEN_CHARS.test(t)) {
      throw new ConfigError(
        `auth.${field}: every token must be ${MIN_TOKEN_LENGTH}-4096 characters of letters, digits and - . _ ~ + / (then = padding), as a bearer token is`,
        HTTP,
      );
    }
    const distinct = new Set(t).size;
    if (distinct < MIN_TOKEN_DISTINCT || t.length * Math.log2(distinct) < MIN_TOKEN_BITS) {
      throw new ConfigError(
        `auth.${field}: a token is too easy to guess (${t.length} characters, ${distinct} distinct: about ${Math.floor(t.length * Math.log2(distinct))} bits, ` +
          `${MIN_TOKEN_BITS} needed with at least ${MIN_TOKEN_DISTINCT} distinct characters); generate one with \`openssl rand -base64 24\``,
        HTTP,
      );
    }
  }
  return list as string[];
}

export function isOpenAuth(a: AuthOptions): a is OpenAuthOptions {
  return (a as OpenAuthOptions).open === true;
}

export class Authenticator {
  readonly open: boolean;
  readonly sessionTtlMs: number;
  readonly trustedOrigins: readonly string[];
  /** Counts failed logins and bearer tokens; undefined in open mode or with `throttle: false`. */
  readonly throttle: Throttle | undefined;
  private readonly makeKeys: () => Promise<Keys>;
  private keysMade: Promise<Keys> | undefined;

  constructor(
    options: AuthOptions,
    private readonly clock: Clock,
    private readonly store: KeyValue,
  ) {
    if (!options || typeof options !== "object") {
      throw new ConfigError("auth is required: { adminTokens: [...] } or, for a loopback-only server, { open: true }", HTTP);
    }
    this.trustedOrigins = normalizeOrigins(options.trustedOrigins);
    if (isOpenAuth(options)) {
      this.open = true;
      this.sessionTtlMs = DEFAULT_SESSION_TTL_MS;
      // No tokens to derive from: the CSRF key of an open app lives as long as the app.
      const secret = crypto.getRandomValues(new Uint8Array(32));
      this.makeKeys = () => importHmac(secret).then((hmac) => ({ tokens: [], hmac }));
      this.throttle = undefined;
    } else {
      if ("open" in options && (options as { open?: unknown }).open !== undefined) {
        throw new ConfigError("auth.open must be exactly true, or absent", HTTP);
      }
      const admin = checkTokens(options.adminTokens, "adminTokens");
      const read = checkTokens(options.readTokens, "readTokens");
      if (admin.length + read.length === 0) {
        throw new ConfigError("auth needs at least one admin or read token (or { open: true } on a loopback-only server)", HTTP);
      }
      if (admin.some((t) => read.includes(t))) throw new ConfigError("a token cannot be both admin and read-only", HTTP);
      if (options.sessionSecret !== undefined && (typeof options.sessionSecret !== "string" || options.sessionSecret.length < 32)) {
        throw new ConfigError("auth.sessionSecret must be at least 32 characters", HTTP);
      }
      const ttl = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
      if (!Number.isInteger(ttl) || ttl < 60_000) throw new ConfigError("auth.sessionTtlMs must be an integer >= 60000", HTTP);
      this.open = false;
      this.sessionTtlMs = ttl;
      this.makeKeys = () => deriveKeys(admin, read, options.sessionSecret, store);
      this.throttle = options.throttle === false ? undefined : new Throttle(store, clock, options.throttle);
    }
  }

  /** The keys, made on first use (the generated secret is read from the store then); a failure is retried by the next call. */
  private get keys(): Promise<Keys> {
    this.keysMade ??= this.makeKeys().catch((e: unknown) => {
      this.keysMade = undefined;
      throw e;
    });
    return this.keysMade;
  }

  /** The role of a bearer token, or null. Every known token is compared, whatever matched first. */
  async roleOfToken(token: string): Promise<Role | null> {
    const { tokens } = await this.keys;
    const d = await sha256(token);
    let role: Role | null = null;
    for (const t of tokens) {
      const eq = digestsEqual(t.digest, d);
      if (eq && role !== "admin") role = t.role;
    }
    return role;
  }

  /** Same as roleOfToken, plus the token's fingerprint for a session. */
  private async match(token: string): Promise<KnownToken | null> {
    const { tokens } = await this.keys;
    const d = await sha256(token);
    let found: KnownToken | null = null;
    for (const t of tokens) {
      const eq = digestsEqual(t.digest, d);
      if (eq && found === null) found = t;
    }
    return found;
  }

  /** A signed session cookie value for a valid token, or null. */
  async login(token: string): Promise<{ value: string; role: Role; expiresAt: number } | null> {
    if (this.open || typeof token !== "string" || token.length === 0 || token.length > 4096) return null;
    const t = await this.match(token);
    if (!t) return null;
    const now = this.clock.now();
    const expiresAt = now + this.sessionTtlMs;
    const sid = base64url(crypto.getRandomValues(new Uint8Array(16)));
    const payload = base64url(encoder.encode(JSON.stringify({ r: t.role, e: expiresAt, k: t.kid, s: sid, i: now })));
    const { hmac } = await this.keys;
    const sig = new Uint8Array(await crypto.subtle.sign("HMAC", hmac, encoder.encode(`session.${payload}`)));
    return { value: `v1.${payload}.${base64url(sig)}`, role: t.role, expiresAt };
  }

  /** The principal of a session cookie, or null when it is forged, expired, logged out, ended by "end all", or its token is gone. */
  async session(value: string): Promise<Principal | null> {
    if (this.open || typeof value !== "string" || value.length > 1024) return null;
    const parts = value.split(".");
    if (parts.length !== 3 || parts[0] !== "v1") return null;
    const [, payload, sigText] = parts as [string, string, string];
    const sig = fromBase64url(sigText);
    if (!sig) return null;
    const { hmac, tokens } = await this.keys;
    const ok = await crypto.subtle.verify("HMAC", hmac, sig as Uint8Array<ArrayBuffer>, encoder.encode(`session.${payload}`));
    if (!ok) return null;
    let data: { r?: unknown; e?: unknown; k?: unknown; s?: unknown; i?: unknown };
    try {
      data = JSON.parse(new TextDecoder().decode(fromBase64url(payload) ?? new Uint8Array()));
    } catch {
      return null;
    }
    if ((data.r !== "admin" && data.r !== "read") || typeof data.e !== "number" || typeof data.k !== "string") return null;
    if (typeof data.s !== "string" || data.s.length > 64 || typeof data.i !== "number") return null;
    if (data.e <= this.clock.now()) return null;
    if (!tokens.some((t) => t.kid === data.k && t.role === data.r)) return null;
    // Read only for a cookie this deployment signed: a forged one costs no store read.
    const [revoked, epoch] = await Promise.all([this.store.get(REVOKED_KEY + data.s), this.store.get(EPOCH_KEY)]);
    if (revoked !== undefined || (epoch !== undefined && data.i <= Number(epoch))) return null;
    return { role: data.r, via: "cookie", session: payload, expiresAt: data.e, sid: data.s };
  }

  /** Ends a cookie session on every server: its id is revoked in the store until the session would have expired. */
  async logout(p: Principal): Promise<void> {
    if (p.via !== "cookie" || p.sid === undefined || p.expiresAt === undefined) return;
    const ttlMs = p.expiresAt - this.clock.now();
    if (ttlMs > 0) await this.store.set(REVOKED_KEY + p.sid, "1", { ttlMs });
  }

  /** Ends every cookie session issued until now (this very ms included), on every server. Returns the new epoch (epoch ms). */
  async endAllSessions(): Promise<number> {
    const now = this.clock.now();
    await this.store.set(EPOCH_KEY, String(now));
    return now;
  }

  /** The CSRF token a same-origin page must echo in `X-CSRF-Token`; none for bearer requests. */
  async csrfToken(p: Principal): Promise<string | undefined> {
    if (p.via === "bearer") return undefined;
    const { hmac } = await this.keys;
    const subject = p.via === "open" ? "csrf.open" : `csrf.${p.session ?? ""}`;
    return base64url(new Uint8Array(await crypto.subtle.sign("HMAC", hmac, encoder.encode(subject))));
  }

  async checkCsrf(p: Principal, presented: string | undefined): Promise<boolean> {
    const expected = await this.csrfToken(p);
    if (expected === undefined) return true;
    if (typeof presented !== "string" || presented.length === 0 || presented.length > 256) return false;
    return secretsEqual(expected, presented);
  }
}

async function importHmac(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", secret as Uint8Array<ArrayBuffer>, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

async function deriveKeys(admin: string[], read: string[], sessionSecret: string | undefined, store: KeyValue): Promise<Keys> {
  const tokens: KnownToken[] = [];
  for (const [role, list] of [
    ["admin", admin],
    ["read", read],
  ] as const) {
    for (const t of list) {
      const digest = await sha256(t);
      tokens.push({ role, digest, kid: base64url(digest.slice(0, 12)) });
    }
  }
  // Not derived from the tokens: another deployment with the same tokens must not accept these cookies.
  // kv.add keeps the first secret any server generated, so the servers of one deployment agree.
  const secret =
    sessionSecret !== undefined
      ? await sha256(`qml-session-v1\0${sessionSecret}`)
      : await sha256(`qml-session-v2\0${await store.add(SECRET_KEY, base64url(crypto.getRandomValues(new Uint8Array(32))))}`);
  return { tokens, hmac: await importHmac(secret) };
}

function normalizeOrigins(list: unknown): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new ConfigError("auth.trustedOrigins must be an array of origins", HTTP);
  return list.map((o) => {
    try {
      if (typeof o !== "string") throw new Error("not a string");
      const u = new URL(o);
      if (u.origin === "null") throw new Error("opaque");
      return u.origin;
    } catch {
      throw new ConfigError(`auth.trustedOrigins: ${JSON.stringify(o)} is not an origin like https://dash.example.com`, HTTP);
    }
  });
}

// ---------------------------------------------------------------------------
// Origin checks (security.ts: originVerdict)

export type OriginVerdict = "same" | "foreign" | "absent";

/** Whether the request names a loopback host (open mode serves nothing else). */
export function isLoopbackHost(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end > 0 ? h.slice(1, end) : h;
  } else {
    const colon = h.lastIndexOf(":");
    if (colon > 0 && h.indexOf(":") === colon) h = h.slice(0, colon);
  }
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
