/**
 * How PostgresBackend.insert folds a batch into the insert statement's
 * groups (statements/insert.ts), and reads the statement's answer back into
 * one result per record.
 *
 * Records are taken in order (driver.ts). Those sharing a unique key form a
 * group, and what a group does depends only on the key's holder in the
 * store: none (or its window over), waiting, or running. So each group is
 * folded here into its plan for each case, and the statement picks one:
 *
 *   free     the first record is inserted; each later debounce replaces
 *            it (its fields, one "debounced" entry each): the first record
 *            goes in with the last debounce's fields and those entries.
 *   waiting  each debounce replaces the holder: it takes the last one's
 *            fields and one entry per debounce.
 *   running  records before the first debounce get the holder; the first
 *            debounce is inserted and takes the key, and the debounces
 *            after it replace it, as under free.
 *
 * A record whose id repeats an earlier one of the batch is not sent: it
 * gets that one's job (`created: false`).
 */
import type { InsertRecord, InsertResult } from "../../../core/driver.js";
import { HISTORY_LIMIT, JobState, appendHistory, type HistoryEntry } from "../../../core/job.js";

/** One group: the records of one unique key (or one record without a key), in batch order. */
export interface KeyGroup {
  g: number;
  members: number[];
  /** Position in members of the first debounce record; -1 when none. */
  firstDebounce: number;
  /** The statement's $1 row for this group. */
  row: Record<string, unknown>;
  /** Its $4 rows: the record inserted when the key is free, and the one when its holder runs (one row when the same). */
  records: Array<Record<string, unknown>>;
}

/** The statement's answer for one group. */
export interface GroupAnswer {
  kind: "free" | "expired" | "waiting" | "running";
  hid: string | null;
  inserted: boolean;
  taken: boolean;
  debounced: boolean;
}

export interface InsertPlan {
  groups: KeyGroup[];
  /** Record index → the earlier record of the batch with the same id. */
  aliases: Map<number, number>;
}

const isDebounce = (r: InsertRecord): boolean => r.debounce === true && r.uniqueKey !== undefined;

/** A waiting job's state for its due time. */
const waitingState = (runAt: number, now: number): JobState => (runAt > now ? JobState.Scheduled : JobState.Enqueued);

const debouncedEntry = (r: InsertRecord, now: number): HistoryEntry => ({ state: waitingState(r.runAt, now), at: now, reason: "debounced" });

/** History as the jobs table keeps it (migration 0002): entries' JSON joined by newlines. */
const lines = (entries: HistoryEntry[]): string => entries.map((h) => JSON.stringify(h)).join("\n");

export function planInsert(records: InsertRecord[], now: number): InsertPlan {
  const aliases = new Map<number, number>();
  const byId = new Map<string, number>();
  const byKey = new Map<string, number[]>();
  const ordered: number[][] = [];
  records.forEach((r, i) => {
    const first = byId.get(r.id);
    if (first !== undefined) {
      aliases.set(i, first);
      return;
    }
    byId.set(r.id, i);
    const same = r.uniqueKey === undefined ? undefined : byKey.get(r.uniqueKey);
    if (same) {
      same.push(i);
      return;
    }
    const members = [i];
    if (r.uniqueKey !== undefined) byKey.set(r.uniqueKey, members);
    ordered.push(members);
  });
  const groups = ordered.map((members, g) => planGroup(g, members, records, now));
  return { groups, aliases };
}

function planGroup(g: number, members: number[], records: InsertRecord[], now: number): KeyGroup {
  const recs = members.map((i) => records[i]!);
  const firstDebounce = recs.findIndex(isDebounce);
  const row: Record<string, unknown> = { g, unique_key: recs[0]!.uniqueKey ?? null };
  if (firstDebounce >= 0) {
    // A waiting holder takes the free record's fields (the last debounce's,
    // as the record was folded) and one entry per debounce of the group.
    const entries = recs
      .filter(isDebounce)
      .slice(-HISTORY_LIMIT)
      .map((d) => debouncedEntry(d, now));
    row.d_history = lines(entries);
    row.d_n = entries.length;
  }
  const free = recordRow(g, firstDebounce === 0 ? "both" : "free", recs, 0, now);
  const rows = firstDebounce > 0 ? [free, recordRow(g, "run", recs, firstDebounce, now)] : [free];
  return { g, members, firstDebounce, row, records: rows };
}

/** recs[at] as inserted, replaced in turn by each debounce after it. */
function recordRow(g: number, role: "free" | "run" | "both", recs: InsertRecord[], at: number, now: number): Record<string, unknown> {
  const base = recs[at]!;
  const debounces = recs.slice(at + 1).filter(isDebounce);
  const last = debounces.at(-1);
  const data = last ?? base;
  // The history as the table keeps it: trimmed to HISTORY_LIMIT, as append_history trims.
  const history = last ? appendHistory([...base.history], ...debounces.map((d) => debouncedEntry(d, now))) : base.history;
  return {
    g,
    role,
    id: base.id,
    name: base.name,
    queue: base.queue,
    priority: base.priority,
    state: last ? waitingState(last.runAt, now) : base.state,
    max_attempts: base.maxAttempts,
    retry: base.retry ?? null,
    timeout_ms: base.timeoutMs ?? null,
    unique_key: base.uniqueKey ?? null,
    unique_until: data.uniqueUntil ?? null,
    concurrency_key: base.concurrencyKey ?? null,
    concurrency_limit: base.concurrencyLimit ?? null,
    rate_key: base.rateKey ?? null,
    rate_limit: base.rateLimit ?? null,
    rate_interval: base.rateInterval ?? null,
    metadata: data.metadata ?? null,
    run_at: data.runAt,
    // An awaiting record's FlowSpec (as an object: ids hold no U+0000).
    flow: base.flow ?? null,
    // Still needed: arguments may hold U+0000, which jsonb cannot.
    // Serialised apart, they reach the json column as JSON text,
    // where it stays a \u escape, and read back exactly.
    args: JSON.stringify(data.args),
    history: lines(history),
    hn: history.length,
  };
}

/**
 * The results of a group's records for the statement's answer, in member
 * order; undefined when the group must be sent again (a concurrent
 * statement changed its key's holder after this one's snapshot).
 */
export function settleGroup(group: KeyGroup, records: InsertRecord[], a: GroupAnswer): InsertResult[] | undefined {
  const m = group.members;
  const k = group.firstDebounce;
  const replacedOr = (id: string, j: number): InsertResult => (isDebounce(records[m[j]!]!) ? { id, created: false, replaced: true } : { id, created: false });
  if (a.kind === "free" || a.kind === "expired") {
    const id = records[m[0]!]!.id;
    if (a.inserted) return m.map((_, j) => (j === 0 ? { id, created: true } : replacedOr(id, j)));
    if (a.taken) return m.map(() => ({ id, created: false }));
    return undefined;
  }
  const hid = a.hid!;
  if (k < 0) return m.map(() => ({ id: hid, created: false }));
  if (a.kind === "waiting") return a.debounced ? m.map((_, j) => replacedOr(hid, j)) : undefined;
  const id = records[m[k]!]!.id;
  if (a.inserted) return m.map((_, j) => (j < k ? { id: hid, created: false } : j === k ? { id, created: true } : replacedOr(id, j)));
  if (a.taken) return m.map((_, j) => ({ id: j < k ? hid : id, created: false }));
  return undefined;
}
