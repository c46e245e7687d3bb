/**
 * Encrypted arguments: a job's arguments (all of them, or named top-level
 * fields of its object arguments) sealed with AES-256-GCM through WebCrypto
 * (`crypto.subtle`: Node, Workers and Lambda alike).
 *
 *   const storage = new Storage(backend, { encryption: Keyring.parse(env.QML_ENCRYPTION_KEYS) });
 *   await storage.enqueue(new Job("charge", [{ customer: 42, card: "4242…" }], { encrypt: ["card"] }));
 *
 * Where plaintext exists: in the enqueuing process until `Storage.enqueue`
 * seals the record (before the driver sees it: stores only ever hold
 * ciphertext), and in the processor, which opens the arguments of the Job
 * it hands to the handler and nowhere else. Everything else reads the
 * stored record: the dashboard, the REST API, live frames, events, logs,
 * metrics and error reports see envelopes.
 *
 * An envelope is a JSON object in place of the sealed value:
 *
 *   { "qml:enc": 1, "kid": "k2", "iv": "<12 bytes, base64>", "ct": "<ciphertext and tag, base64>" }
 *
 * - `encrypt: true`: the arguments become `[envelope]` sealing the whole array;
 * - `encrypt: ["card", …]`: each named field of each plain-object argument is
 *   replaced by an envelope sealing that field's value (absent fields are skipped).
 *
 * Every seal has a fresh random 96-bit IV and binds, as additional
 * authenticated data, the job's id and the value's place ("*" for the whole
 * arguments, "<index>/<field>" for a field): a ciphertext copied to another
 * job, or to another field, does not open. The key id in the envelope picks
 * the key; the keyring's first key seals, every key opens (rotation).
 */
import { ConfigError, DecryptionError, EncryptionKeyMissingError, ValidationError } from "./errors.js";

/** One key of a keyring: an id (named by every envelope it seals) and 32 raw bytes, or their base64. */
export interface EncryptionKey {
  id: string;
  key: string | Uint8Array;
}

/** What `JobOptions.encrypt` takes: every argument, or these top-level fields of the object arguments. */
export type EncryptSpec = boolean | readonly string[];

const MARK = "qml:enc";
const VERSION = 1;
const KEY_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const KEY_BYTES = 32;
const IV_BYTES = 12;
/** Fields named by one job's `encrypt`: a list, not a schema. */
const MAX_FIELDS = 100;
const WHOLE = "*";

interface Envelope {
  [MARK]: typeof VERSION;
  kid: string;
  iv: string;
  ct: string;
}

/**
 * Keys by id. The first key seals; every key opens, so that rotation is:
 * add the new key last everywhere (it opens), then move it first (it
 * seals), then drop the old one once no job sealed with it is left.
 * Key bytes are held privately and never printed (`toJSON`, `toString`
 * show the ids only).
 */
export class Keyring {
  /** Key ids, the sealing one first. */
  readonly ids: readonly string[];
  readonly #raw = new Map<string, Uint8Array<ArrayBuffer>>();
  readonly #imported = new Map<string, Promise<CryptoKey>>();

