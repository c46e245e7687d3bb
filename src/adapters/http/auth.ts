/**
 * Who may use the dashboard, and how that is proven. WebCrypto only, so the
 * same code runs on Node, workerd and Lambda.
 *
 * - API clients send `Authorization: Bearer <token>`; a token is admin or
 *   read-only.
 * - The UI logs in once with a token and gets a session cookie: HttpOnly,
 *   SameSite=Strict, value `v1.<payload>.<hmac>` where payload carries the
 *   role, the expiry and a fingerprint of the token used, so removing a
 *   token from the configuration ends its sessions too.
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

export type Role = "admin" | "read";

export interface TokenAuthOptions {
  /** Tokens that may read and act (retry, delete, enqueue…). */
  adminTokens?: string[];
  /** Tokens that may only read. */
  readTokens?: string[];
  /** HMAC key for session cookies (at least 32 characters). Default: derived from the tokens, so changing any token ends every session. */
  sessionSecret?: string;
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
}

export const SESSION_COOKIE = "qml_session";
const MIN_TOKEN_LENGTH = 16;
const DEFAULT_SESSION_TTL_MS = 12 * 3600_000;

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

function checkTokens(list: unknown, field: string): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new ConfigError(`[qml] [http] auth.${field} must be an array of strings`);
  for (const t of list) {
    if (typeof t !== "string" || t.length < MIN_TOKEN_LENGTH || t.length > 4096 || /\s/.test(t)) {
      throw new ConfigError(`[qml] [http] auth.${field}: every token must be ${MIN_TOKEN_LENGTH}-4096 characters without whitespace`);
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
  private readonly keys: Promise<Keys>;

  constructor(
    options: AuthOptions,
    private readonly clock: Clock,
  ) {
    if (!options || typeof options !== "object") {
      throw new ConfigError("[qml] [http] auth is required: { adminTokens: [...] } or, for a loopback-only server, { open: true }");
    }
    this.trustedOrigins = normalizeOrigins(options.trustedOrigins);
    if (isOpenAuth(options)) {
      this.open = true;
      this.sessionTtlMs = DEFAULT_SESSION_TTL_MS;
      // No tokens to derive from: the CSRF key of an open app lives as long as the app.
      const secret = crypto.getRandomValues(new Uint8Array(32));
      this.keys = importHmac(secret).then((hmac) => ({ tokens: [], hmac }));
    } else {
      if ("open" in options && (options as { open?: unknown }).open !== undefined) {
        throw new ConfigError("[qml] [http] auth.open must be exactly true, or absent");
      }
      const admin = checkTokens(options.adminTokens, "adminTokens");
      const read = checkTokens(options.readTokens, "readTokens");
      if (admin.length + read.length === 0) {
        throw new ConfigError("[qml] [http] auth needs at least one admin or read token (or { open: true } on a loopback-only server)");
      }
      if (admin.some((t) => read.includes(t))) throw new ConfigError("[qml] [http] a token cannot be both admin and read-only");
      if (options.sessionSecret !== undefined && (typeof options.sessionSecret !== "string" || options.sessionSecret.length < 32)) {
        throw new ConfigError("[qml] [http] auth.sessionSecret must be at least 32 characters");
      }
      const ttl = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
      if (!Number.isInteger(ttl) || ttl < 60_000) throw new ConfigError("[qml] [http] auth.sessionTtlMs must be an integer >= 60000");
      this.open = false;
      this.sessionTtlMs = ttl;
      this.keys = deriveKeys(admin, read, options.sessionSecret);
    }
    // A rejected key derivation would otherwise surface as an unhandled rejection before the first request.
    this.keys.catch(() => {});
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
    const expiresAt = this.clock.now() + this.sessionTtlMs;
    const payload = base64url(encoder.encode(JSON.stringify({ r: t.role, e: expiresAt, k: t.kid })));
    const { hmac } = await this.keys;
    const sig = new Uint8Array(await crypto.subtle.sign("HMAC", hmac, encoder.encode(`session.${payload}`)));
    return { value: `v1.${payload}.${base64url(sig)}`, role: t.role, expiresAt };
  }

  /** The principal of a session cookie, or null when it is forged, expired or its token is gone. */
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
    let data: { r?: unknown; e?: unknown; k?: unknown };
    try {
      data = JSON.parse(new TextDecoder().decode(fromBase64url(payload) ?? new Uint8Array()));
    } catch {
      return null;
    }
    if ((data.r !== "admin" && data.r !== "read") || typeof data.e !== "number" || typeof data.k !== "string") return null;
    if (data.e <= this.clock.now()) return null;
    if (!tokens.some((t) => t.kid === data.k && t.role === data.r)) return null;
    return { role: data.r, via: "cookie", session: payload, expiresAt: data.e };
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

async function deriveKeys(admin: string[], read: string[], sessionSecret: string | undefined): Promise<Keys> {
  const tokens: KnownToken[] = [];
  for (const [role, list] of [["admin", admin], ["read", read]] as const) {
    for (const t of list) {
      const digest = await sha256(t);
      tokens.push({ role, digest, kid: base64url(digest.slice(0, 12)) });
    }
  }
  const secret =
    sessionSecret !== undefined
      ? await sha256(`qml-session-v1\0${sessionSecret}`)
      : await sha256(`qml-session-v1\0${JSON.stringify({ admin: [...admin].sort(), read: [...read].sort() })}`);
  return { tokens, hmac: await importHmac(secret) };
}

function normalizeOrigins(list: unknown): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new ConfigError("[qml] [http] auth.trustedOrigins must be an array of origins");
  return list.map((o) => {
    try {
      if (typeof o !== "string") throw new Error("not a string");
      const u = new URL(o);
      if (u.origin === "null") throw new Error("opaque");
      return u.origin;
    } catch {
      throw new ConfigError(`[qml] [http] auth.trustedOrigins: ${JSON.stringify(o)} is not an origin like https://dash.example.com`);
    }
  });
}

// ---------------------------------------------------------------------------
// Origin and host checks

/** Host without a default port, lowercase. */
function normalHost(host: string, protocol?: string): string {
  let h = host.trim().toLowerCase();
  if ((protocol === "http:" || protocol === undefined) && h.endsWith(":80")) h = h.slice(0, -3);
  if ((protocol === "https:" || protocol === undefined) && h.endsWith(":443")) h = h.slice(0, -4);
  return h;
}

export type OriginVerdict = "same" | "foreign" | "absent";

/**
 * Whether a request comes from a page of this very host (by any name the
 * request carries for it). Uses `Origin`,
 * else `Referer`, else `Sec-Fetch-Site`; "absent" means a non-browser
 * client (curl, a server), which cannot carry a victim's cookie.
 */
export function originVerdict(headers: Headers, requestHosts: readonly string[], trusted: readonly string[]): OriginVerdict {
  const origin = headers.get("origin");
  const referer = headers.get("referer");
  const source = origin ?? referer;
  if (source !== null) {
    if (source === "null") return "foreign";
    let u: URL;
    try {
      u = new URL(source);
    } catch {
      return "foreign";
    }
    if (trusted.includes(u.origin)) return "same";
    const host = normalHost(u.host, u.protocol);
    return requestHosts.some((h) => normalHost(h) === host) ? "same" : "foreign";
  }
  const site = headers.get("sec-fetch-site");
  if (site === null) return "absent";
  return site === "same-origin" || site === "none" ? "same" : "foreign";
}

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
