/**
 * A job record as a Redis hash, and back.
 *
 * Fields are the JobRecord's names. Numbers are decimal strings; arguments,
 * result, error, progress, retry, metadata, flow and steps (written only by
 * steps.lua, under the lease) are JSON text that the
 * scripts never rewrite (Lua's cjson would rewrite numbers such as 1e21 or
 * 0.1), so a job reads back exactly as it was written. Only flow is ever
 * decoded by a script: its dependsOn, a list of ids (strings, which cjson
 * reads back byte for byte), names the dependency edges a script writes or
 * drops (insert.lua, transition.lua). History is one field: the
 * entries' JSON joined by "\n", with `hn` counting them, so a script
 * appends and trims it with string operations (see lib/common.lua).
 * `seq` is the placement sequence the ready/delayed indexes are keyed by;
 * `op` the id of the last operator transition and `dop` that of the last
 * insert call that debounced the job (to recognise their retries).
 */
import { StorageUnavailableError } from "../../../core/errors.js";
import { JobState, historyFromLines, isJobState, type HistoryEntry, type JobRecord } from "../../../core/job.js";
import type { RedisReply } from "./driver.js";

/**
 * The fields every job hash has, in the order insert.lua takes their values
 * (it names them in its HSET; test/redis/scripts.test.ts keeps the two in step).
 */
export const REQUIRED_FIELDS = [
  "id",
  "name",
  "args",
  "queue",
  "priority",
  "state",
  "attempts",
  "maxAttempts",
  "createdAt",
  "updatedAt",
  "runAt",
  "leaseToken",
  "history",
  "hn",
] as const;

/**
 * A new record's hash: the values of REQUIRED_FIELDS in their order, then
 * the optional fields it has as field/value pairs. Values only where the
 * names are fixed: Redis's Lua hashes every byte of every argument.
 */
export function encodeRecord(r: JobRecord): { required: string[]; optional: string[] } {
  const required: string[] = [
    r.id,
    r.name,
    JSON.stringify(r.args),
    r.queue,
    String(r.priority),
    r.state,
    String(r.attempts),
    String(r.maxAttempts),
    String(r.createdAt),
    String(r.updatedAt),
    String(r.runAt),
    String(r.leaseToken),
    r.history.map((h) => JSON.stringify(h)).join("\n"),
    String(r.history.length),
  ];
  const f: string[] = [];
  if (r.retry !== undefined) f.push("retry", JSON.stringify(r.retry));
  if (r.timeoutMs !== undefined) f.push("timeoutMs", String(r.timeoutMs));
  if (r.uniqueKey !== undefined) f.push("uniqueKey", r.uniqueKey);
  if (r.uniqueUntil !== undefined) f.push("uniqueUntil", String(r.uniqueUntil));
  if (r.concurrencyKey !== undefined) f.push("concurrencyKey", r.concurrencyKey, "concurrencyLimit", String(r.concurrencyLimit));
  if (r.rateKey !== undefined) f.push("rateKey", r.rateKey, "rateLimit", String(r.rateLimit), "rateInterval", String(r.rateInterval));
  if (r.rateWindow !== undefined) f.push("rateWindow", String(r.rateWindow));
  if (r.metadata !== undefined) f.push("metadata", JSON.stringify(r.metadata));
  if (r.leaseOwner !== undefined) f.push("leaseOwner", r.leaseOwner);
  if (r.leaseUntil !== undefined) f.push("leaseUntil", String(r.leaseUntil));
  if (r.finishedAt !== undefined) f.push("finishedAt", String(r.finishedAt));
  const result = json(r.result);
  if (result !== undefined) f.push("result", result);
  if (r.error !== undefined) f.push("error", JSON.stringify(r.error));
  const progress = json(r.progress);
  if (progress !== undefined) f.push("progress", progress);
  if (r.flow !== undefined) f.push("flow", JSON.stringify(r.flow));
  return { required, optional: f };
}

/** JSON text of a value, or undefined for undefined (and for what JSON drops, such as a function). */
export function json(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  return JSON.stringify(v) as string | undefined;
}

function corrupt(why: string): never {
  throw new StorageUnavailableError(`a job hash is malformed: ${why}`, { scope: "redis" });
}