  /** Checks every key (id, base64, 32 bytes, no duplicate id): a bad one throws a ConfigError naming it, never its bytes. */
  constructor(keys: readonly EncryptionKey[], source = "the keyring") {
    if (!Array.isArray(keys) || keys.length === 0) throw new ConfigError(`${source} needs at least one key`);
    for (const k of keys) {
      if (typeof k !== "object" || k === null) throw new ConfigError(`${source}: each key is { id, key }`);
      const id: unknown = k.id;
      if (typeof id !== "string" || !KEY_ID.test(id)) {
        throw new ConfigError(`${source}: key id ${JSON.stringify(id)} is invalid: expected 1-64 letters, digits, "_", "-", "."`);
      }
      if (this.#raw.has(id)) throw new ConfigError(`${source}: key id ${JSON.stringify(id)} appears twice`);
      const bytes = typeof k.key === "string" ? decodeBase64(k.key) : k.key instanceof Uint8Array ? Uint8Array.from(k.key) : undefined;
      if (bytes === undefined) throw new ConfigError(`${source}: key ${id} is not valid base64`);
      if (bytes.length !== KEY_BYTES) {
        throw new ConfigError(`${source}: key ${id} is ${bytes.length} bytes; AES-256 needs ${KEY_BYTES} (openssl rand -base64 32)`);
      }
      this.#raw.set(id, bytes);
    }
    this.ids = Object.freeze([...this.#raw.keys()]);
  }

  /** `"k2:<base64>,k1:<base64>"` (QML_ENCRYPTION_KEYS): comma-separated `id:base64`, the sealing key first. */
  static parse(text: string, source = "QML_ENCRYPTION_KEYS"): Keyring {
    if (typeof text !== "string") throw new ConfigError(`${source} must be a string of id:base64 keys`);
    const items = text
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    const keys = items.map((item, i): EncryptionKey => {
      const colon = item.indexOf(":");
      if (colon <= 0) throw new ConfigError(`${source}: item ${i + 1} is not id:base64`);
      return { id: item.slice(0, colon).trim(), key: item.slice(colon + 1).trim() };
    });
    return new Keyring(keys, source);
  }

  /** A new random key, as base64 (what `openssl rand -base64 32` prints). */
  static generateKey(): string {
    return encodeBase64(crypto.getRandomValues(new Uint8Array(KEY_BYTES)));
  }

  /** The id of the key that seals. */
  get current(): string {
    return this.ids[0]!;
  }

  has(id: string): boolean {
    return this.#raw.has(id);
  }

  /** @internal The WebCrypto key of `id`, imported once (not extractable). */
  cryptoKey(id: string): Promise<CryptoKey> | undefined {
    const raw = this.#raw.get(id);
    if (!raw) return undefined;
    let key = this.#imported.get(id);
    if (!key) {
      key = crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
      this.#imported.set(id, key);
    }
    return key;
  }

  toJSON(): { ids: readonly string[] } {
    return { ids: this.ids };
  }

  toString(): string {
    return `Keyring(${this.ids.join(", ")})`;
  }
}

// ---------------------------------------------------------------- sealing

/** Checks a job's `encrypt` option; returns it as true, a field list, or undefined (none). */
export function checkEncryptSpec(spec: unknown): true | readonly string[] | undefined {
  if (spec === undefined || spec === false) return undefined;
  if (spec === true) return true;
  if (!Array.isArray(spec) || spec.length === 0 || spec.length > MAX_FIELDS) {
    throw new ValidationError(`encrypt must be true or a list of 1-${MAX_FIELDS} top-level field names`, "encrypt");
  }
  for (const f of spec) {
    if (typeof f !== "string" || f.length === 0 || f.length > 200)
      throw new ValidationError("encrypt: each field name is a string of 1-200 characters", "encrypt");
  }
  if (new Set(spec).size !== spec.length) throw new ValidationError("encrypt names a field twice", "encrypt");
  return spec as readonly string[];
}

/**
 * Seals the arguments of the records whose job asks for it (`job.encrypt`),
 * in place, before they reach the driver. Every job is checked before any
 * is sealed: a refused one leaves nothing half-done.
 */
export async function sealRecords(
  jobs: ReadonlyArray<{ encrypt?: EncryptSpec | undefined; uniqueMode?: string | undefined }>,
  records: Array<{ id: string; args: unknown[] }>,
  keyring: Keyring | undefined,
): Promise<void> {
  const specs = jobs.map((j) => checkEncryptSpec(j.encrypt));
  if (specs.every((s) => s === undefined)) return;
  if (!keyring) {
    throw new ConfigError("a job asks for encrypted arguments, but this Storage has no keyring: new Storage(backend, { encryption }) or QML_ENCRYPTION_KEYS");
  }
  specs.forEach((s, i) => {
    // A debounced enqueue writes its arguments onto an earlier job, whose id the seal would not name.
    if (s !== undefined && jobs[i]!.uniqueMode === "debounce") throw new ValidationError('encrypted arguments cannot use uniqueMode "debounce"', "encrypt");
  });
  await Promise.all(
    records.map(async (r, i) => {
      const spec = specs[i];
      if (spec !== undefined) r.args = await sealArguments(r.id, r.args, spec, keyring);
    }),
  );
}

/** The arguments with `spec` sealed for job `jobId`. */
export async function sealArguments(jobId: string, args: unknown[], spec: true | readonly string[], keyring: Keyring): Promise<unknown[]> {
  if (spec === true) return [await seal(jobId, WHOLE, args, keyring)];
  return Promise.all(
    args.map(async (arg, i) => {
      if (!isPlainObject(arg) || isEnvelope(arg)) return arg;
      const out: Record<string, unknown> = { ...arg };
      for (const field of spec) {
        if (Object.prototype.hasOwnProperty.call(arg, field)) out[field] = await seal(jobId, `${i}/${field}`, arg[field], keyring);
      }
      return out;
    }),
  );
}

/** Whether any argument, or any top-level field of one, is sealed. Cheap: the processor asks it of every job. */
export function hasSealedArguments(args: readonly unknown[]): boolean {
  for (const a of args) {
    if (!isPlainObject(a)) continue;
    if (isEnvelope(a)) return true;
    for (const k in a) if (isEnvelope(a[k])) return true;
  }
  return false;
}

/**
 * The arguments of job `jobId` opened: what its handler receives. Throws
 * EncryptionKeyMissingError when a key is not in the keyring (or there is
 * none), DecryptionError when a value does not authenticate (altered,
 * copied from another job or field, or a different key under the same id).
 */
export async function openArguments(jobId: string, args: unknown[], keyring: Keyring | undefined): Promise<unknown[]> {
  if (args.length === 1 && isEnvelope(args[0])) {
    const whole = await open(jobId, WHOLE, args[0], keyring);
    if (!Array.isArray(whole)) throw new DecryptionError(jobId, WHOLE);
    return whole;
  }
  return Promise.all(
    args.map(async (arg, i) => {
      if (!isPlainObject(arg)) return arg;
      if (isEnvelope(arg)) throw new DecryptionError(jobId, String(i));
      let out: Record<string, unknown> | undefined;
      for (const k of Object.keys(arg)) {
        const v = arg[k];
        if (!isEnvelope(v)) continue;
        out ??= { ...arg };
        out[k] = await open(jobId, `${i}/${k}`, v, keyring);
      }
      return out ?? arg;
    }),
  );
}

async function seal(jobId: string, place: string, value: unknown, keyring: Keyring): Promise<Envelope> {
  const kid = keyring.current;
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const plain = new TextEncoder().encode(JSON.stringify(value) ?? "null");
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(jobId, place) }, await keyring.cryptoKey(kid)!, plain);
  return { [MARK]: VERSION, kid, iv: encodeBase64(iv), ct: encodeBase64(new Uint8Array(ct)) };
}

async function open(jobId: string, place: string, env: Envelope, keyring: Keyring | undefined): Promise<unknown> {
  const key = keyring?.cryptoKey(env.kid);
  if (!key) throw new EncryptionKeyMissingError(jobId, env.kid, keyring !== undefined);
  const iv = decodeBase64(env.iv);
  const ct = decodeBase64(env.ct);
  if (!iv || iv.length !== IV_BYTES || !ct) throw new DecryptionError(jobId, place);
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad(jobId, place) }, await key, ct);
  } catch (cause) {
    throw new DecryptionError(jobId, place, { cause });
  }
  try {
    return JSON.parse(new TextDecoder().decode(plain)) as unknown;
  } catch (cause) {
    throw new DecryptionError(jobId, place, { cause });
  }
}

/** The additional authenticated data: the job and the place the value was sealed for. */
function aad(jobId: string, place: string): Uint8Array<ArrayBuffer> {
  // Copied into a fresh ArrayBuffer: WebCrypto's types take no SharedArrayBuffer view.
  return new Uint8Array(new TextEncoder().encode(`qml:enc:${VERSION}\n${jobId}\n${place}`));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isEnvelope(v: unknown): v is Envelope {
  if (!isPlainObject(v) || v[MARK] !== VERSION) return false;
  return typeof v.kid === "string" && typeof v.iv === "string" && typeof v.ct === "string";
}

// ----------------------------------------------------------------- base64

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 (base64url accepted); undefined when malformed. */
function decodeBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  let s = text.replace(/-/g, "+").replace(/_/g, "/");
  if (s.length % 4 !== 0) s += "=".repeat(4 - (s.length % 4));
  if (!B64.test(s)) return undefined;
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
