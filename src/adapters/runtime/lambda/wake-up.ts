/**
 * The body of a wake-up message: which jobs of which queue were enqueued.
 * The job itself lives in the store; the message only says "look now", so a
 * lost or duplicated message delays or repeats a look, never a job.
 *
 *   {"v":1,"queue":"default","ids":["…","…"],"runAt":1767225600000}
 *
 * Several ids share one message so that a bulk enqueue of 1000 jobs costs 2
 * SendMessageBatch calls (10 messages × 50 ids each), not 100.
 */
import { QUEUE_NAME } from "../../../core/job.js";

export interface WakeUpMessage {
  v: 1;
  queue: string;
  ids: string[];
  /** Latest runAt among the ids (epoch ms). */
  runAt: number;
}

export const MAX_IDS_PER_MESSAGE = 50;
const MAX_ID_LENGTH = 200;

export function encodeWakeUp(m: Omit<WakeUpMessage, "v">): string {
  return JSON.stringify({ v: 1, queue: m.queue, ids: m.ids, runAt: m.runAt });
}

/** The message, or null when the body is not a wake-up (foreign or corrupt). */
export function decodeWakeUp(body: string): WakeUpMessage | null {
  if (typeof body !== "string" || body.length === 0 || body.length > 256 * 1024) return null;
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const m = v as Partial<WakeUpMessage>;
  if (m.v !== 1 || typeof m.queue !== "string" || !QUEUE_NAME.test(m.queue)) return null;
  if (!Array.isArray(m.ids) || m.ids.length === 0 || m.ids.length > 1000) return null;
  if (!m.ids.every((id) => typeof id === "string" && id.length > 0 && id.length <= MAX_ID_LENGTH)) return null;
  if (typeof m.runAt !== "number" || !Number.isFinite(m.runAt)) return null;
  return { v: 1, queue: m.queue, ids: m.ids, runAt: m.runAt };
}
