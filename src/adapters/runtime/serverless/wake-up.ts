/**
 * The wake-up message, the one format both notifiers send (a Cloudflare
 * Queue, SQS) and both consumers read:
 *
 *   {"v":1,"queue":"default","ids":["…","…"],"runAt":1767225600000}
 *
 * It says "look at these jobs of this queue now", never what they are: the
 * store is the source of truth, and a message outlives edits to its jobs,
 * so a lost or repeated message delays or repeats a look, never a job.
 *
 * - Several ids share a message: a bulk enqueue of 1,000 jobs is 20
 *   messages of 50 ids (2 SendMessageBatch calls, or 1 `sendBatch`), not
 *   1,000. 50 ids of at most 200 characters stay far below both platforms'
 *   message limits (Queues 128 KB, SQS 256 KiB).
 * - A message carries one delay: ids are grouped by queue and by the whole
 *   second they are due, and `runAt` is the latest of them.
 * - A job due beyond the notifier's longest delay (Queues 12 h, SQS 15 min)
 *   gets no message: the scheduled tick promotes it when it is due.
 * - Decoding is strict (version, queue name by the rules of core/rules.ts,
 *   every id a valid job id, no other field): anything else is not ours,
 *   and the consumer dead-letters it.
 */
import type { WakeUp } from "../../../core/client.js";
import { QUEUE_NAME, isJobId } from "../../../core/rules.js";

export interface WakeUpMessage {
  v: 1;
  queue: string;
  ids: string[];
  /** Latest due time among the ids (epoch ms). */
  runAt: number;
}

/** Ids per message by default. */
export const MAX_IDS_PER_MESSAGE = 50;
/** Most ids a message may carry and still be read. */
const MAX_IDS_ACCEPTED = 1000;
/** A body larger than this is not one of ours (SQS allows 256 KiB). */
const MAX_BODY_CHARS = 256 * 1024;
const FIELDS = new Set(["v", "queue", "ids", "runAt"]);

/** The body as SQS carries it (a string). Cloudflare Queues carry the object itself (`contentType: "json"`). */
export function encodeWakeUp(m: Omit<WakeUpMessage, "v">): string {
  return JSON.stringify(wakeUpMessage(m.queue, m.ids, m.runAt));
}

export function wakeUpMessage(queue: string, ids: string[], runAt: number): WakeUpMessage {
  return { v: 1, queue, ids, runAt };
}

/** The message in a body (a JSON string, or an object already parsed), or null when it is not a qml wake-up. */
export function decodeWakeUp(body: unknown): WakeUpMessage | null {
  let v: unknown = body;
  if (typeof body === "string") {
    if (body.length === 0 || body.length > MAX_BODY_CHARS) return null;
    try {
      v = JSON.parse(body);
    } catch {
      return null;
    }
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const m = v as Record<string, unknown>;
  if (Object.keys(m).some((k) => !FIELDS.has(k))) return null;
  if (m.v !== 1 || typeof m.queue !== "string" || !QUEUE_NAME.test(m.queue)) return null;
  if (!Array.isArray(m.ids) || m.ids.length === 0 || m.ids.length > MAX_IDS_ACCEPTED || !m.ids.every(isJobId)) return null;
  if (typeof m.runAt !== "number" || !Number.isFinite(m.runAt)) return null;
  return wakeUpMessage(m.queue, [...(m.ids as string[])], m.runAt);
}

/** One message to send: its body and how long the platform should hold it. */
export interface OutgoingWakeUp {
  message: WakeUpMessage;
  delaySeconds: number;
}

export interface GroupOptions {
  now: number;
  /** The notifier's longest delay; later jobs get no message. */
  maxDelaySeconds: number;
  /** Ids per message (default 50). */
  perMessage?: number;
}

/** The messages that announce `jobs`: grouped by queue and due second, at most `perMessage` ids each. */
export function groupWakeUps(jobs: readonly WakeUp[], o: GroupOptions): OutgoingWakeUp[] {
  const perMessage = Math.max(1, Math.min(o.perMessage ?? MAX_IDS_PER_MESSAGE, MAX_IDS_ACCEPTED));
  const groups = new Map<string, { queue: string; delaySeconds: number; ids: string[]; runAt: number }>();
  for (const j of jobs) {
    const delaySeconds = delaySecondsUntil(j.runAt, o.now);
    if (delaySeconds > o.maxDelaySeconds) continue;
    const key = `${j.queue}\0${delaySeconds}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { queue: j.queue, delaySeconds, ids: [], runAt: j.runAt }));
    g.ids.push(j.id);
    g.runAt = Math.max(g.runAt, j.runAt);
  }
  const out: OutgoingWakeUp[] = [];
  for (const g of groups.values()) {
    for (let i = 0; i < g.ids.length; i += perMessage) {
      out.push({ message: wakeUpMessage(g.queue, g.ids.slice(i, i + perMessage), g.runAt), delaySeconds: g.delaySeconds });
    }
  }
  return out;
}

/** Whole seconds from `now` until `at`, rounded up (0 when due), so a message never arrives before its job is due. */
export function delaySecondsUntil(at: number, now: number): number {
  if (!Number.isFinite(at) || at <= now) return 0;
  return Math.ceil((at - now) / 1000);
}
