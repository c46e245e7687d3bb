/**
 * Key names. Every key is `<prefix>{<tag>}:<suffix>`: the prefix lets one
 * Redis hold several qml instances (and lets an operator find ours with
 * `SCAN MATCH qml:*`); the hash tag puts all of one instance's keys in one
 * Redis Cluster slot, which a Lua script touching several keys needs. The
 * full layout is documented in scripts/lib/common.lua, the only code that
 * builds keys past the base.
 *
 * Only configuration (validated here) goes into the base; job ids, queue
 * and job names become key suffixes inside the scripts as opaque bytes
 * after the tag, so they cannot move a key to another slot, and nothing
 * from input is ever spliced into Lua source.
 */
import { ConfigError } from "../../../core/errors.js";

const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;
const TAG = /^[A-Za-z0-9_.-]{1,32}$/;

export function validateKeyPrefix(prefix: unknown): string {
  if (typeof prefix === "string" && /[{}]/.test(prefix)) {
    throw new ConfigError(
      `keyPrefix ${JSON.stringify(prefix)} has a brace: Redis Cluster would hash the keys by what the braces hold, not by the hash tag, and a script's keys could land in different slots. Set the slot with withHashTag instead`,
      { scope: "redis" },
    );
  }
  if (typeof prefix !== "string" || !PREFIX.test(prefix)) {
    throw new ConfigError('keyPrefix must be 1-64 characters of letters, digits, "_", "-", "." or ":" (no braces or glob characters)', { scope: "redis" });
  }
  return prefix;
}

export function validateHashTag(tag: unknown): string {
  if (typeof tag !== "string" || !TAG.test(tag)) {
    throw new ConfigError('hashTag must be 1-32 characters of letters, digits, "_", "-" or "."', { scope: "redis" });
  }
  return tag;
}

/** The base every script derives its keys from: `qml:{q}:`. */
export function baseKey(prefix: string, tag: string): string {
  return `${validateKeyPrefix(prefix)}{${validateHashTag(tag)}}:`;
}

/** Keys the TypeScript side names directly (everything else lives in the scripts). */
export function keyNames(base: string) {
  return {
    meta: `${base}meta`,
    job: (id: string) => `${base}job:${id}`,
  };
}

/**
 * What Redis Cluster hashes of `key`: the text between the first `{` and
 * the first `}` after it when that is not empty, else the whole key.
 */
export function hashedPart(key: string): string {
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  return close === -1 || close === open + 1 ? key : key.slice(open + 1, close);
}

/** CRC16-CCITT (XMODEM), as Redis Cluster computes it. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The Redis Cluster slot of `key` (what CLUSTER KEYSLOT answers). */
export function keySlot(key: string): number {
  return crc16(new TextEncoder().encode(hashedPart(key))) % 16384;
}

/**
 * Refuses a layout whose keys would not share one slot: every key a script
 * reaches is `base` plus a suffix, so the base must open with the tag's
 * braces, and keys with braces or arbitrary bytes in the suffix (job ids,
 * kv keys) must still hash by that tag. Returns the slot.
 */
export function assertOneSlot(base: string, extra: { keyPrefix?: string | undefined } = {}): number {
  const prefix = extra.keyPrefix ?? "";
  const samples = ["meta", "job:x", "job:{other}", "kv:}{", "wake", "q:default:enqueued"].map((suffix) => `${prefix}${base}${suffix}`);
  const slots = new Set(samples.map(keySlot));
  if (slots.size !== 1 || hashedPart(samples[0]!) !== hashedPart(`${base}meta`)) {
    throw new ConfigError(
      `keys under ${JSON.stringify(prefix + base)} would span Redis Cluster slots${prefix ? ` (the client's keyPrefix ${JSON.stringify(prefix)} has braces)` : ""}: a script's keys must share one slot; set the slot with withHashTag only`,
      { scope: "redis" },
    );
  }
  return [...slots][0]!;
}