/** A HGETALL-shaped flat array to a record; null for an empty array (no such job). */
export function decodeRecord(reply: RedisReply): JobRecord | null {
  if (!Array.isArray(reply)) return corrupt("not an array");
  if (reply.length === 0) return null;
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) h.set(String(reply[i]), String(reply[i + 1]));
  const str = (k: string) => h.get(k) ?? corrupt(`no ${k}`);
  const num = (k: string) => {
    const n = Number(str(k));
    return Number.isFinite(n) ? n : corrupt(`${k} is not a number`);
  };
  const state = str("state");
  if (!isJobState(state)) corrupt(`unknown state ${state}`);
  const history = h.get("history");
  const r: JobRecord = {
    id: str("id"),
    name: str("name"),
    args: JSON.parse(str("args")) as unknown[],
    queue: str("queue"),
    priority: num("priority"),
    state,
    attempts: num("attempts"),
    maxAttempts: num("maxAttempts"),
    createdAt: num("createdAt"),
    updatedAt: num("updatedAt"),
    runAt: num("runAt"),
    leaseToken: num("leaseToken"),
    history: historyFromLines(history ?? ""),
  };
  if (h.has("retry")) r.retry = JSON.parse(h.get("retry")!) as JobRecord["retry"];
  if (h.has("timeoutMs")) r.timeoutMs = num("timeoutMs");
  if (h.has("uniqueKey")) r.uniqueKey = h.get("uniqueKey")!;
  if (h.has("uniqueUntil")) r.uniqueUntil = num("uniqueUntil");
  if (h.has("concurrencyKey")) {
    r.concurrencyKey = h.get("concurrencyKey")!;
    r.concurrencyLimit = num("concurrencyLimit");
  }
  if (h.has("rateKey")) {
    r.rateKey = h.get("rateKey")!;
    r.rateLimit = num("rateLimit");
    r.rateInterval = num("rateInterval");
  }
  if (h.has("rateWindow")) r.rateWindow = num("rateWindow");
  if (h.has("metadata")) r.metadata = JSON.parse(h.get("metadata")!) as Record<string, unknown>;
  if (h.has("leaseOwner")) r.leaseOwner = h.get("leaseOwner")!;
  if (h.has("leaseUntil")) r.leaseUntil = num("leaseUntil");
  if (h.has("finishedAt")) r.finishedAt = num("finishedAt");
  if (h.has("result")) r.result = JSON.parse(h.get("result")!);
  if (h.has("error")) r.error = JSON.parse(h.get("error")!) as JobRecord["error"];
  if (h.has("progress")) r.progress = JSON.parse(h.get("progress")!);
  if (h.has("flow")) r.flow = JSON.parse(h.get("flow")!) as JobRecord["flow"];
  if (h.has("steps")) r.steps = JSON.parse(h.get("steps")!) as JobRecord["steps"];
  return r;
}

/**
 * claim.lua's reply (an array with one JSON text per job, see its header) to
 * records: the same records decodeRecord makes of the same jobs' hashes, all
 * in processing. A row already parsed is taken as it is (an Upstash client
 * built with automaticDeserialization on parses each string it can).
 */
export function decodeClaimed(reply: RedisReply): JobRecord[] {
  if (!Array.isArray(reply)) return corrupt("the claim reply is not an array");
  const out: JobRecord[] = new Array(reply.length);
  for (let j = 0; j < reply.length; j++) {
    let row: unknown = reply[j];
    if (typeof row === "string") {
      try {
        row = JSON.parse(row);
      } catch {
        return corrupt("a claimed job is not JSON");
      }
    }
    out[j] = claimedRecord(row);
  }
  return out;
}

function claimedRecord(a: unknown): JobRecord {
  if (!Array.isArray(a) || a.length < 15) return corrupt("a claimed job is not a positional array");
  const mask = a[0] as number;
  const r: JobRecord = {
    id: asString(a[1], "id"),
    name: asString(a[2], "name"),
    args: a[3] === null ? corrupt("no args") : (a[3] as unknown[]),
    queue: asString(a[4], "queue"),
    priority: asNumber(a[5], "priority"),
    state: JobState.Processing,
    attempts: asNumber(a[6], "attempts"),
    maxAttempts: asNumber(a[7], "maxAttempts"),
    createdAt: asNumber(a[8], "createdAt"),
    updatedAt: asNumber(a[9], "updatedAt"),
    runAt: asNumber(a[10], "runAt"),
    leaseToken: asNumber(a[11], "leaseToken"),
    history: a[12] as HistoryEntry[],
  };
  let i = 15;
  if (mask & 1) r.retry = a[i++] as JobRecord["retry"];
  if (mask & 2) r.timeoutMs = asNumber(a[i++], "timeoutMs");
  if (mask & 4) r.uniqueKey = asString(a[i++], "uniqueKey");
  if (mask & 8) r.uniqueUntil = asNumber(a[i++], "uniqueUntil");
  if (mask & 16) r.concurrencyKey = asString(a[i++], "concurrencyKey");
  if (mask & 32) r.concurrencyLimit = asNumber(a[i++], "concurrencyLimit");
  if (mask & 64) r.rateKey = asString(a[i++], "rateKey");
  if (mask & 128) r.rateLimit = asNumber(a[i++], "rateLimit");
  if (mask & 256) r.rateInterval = asNumber(a[i++], "rateInterval");
  if (mask & 512) r.rateWindow = asNumber(a[i++], "rateWindow");
  if (mask & 1024) r.metadata = a[i++] as Record<string, unknown>;
  // Key order as decodeRecord's: records of both paths share one shape.
  if (a[13] !== null) r.leaseOwner = asString(a[13], "leaseOwner");
  if (a[14] !== null) r.leaseUntil = asNumber(a[14], "leaseUntil");
  if (mask & 2048) r.finishedAt = asNumber(a[i++], "finishedAt");
  if (mask & 4096) r.result = a[i++];
  if (mask & 8192) r.error = a[i++] as JobRecord["error"];
  if (mask & 16384) r.progress = a[i++];
  if (mask & 32768) r.flow = a[i++] as JobRecord["flow"];
  if (mask & 65536) r.steps = a[i++] as JobRecord["steps"];
  return r;
}

function asString(v: unknown, k: string): string {
  return typeof v === "string" ? v : corrupt(`no ${k}`);
}

function asNumber(v: unknown, k: string): number {
  return typeof v === "number" && Number.isFinite(v) ? v : corrupt(`${k} is not a number`);
}

/** A flat [k, v, k, v…] reply to a Map. */
export function hashOf(reply: RedisReply): Map<string, string> {
  const m = new Map<string, string>();
  if (!Array.isArray(reply)) return m;
  for (let i = 0; i + 1 < reply.length; i += 2) m.set(String(reply[i]), String(reply[i + 1]));
  return m;
}
