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
  if (typeof prefix !== "string" || !PREFIX.test(prefix)) {
    throw new ConfigError('[qml] [redis] keyPrefix must be 1-64 characters of letters, digits, "_", "-", "." or ":" (no braces or glob characters)');
  }
  return prefix;
}

export function validateHashTag(tag: unknown): string {
  if (typeof tag !== "string" || !TAG.test(tag)) {
    throw new ConfigError('[qml] [redis] hashTag must be 1-32 characters of letters, digits, "_", "-" or "."');
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
