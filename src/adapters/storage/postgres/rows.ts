/**
 * Rows as the statements return them (JSON and bigints as text, the same
 * on every driver) turned into the core's records.
 */
import type { RecurringDefinition } from "../../../core/driver.js";
import type { ErrorInfo } from "../../../core/errors.js";
import { historyFromLines, type FlowSpec, type JobRecord, type JobState, type StepRecord } from "../../../core/job.js";
import type { RetrySpec } from "../../../core/retry.js";

export type Row = Record<string, unknown>;

export const num = (v: unknown): number => (typeof v === "number" ? v : Number(v));
const json = (v: unknown): unknown => (typeof v === "string" ? JSON.parse(v) : v);

/**
 * Claimed rows in claim order: the queues in the order asked, then priority
 * (highest first), run_at, seq, as the claim's `pick` ordered them.
 */
export function claimOrder(rows: Row[], queues: string[]): Row[] {
  if (rows.length < 2) return rows;
  const rank = new Map(queues.map((q, i) => [q, i] as const));
  const keyed = rows.map((row) => ({ row, q: rank.get(row.queue as string) ?? queues.length, p: num(row.priority), r: num(row.run_at), s: num(row.seq) }));
  keyed.sort((a, b) => a.q - b.q || b.p - a.p || a.r - b.r || a.s - b.s);
  return keyed.map((k) => k.row);
}

export function toRecord(row: Row): JobRecord {
  const r = recordFields(row) as JobRecord;
  r.history = historyFromLines(row.history as string);
  return r;
}

/** Every field of a row's record but its history. */
export function recordFields(row: Row): Omit<JobRecord, "history"> {
  const r: Omit<JobRecord, "history"> = {
    id: row.id as string,
    name: row.name as string,
    args: json(row.args) as unknown[],
    queue: row.queue as string,
    priority: num(row.priority),
    state: row.state as JobState,
    attempts: num(row.attempts),
    maxAttempts: num(row.max_attempts),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    runAt: num(row.run_at),
    leaseToken: num(row.lease_token),
  };
  if (row.retry != null) r.retry = json(row.retry) as RetrySpec;
  if (row.timeout_ms != null) r.timeoutMs = num(row.timeout_ms);
  if (row.unique_key != null) r.uniqueKey = row.unique_key as string;
  if (row.unique_until != null) r.uniqueUntil = num(row.unique_until);
  if (row.concurrency_key != null) {
    r.concurrencyKey = row.concurrency_key as string;
    r.concurrencyLimit = num(row.concurrency_limit);
  }
  if (row.rate_key != null) {
    r.rateKey = row.rate_key as string;
    r.rateLimit = num(row.rate_limit);
    r.rateInterval = num(row.rate_interval);
  }
  if (row.rate_window != null) r.rateWindow = num(row.rate_window);
  if (row.metadata != null) r.metadata = json(row.metadata) as Record<string, unknown>;
  if (row.lease_owner != null) r.leaseOwner = row.lease_owner as string;
  if (row.lease_until != null) r.leaseUntil = num(row.lease_until);
  if (row.finished_at != null) r.finishedAt = num(row.finished_at);
  if (row.result != null) r.result = json(row.result);
  if (row.error != null) r.error = json(row.error) as ErrorInfo;
  if (row.progress != null) r.progress = json(row.progress);
  if (row.flow != null) r.flow = json(row.flow) as FlowSpec;
  if (row.steps != null) r.steps = json(row.steps) as StepRecord[];
  return r;
}

export function toRecurring(row: Row): RecurringDefinition {
  const d: RecurringDefinition = {
    id: row.id as string,
    cron: row.cron as string,
    name: row.name as string,
    args: json(row.args) as unknown[],
    options: json(row.options) as RecurringDefinition["options"],
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
  if (row.timezone != null) d.timezone = row.timezone as string;
  if (row.last_slot != null) d.lastSlot = num(row.last_slot);
  return d;
}
